import type { KubernetesObject } from "@kubernetes/client-node";
import { parseHolder } from "../lease/holder.js";
import { isWarmReady, RETIRING_HOLDER, WARM_HOLDER } from "../pools/warm.js";
import { readRunState, statePools, stateVMs, type Phase, type RunState } from "../tekton/run-state.js";
import { isOurs, runKey, succeededCondition, type CustomRun, parseRun } from "../tekton/customrun.js";
import type { VMView } from "../kubevirt/vm.js";
import { poolQueue } from "../cache/pool-queues.js";
import { poolVMs, type Caches } from "../cache/caches.js";

// What the web view shows: the pools with each VM's state, each pool's fair queue and the recent runs, read from
// the informer caches and cut down to the namespaces the caller may see. Pure: no clock, no I/O.

export type ViewCaches = Pick<Caches, "runs" | "pools" | "vms" | "vmis" | "leases">;

export const VM_STATES = ["free", "warming", "warm", "booting", "leased", "building", "scratching", "running-unleased"] as const;
export type VMState = (typeof VM_STATES)[number];

/** Most runs listed, newest first. */
export const MAX_RECENT_RUNS = 100;

export interface HolderView {
  namespace: string;
  name: string;
  attempt: number;
  /** Absent when the lease's run is gone or was re-created: the sweeper will take the VM. */
  phase?: Phase;
}

export interface VMEntry {
  name: string;
  state: VMState;
  /** The run holding the VM's lease; left out when the caller may not see its namespace. */
  holder?: HolderView;
}

export interface QueueEntry {
  namespace: string;
  name: string;
  /** 1 = served next; counts runs the caller cannot see too, as the run's own condition message does. */
  position: number;
  queuedAt: string;
  waitingSeconds: number;
}

export interface PoolView {
  namespace: string;
  name: string;
  vms: VMEntry[];
  queue: QueueEntry[];
}

export interface RunView {
  namespace: string;
  name: string;
  uid: string;
  /** The Succeeded condition; Unknown without a reason before the controller has looked at the run. */
  status: "True" | "False" | "Unknown";
  reason?: string;
  message?: string;
  phase?: Phase;
  pool?: string;
  vm?: string;
  attempt?: number;
  createdAt?: string;
  startTime?: string;
  completionTime?: string;
}

export interface ViewState {
  generatedAt: string;
  pools: PoolView[];
  runs: RunView[];
}

/** Whether the caller may `get customruns` in the namespace. */
export type MayView = (namespace: string) => boolean;

interface ParsedRun {
  raw: KubernetesObject;
  run: CustomRun;
  state: RunState | undefined;
}

export function buildViewState(caches: ViewCaches, now: Date, mayView: MayView): ViewState {
  const runs = ourRuns(caches);
  const byKey = new Map(runs.map((r) => [runKey(r.run), r]));
  return {
    generatedAt: now.toISOString(),
    pools: poolKeys(caches).flatMap(([namespace, name]) => {
      const key = `${namespace}/${name}`;
      const served = runs.filter((r) => r.state?.slots.some((slot) => slot.pool === key));
      const visible = mayView(namespace) || served.some((r) => mayView(r.run.metadata.namespace));
      if (!visible) return [];
      const vms = poolVMs(caches, namespace, name).map((vm) => vmEntry(vm, byKey, mayView));
      return [{ namespace, name, vms, queue: queueOf(key, served, byKey, now, mayView) }];
    }),
    runs: runs
      .filter((r) => mayView(r.run.metadata.namespace))
      .sort(newestFirst)
      .slice(0, MAX_RECENT_RUNS)
      .map(runView),
  };
}

/** Every namespace whose access decides what the view shows: those of our runs and of the pools. */
export function namespacesOf(caches: ViewCaches): string[] {
  const found = new Set<string>(poolKeys(caches).map(([namespace]) => namespace));
  for (const raw of caches.runs.list()) {
    const namespace = raw.metadata?.namespace;
    if (namespace && isOurs(raw)) found.add(namespace);
  }
  return [...found].sort();
}

