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
import { LEASE_SELECTOR } from "./lease/leases.js";
import { Expectations } from "./cache/expectations.js";
import { sweep } from "./pools/sweeper.js";
import { keepWarm } from "./pools/warm-keeper.js";
import { startLeaderElection } from "./kube/leader.js";
import { WorkQueue } from "./kube/work-queue.js";
import { reconcile } from "./reconcile/reconciler.js";
import {
  allKeys,
  keysOfLease,
  keysOfPool,
  keysOfRun,
  keysOfVM,
  keysOfVMBuild,
  poolChangeMatters,
  unfinishedRuns,
  type Keys,
} from "./reconcile/run-keys.js";
import type { BuildSettings } from "./api/settings.js";
import { FINALIZER, runKey, type CustomRun } from "./tekton/customrun.js";
import type { Caches } from "./cache/caches.js";
import { PoolQueues } from "./cache/pool-queues.js";
import { PoolWakes } from "./reconcile/pool-wakes.js";
import { PoolSecrets } from "./podman/pool-transport.js";
import { Replicas } from "./cache/replicas.js";
import { deleteLapsedReplicaLease, readReplicaLease, startHeartbeat } from "./lease/replicas.js";
import { readRunState } from "./tekton/run-state.js";
import type { KubernetesObject } from "@kubernetes/client-node";

// Wiring: informers feed a keyed work queue of CustomRun keys; every change to a VM, VMI, lease, pool or VMBuild
// is mapped to the runs it concerns (reconcile/run-keys.ts), and to the pools' warm-set keeper.

