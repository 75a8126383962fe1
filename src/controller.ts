import type { KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { Jobs, type JobId, type JobVM } from "./jobs/jobs.js";
import { createMetrics, type Metrics } from "./metrics/metrics.js";
import { buildJob } from "./jobs/job.js";
import type { LogStore } from "./jobs/log-store.js";
import type { Kube } from "./kube/client.js";
import { describeApiError } from "./kube/errors.js";
import { startInformer } from "./kube/informers.js";
import {
  CUSTOM_RUNS,
  POOL_VERSIONS,
  poolResource,
  VIRTUAL_MACHINES,
  VMBUILDS,
  VMIS,
  type Resource,
} from "./kube/resources.js";
import { leaseName, parseHolder } from "./lease/holder.js";
import { LEASE_SELECTOR, readVMLease } from "./lease/leases.js";
import { Expectations } from "./cache/expectations.js";
import { sweep } from "./pools/sweeper.js";
import { keepWarm } from "./pools/warm-keeper.js";
import { splitPoolKey } from "./kubevirt/pool-key.js";
import { startLeaderElection } from "./kube/leader.js";
import { WorkQueue } from "./kube/work-queue.js";
import { reconcile } from "./reconcile/reconciler.js";
import type { BuildSettings } from "./api/settings.js";
import { isOurs, runKey, type CustomRun } from "./tekton/customrun.js";
import { poolMembers, type Caches } from "./cache/caches.js";
import { PoolQueues } from "./cache/pool-queues.js";

// Wiring: informers feed a keyed work queue of CustomRun keys; every change to a VM, VMI, lease, pool or VMBuild
// is mapped to the runs it concerns.

export interface ControllerConfig {
  /** Where the leader-election Lease lives. */
  namespace: string;
  identity: string;
  leaderElection: boolean;
  leaderLeaseMs: number;
  sweepEveryMs: number;
  workDir: string;
  logs: LogStore;
  /** Base URL of this controller's HTTP server as users reach it, for log links. */
  publicURL: string;
  podmanPort: number;
  maxContextBytes: number;
  concurrency: number;
}

export interface Controller {
  /** Resolves when every cache has listed once. */
  ready: Promise<void>;
  isLeader(): boolean;
  readonly jobs: Jobs;
  readonly metrics: Metrics;
  readonly caches: Caches;
  stop(): Promise<void>;
}

const LEASES: Resource = { group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease" };

export async function startController(
  kube: Kube,
  config: ControllerConfig,
  log: Logger,
  onLostLeadership: () => void,
): Promise<Controller> {
  const poolVersion = await servedPoolVersion(kube);
  let queue: WorkQueue | undefined;
  // Nothing is reconciled before every cache has listed once (a half-filled cache would show leased VMs as free),
  // nor by a replica that is not the leader.
  let synced = false;
  let leading = !config.leaderElection;
  const enqueue = (key: string) => {
    if (synced && leading) queue?.add(key);
  };

  const informers = {
    runs: startInformer(kube.kc, kube.custom, CUSTOM_RUNS, log),
    vmbuilds: startInformer(kube.kc, kube.custom, VMBUILDS, log),
    pools: startInformer(kube.kc, kube.custom, poolResource(poolVersion), log),
    vms: startInformer(kube.kc, kube.custom, VIRTUAL_MACHINES, log),
    vmis: startInformer(kube.kc, kube.custom, VMIS, log),
    leases: startInformer(kube.kc, kube.custom, LEASES, log, LEASE_SELECTOR),
  };
  const expectations = new Expectations();
  const queues = new PoolQueues(informers.runs.cache);
  // First of the runs' handlers: whatever a change wakes reads the queues ranked afresh.
  informers.runs.onChange(() => queues.runsChanged());
  for (const kind of ["runs", "leases"] as const) {
    informers[kind].onChange((obj) => expectations.observed(kind, obj));
    informers[kind].onDelete((obj) => expectations.deleted(kind, obj));
  }
  const caches: Caches = {
    runs: informers.runs.cache,
    vmbuilds: informers.vmbuilds.cache,
    pools: informers.pools.cache,
    vms: informers.vms.cache,
    vmis: informers.vmis.cache,
    leases: expectations.overLeases(informers.leases.cache),
    queue: (pool) => queues.of(pool),
  };

  // Every change is mapped to the runs it concerns, and to the pool's warm-set keeper. Of a pool's waiting runs,
  // only those within one round of its VMs can take one or see their queue message change (decide); waking every
  // waiting run at every VM change cost O(queue²) reconciles, each ranking the whole queue (bench b). The others
  // wake at their own queue timeout.
  let warmQueue: WorkQueue | undefined;
  const enqueuePool = (poolKey: string) => {
    if (synced && leading) warmQueue?.add(poolKey);
  };
  const enqueueWaiting = (poolKey: string) => {
    enqueuePool(poolKey);
    const { namespace, name } = splitPoolKey(poolKey);
    const round = Math.max(1, poolMembers(caches, namespace, name).length);
    let ahead = 0;
    for (const { key, demand } of caches.queue(poolKey)) {
      if (ahead >= round) break;
      enqueue(key);
      ahead += demand;
    }
  };
  const byVM = (obj: KubernetesObject) => {
    const namespace = obj.metadata?.namespace ?? "";
    const vm = obj.metadata?.name ?? "";
    const holder = parseHolder(readVMLease(caches.leases.get(leaseName(vm), namespace))?.holder ?? "");
    if (holder) enqueue(`${holder.namespace}/${holder.name}`);
    const owner = (caches.vms.get(vm, namespace) as { metadata?: { ownerReferences?: { kind: string; name: string }[] } } | undefined)
      ?.metadata?.ownerReferences?.find((o) => o.kind === "VirtualMachinePool");
    if (owner) enqueueWaiting(`${namespace}/${owner.name}`);
  };
  informers.runs.onChange((obj) => {
    if (isOurs(obj)) enqueue(keyOf(obj));
  });
  informers.vmbuilds.onChange((obj) => {
    for (const raw of caches.runs.list(obj.metadata?.namespace)) if (isOurs(raw)) enqueue(keyOf(raw));
  });
  informers.pools.onChange((obj) => enqueueWaiting(keyOf(obj)));
  informers.vms.onChange(byVM);
  informers.vmis.onChange(byVM);
  informers.leases.onChange((obj) => {
    const lease = readVMLease(obj);
    const holder = parseHolder(lease?.holder ?? "");
    if (holder) enqueue(`${holder.namespace}/${holder.name}`);
    if (lease?.pool) enqueueWaiting(`${lease.namespace}/${lease.pool}`);
  });
  const all = Object.values(informers);

  const jobs = new Jobs(enqueue);
  const metrics = createMetrics(() => caches.runs);
  const jobDeps = { core: kube.core, caches: { pools: caches.pools }, log, ...config };
  const startJob = (run: CustomRun, settings: BuildSettings, attempt: number, vms: readonly JobVM[]) => {
    const id = { uid: run.metadata.uid, attempt, vms: vms.map((vm) => vm.vm) };
    jobs.start(runKey(run), id, buildJob(jobDeps, run, attempt, settings, vms));
  };

  const deps = {
    kube,
    caches,
    log,
    now: () => new Date(),
    job: (id: JobId) => jobs.get(id),
    forgetJob: (id: JobId) => jobs.forget(id),
    endRunJobs: (uid: string) => jobs.endRun(uid),
    startJob,
    metrics,
    expectations,
    connectJob: (id: JobId, addresses: readonly string[]) => jobs.connect(id, addresses),
    cancelJob: (id: JobId) => jobs.cancel(id),
  };
  const keeperDeps = { kube, caches, claims: expectations, log, now: deps.now, reported: new Map<string, string>() };
  warmQueue = new WorkQueue((key) => keepWarm(keeperDeps, key), {
    concurrency: 1,
    onError: (key, err, retryInMs) =>
      log.warn({ pool: key, err: describeApiError(err), retryInMs }, "warm pool upkeep failed; retrying"),
  });
  queue = new WorkQueue((key) => reconcile(deps, key), {
    concurrency: config.concurrency,
    onError: (key, err, retryInMs) =>
      log.warn({ run: key, err: describeApiError(err), retryInMs }, "reconcile failed; retrying"),
  });

  let sweepTimer: NodeJS.Timeout | undefined;
  const runSweeper = async () => {
    if (synced && leading) {
      const result = await sweep(kube, caches, log, metrics).catch((err: unknown) => {
        log.warn({ err: describeApiError(err) }, "sweep failed");
        return undefined;
      });
      if (result?.orphans) log.info(result, "sweep done");
    }
    sweepTimer = setTimeout(() => void runSweeper(), config.sweepEveryMs);
    sweepTimer.unref();
  };
  // On taking over: every run once (this is how runs caught mid-flight by a restart are found), and a sweep.
  const takeOver = () => {
    if (!synced || !leading) return;
    for (const raw of caches.runs.list()) if (isOurs(raw)) enqueue(keyOf(raw));
    for (const pool of caches.pools.list()) enqueuePool(keyOf(pool));
    if (sweepTimer) clearTimeout(sweepTimer);
    void runSweeper();
  };

  const elector = config.leaderElection
    ? startLeaderElection(kube.coordination, {
        namespace: config.namespace,
        name: "vmbuild-controller-leader",
        identity: config.identity,
        leaseDurationMs: config.leaderLeaseMs,
        renewEveryMs: Math.max(500, config.leaderLeaseMs / 3),
        log,
        onStartedLeading: () => {
          leading = true;
          takeOver();
        },
        // A replica that lost the lease may be acting on stale state: stop at once and let the new leader
        // continue every run from the API (the per-VM leases guard anything already in flight).
        onStoppedLeading: () => {
          leading = false;
          onLostLeadership();
        },
      })
    : undefined;

  const ready = Promise.all(all.map((i) => i.ready)).then(() => {
    synced = true;
    log.info({ poolVersion, leaderElection: config.leaderElection }, "caches synced");
    takeOver();
  });

  return {
    ready,
    jobs,
    metrics,
    caches,
    isLeader: () => leading,
    async stop() {
      if (sweepTimer) clearTimeout(sweepTimer);
      await Promise.all([queue?.stop(), warmQueue?.stop()]);
      await jobs.stopAll();
      await elector?.stop();
      await Promise.all(all.map((i) => i.stop()));
    },
  };
}

function keyOf(obj: KubernetesObject): string {
  return `${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`;
}

/** The newest VirtualMachinePool version the cluster serves. */
async function servedPoolVersion(kube: Kube): Promise<string> {
  for (const version of POOL_VERSIONS) {
    try {
      await kube.custom.listClusterCustomObject({ ...poolResource(version), limit: 1 });
      return version;
    } catch {
      // not served; try the next
    }
  }
  throw new Error(`no VirtualMachinePool version (${POOL_VERSIONS.join(", ")}) is served: is KubeVirt installed?`);
}