/** The state of one VM, as an operator would name it. */
export function vmState(vm: VMView, holderPhase: Phase | undefined): VMState {
  if (vm.vmi?.deleting || vm.leaseHolder === RETIRING_HOLDER) return "scratching";
  // Booted ahead of demand by the warm-pool keeper: "warm" is what a run takes at once.
  if (vm.leaseHolder === WARM_HOLDER) return isWarmReady(vm) ? "warm" : "warming";
  if (vm.leaseHolder) {
    if (holderPhase === "Scratching") return "scratching";
    if (!vm.vmi?.ready) return "booting";
    return holderPhase === "Building" ? "building" : "leased";
  }
  // Running without a lease: started by hand, or leaked. Not stopped by vmbuild, which only scratches VMs it holds a
  // Lease on (a pool may serve others too); shown so that an operator sees it.
  return vm.wantsRunning || vm.vmi ? "running-unleased" : "free";
}

function ourRuns(caches: ViewCaches): ParsedRun[] {
  return caches.runs.list().flatMap((raw) => {
    if (!isOurs(raw)) return [];
    // A run with a malformed spec still has a name and a status worth showing.
    const { run } = parseRun(raw);
    return run ? [{ raw, run, state: readRunState(run.status?.extraFields) }] : [];
  });
}

function poolKeys(caches: ViewCaches): [string, string][] {
  return caches.pools
    .list()
    .flatMap((p): [string, string][] =>
      p.metadata?.namespace && p.metadata.name ? [[p.metadata.namespace, p.metadata.name]] : [],
    )
    .sort((a, b) => a[0].localeCompare(b[0]) || a[1].localeCompare(b[1]));
}

function vmEntry(vm: VMView, byKey: ReadonlyMap<string, ParsedRun>, mayView: MayView): VMEntry {
  const holder = vm.leaseHolder ? parseHolder(vm.leaseHolder) : undefined;
  const run = holder ? byKey.get(`${holder.namespace}/${holder.name}`) : undefined;
  // A run re-created under the same name does not hold its predecessor's VM.
  const phase = holder && run?.run.metadata.uid === holder.uid ? run.state?.phase : undefined;
  const entry: VMEntry = { name: vm.name, state: vmState(vm, phase) };
  if (holder && mayView(holder.namespace)) {
    entry.holder = { namespace: holder.namespace, name: holder.name, attempt: holder.attempt, ...(phase ? { phase } : {}) };
  }
  return entry;
}

function queueOf(
  pool: string,
  served: readonly ParsedRun[],
  byKey: ReadonlyMap<string, ParsedRun>,
  now: Date,
  mayView: MayView,
): QueueEntry[] {
  return poolQueue(
    pool,
    served.map((r) => r.raw),
  ).flatMap(({ key }, index) => {
    const r = byKey.get(key);
    if (!r?.state || !mayView(r.run.metadata.namespace)) return [];
    const waited = Math.floor((now.getTime() - Date.parse(r.state.queuedAt)) / 1000);
    return [
      {
        namespace: r.run.metadata.namespace,
        name: r.run.metadata.name,
        position: index + 1,
        queuedAt: r.state.queuedAt,
        waitingSeconds: Number.isFinite(waited) ? Math.max(0, waited) : 0,
      },
    ];
  });
}

function newestFirst(a: ParsedRun, b: ParsedRun): number {
  const byTime = (b.run.metadata.creationTimestamp ?? "").localeCompare(a.run.metadata.creationTimestamp ?? "");
  return byTime || runKey(a.run).localeCompare(runKey(b.run));
}

function runView({ run, state }: ParsedRun): RunView {
  const cond = succeededCondition(run.status);
  // Undefined fields are left out of the JSON.
  return {
    namespace: run.metadata.namespace,
    name: run.metadata.name,
    uid: run.metadata.uid,
    status: cond?.status ?? "Unknown",
    reason: cond?.reason,
    message: cond?.message,
    phase: state?.phase,
    pool: state ? statePools(state).join(", ") : undefined,
    vm: state && stateVMs(state).length > 0 ? stateVMs(state).join(", ") : undefined,
    attempt: state?.attempt,
    createdAt: run.metadata.creationTimestamp,
    startTime: run.status?.startTime,
    completionTime: run.status?.completionTime,
  };
}