export interface ControllerConfig {
  /** Where the leader-election Lease and the replicas' own Leases live. */
  namespace: string;
  /** This process, unique among the replicas and their restarts. */
  identity: string;
  leaderElection: boolean;
  leaderLeaseMs: number;
  /** How long this replica's own Lease lasts unrenewed: its runs are taken over that long after it is lost. */
  ownerLeaseMs: number;
  sweepEveryMs: number;
  /** Every unfinished run is reconciled this often, whatever the events: the backstop for a wake-up lost. */
  resyncEveryMs: number;
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
  /**
   * Takes no new runs, hands leadership over and finishes the runs this replica executes, for at most `deadlineMs`;
   * then stops, and hands what is left to the other replicas (they scratch it and run it again).
   */
  drain(deadlineMs: number): Promise<{ finished: boolean; handedOver: string[] }>;
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
  onLost: () => void,
): Promise<Controller> {
  const poolVersion = await servedPoolVersion(kube);
  let queue: WorkQueue | undefined;
  let warmQueue: WorkQueue | undefined;
  const replicas = new Replicas(config.identity);
  const poolWakes = new PoolWakes();
  // Nothing is reconciled before every cache has listed once (a half-filled cache would show leased VMs as free).
  // The leader schedules (queued runs, the warm sets, the sweeper) and adopts the runs of lost replicas; every
  // replica executes the runs it owns.
  let synced = false;
  let leading = !config.leaderElection;
  let draining = false;
  const wake = ({ runs, pools, waitingIn }: Keys) => {
    if (!synced) return;
    if (leading) for (const key of pools) warmQueue?.add(key);
    const waiting = waitingIn.flatMap((pool) => poolWakes.changed(pool, caches));
    for (const key of [...runs, ...waiting]) if (replicas.actsOn(replicas.ownerOf(key), leading)) queue?.add(key);
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
  informers.runs.onChange((obj) => queues.runChanged(obj));
  informers.runs.onDelete(() => queues.runsChanged());
  for (const kind of ["runs", "leases", "vms"] as const) {
    informers[kind].onChange((obj) => expectations.observed(kind, obj));
    informers[kind].onDelete((obj) => expectations.deleted(kind, obj));
  }
  // Before the wake-ups below: they read who owns a run and which replicas live.
  informers.runs.onChange((obj) => {
    const state = readRunState((obj as { status?: { extraFields?: unknown } }).status?.extraFields);
    const done = state?.phase === "Done";
    // A finished run matters to ownership only while our finalizer is still on it.
    const settled = done && !(obj.metadata?.finalizers ?? []).includes(FINALIZER);
    replicas.owned(keyOf(obj), settled ? undefined : state?.owner, done);
  });
  informers.runs.onDelete((obj) => replicas.owned(keyOf(obj), undefined));
  informers.leases.onChange((obj) => replicas.leaseChanged(obj));
  informers.leases.onDelete((obj) => {
    replicas.leaseDeleted(obj);
    // A replica handed its runs over (or was removed): the leader takes them at once.
    if (readReplicaLease(obj)) wake({ runs: replicas.orphaned(), pools: [], waitingIn: [] });
  });
  const caches: Caches = {
    runs: informers.runs.cache,
    vmbuilds: informers.vmbuilds.cache,
    pools: informers.pools.cache,
    vms: expectations.overVMs(informers.vms.cache),
    vmis: informers.vmis.cache,
    leases: expectations.overLeases(informers.leases.cache),
    queue: (pool) => queues.of(pool),
  };

  // Every change wakes the runs it concerns and the pools whose warm set it may change.
  informers.runs.onChange((obj) => wake(keysOfRun(obj)));
  informers.vmbuilds.onChange((obj) => wake(keysOfVMBuild(obj, caches)));
  // The last version of each pool: its status changes at every boot and scratch, which no decision reads.
  const poolsSeen = new Map<string, KubernetesObject>();
  informers.pools.onChange((obj) => {
    const before = poolsSeen.get(keyOf(obj));
    poolsSeen.set(keyOf(obj), obj);
    if (poolChangeMatters(before, obj)) wake(keysOfPool(obj, caches));
  });
  informers.pools.onDelete((obj) => {
    poolsSeen.delete(keyOf(obj));
    wake(keysOfPool(obj, caches));
  });
  informers.vms.onChange((obj) => wake(keysOfVM(obj, caches)));
  informers.vmis.onChange((obj) => wake(keysOfVM(obj, caches)));
  informers.leases.onChange((obj) => wake(keysOfLease(obj)));
  const all = Object.values(informers);

  const jobs = new Jobs((key) => wake({ runs: [key], pools: [], waitingIn: [] }));
  const metrics = createMetrics(() => caches.runs);
  const jobDeps = { core: kube.core, caches: { pools: caches.pools }, poolSecrets: new PoolSecrets(kube.core), log, ...config };
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
    replicas,
    leading: () => leading,
    forgetJob: (id: JobId) => jobs.forget(id),
    endRunJobs: (uid: string) => jobs.endRun(uid),
    startJob,
    metrics,
    expectations,
    publicURL: config.publicURL,
    connectJob: (id: JobId, addresses: readonly string[], ready: boolean) => jobs.connect(id, addresses, ready),
    cancelJob: (id: JobId) => jobs.cancel(id),
  };
  const keeperDeps = { kube, caches, expectations, log, now: deps.now, reported: new Map<string, string>() };
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
  // On taking over: every run and pool once, and a sweep.
  const takeOver = () => {
    if (!synced || !leading) return;
    wake(allKeys(caches));
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
          leading = !draining;
          takeOver();
        },
        // Scheduling stops at once; the runs this replica executes go on, guarded by its own Lease (and the
        // per-VM leases guard any decision already in flight).
        onStoppedLeading: () => {
          leading = false;
          log.warn("no longer the leader; executing only the runs this replica owns");
        },
      })
    : undefined;
  const heartbeat = startHeartbeat(kube.coordination, {
    namespace: config.namespace,
    identity: config.identity,
    leaseDurationMs: config.ownerLeaseMs,
    log,
    onLost,
  });

  const resyncTimer = setInterval(() => wake({ runs: unfinishedRuns(caches), pools: [], waitingIn: [] }), config.resyncEveryMs);
  resyncTimer.unref();
  // A lost replica's Lease just stops changing (no event says so): the leader looks for its runs a few times per
  // lease duration.
  const orphanTimer = setInterval(() => {
    if (!synced || !leading) return;
    wake({ runs: replicas.orphaned(), pools: [], waitingIn: [] });
    // A killed replica never deletes its Lease: the leader does, once it has lapsed.
    for (const lapsed of replicas.lapsed()) {
      void deleteLapsedReplicaLease(kube.coordination, config.namespace, lapsed).catch((err: unknown) =>
        log.warn({ replica: lapsed.identity, err: describeApiError(err) }, "could not delete a lapsed replica Lease"),
      );
    }
  }, Math.max(200, Math.round(config.ownerLeaseMs / 4)));
  orphanTimer.unref();

  const ready = Promise.all(all.map((i) => i.ready)).then(() => {
    synced = true;
    log.info({ poolVersion, leaderElection: config.leaderElection }, "caches synced");
    takeOver();
  });

  const stop = async () => {
    if (sweepTimer) clearTimeout(sweepTimer);
    clearInterval(resyncTimer);
    clearInterval(orphanTimer);
    await Promise.all([queue?.stop(), warmQueue?.stop()]);
    await jobs.stopAll();
    await elector?.stop();
    // Last: nothing here acts any more when the others take this replica's runs over.
    await heartbeat.release();
    await Promise.all(all.map((i) => i.stop()));
  };

  return {
    ready,
    jobs,
    metrics,
    caches,
    isLeader: () => leading,
    async drain(deadlineMs) {
      draining = true;
      leading = false;
      replicas.drain();
      if (sweepTimer) clearTimeout(sweepTimer);
      await Promise.all([elector?.stop(), heartbeat.drain().catch(() => undefined)]);
      const deadline = performance.now() + deadlineMs;
      while (replicas.ownedByMe().length > 0 && performance.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(500, Math.max(0, deadline - performance.now()))));
      }
      const handedOver = replicas.ownedByMe();
      await stop();
      return { finished: handedOver.length === 0, handedOver };
    },
    stop,
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
