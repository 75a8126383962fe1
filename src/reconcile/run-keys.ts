import type { KubernetesObject } from "@kubernetes/client-node";
import { isDeepStrictEqual } from "node:util";
import { poolMembers, type Caches } from "../cache/caches.js";
import type { QueueEntry } from "../cache/pool-queues.js";
import { splitPoolKey } from "../kubevirt/pool-key.js";
import { leaseName, parseHolder } from "../lease/holder.js";
import { readVMLease } from "../lease/leases.js";
import { isFinished, isOurs, parseRun } from "../tekton/customrun.js";
import { readRunState } from "../tekton/run-state.js";

// Which keys an informer event concerns: the CustomRuns to reconcile (NAMESPACE/NAME), the pools whose warm set
// to keep, and the pools whose waiting runs may be concerned. Pure: reads the caches, enqueues nothing.

export interface Keys {
  runs: string[];
  pools: string[];
  /**
   * Pools whose waiting runs this change may concern: those the pool's free VMs can serve are woken when those VMs
   * or the runs ahead changed (PoolWakes), not at every VM, VMI or Lease event.
   */
  waitingIn: string[];
}

/**
 * A CustomRun changed: it, if it is ours. A run that waits or has finished may also have moved others into its
 * pools' rounds: one that waited for two VMs keeps the run behind it from a free VM until it leaves.
 */
export function keysOfRun(obj: KubernetesObject): Keys {
  if (!isOurs(obj)) return { runs: [], pools: [], waitingIn: [] };
  const state = readRunState((obj as { status?: { extraFields?: unknown } }).status?.extraFields);
  const moves = state?.phase === "Queued" || state?.phase === "Done";
  return { runs: [keyOf(obj)], pools: [], waitingIn: moves ? [...new Set(state.slots.map((slot) => slot.pool))] : [] };
}

/** A VMBuild changed: our runs of its namespace, any of which may use it. */
export function keysOfVMBuild(obj: KubernetesObject, caches: Pick<Caches, "runs">): Keys {
  return { runs: caches.runs.list(obj.metadata?.namespace).filter(isOurs).map(keyOf), pools: [], waitingIn: [] };
}

/** A VirtualMachinePool changed (its annotations may decide anything): its warm set and its first waiting runs. */
export function keysOfPool(obj: KubernetesObject, caches: Pick<Caches, "vms" | "queue">): Keys {
  const pool = keyOf(obj);
  return { runs: roundOf(pool, caches), pools: [pool], waitingIn: [] };
}

/**
 * Whether a pool's new version may concern a decision. Runs and the warm keeper read its spec, its annotations
 * and which object it is, never its status, which the pool's controller rewrites at every boot and scratch of its
 * VMs (what those change, the VM, VMI and Lease events bring).
 */
export function poolChangeMatters(before: KubernetesObject | undefined, after: KubernetesObject): boolean {
  if (before === undefined) return true;
  const spec = (obj: KubernetesObject) => (obj as { spec?: unknown }).spec;
  return (
    before.metadata?.uid !== after.metadata?.uid ||
    !isDeepStrictEqual(before.metadata?.annotations ?? {}, after.metadata?.annotations ?? {}) ||
    !isDeepStrictEqual(spec(before), spec(after))
  );
}

/**
 * A VM or its VMI (same name) changed: the run holding its lease, and its pool. A VM with no Lease at all (deleted
 * by hand) wakes the unfinished runs whose status names it: such a run still owns the VM, and would otherwise hear
 * of its boot or its scratch only from a timer.
 */
export function keysOfVM(obj: KubernetesObject, caches: Pick<Caches, "runs" | "vms" | "leases">): Keys {
  const namespace = obj.metadata?.namespace ?? "";
  const vm = obj.metadata?.name ?? "";
  const lease = caches.leases.get(leaseName(vm), namespace);
  const holder = lease ? holderKeys(readVMLease(lease)?.holder) : runsNaming(caches, namespace, vm);
  const owner = (caches.vms.get(vm, namespace) as Owned | undefined)?.metadata?.ownerReferences?.find(
    (o) => o.kind === "VirtualMachinePool",
  );
  if (!owner) return { runs: holder, pools: [], waitingIn: [] };
  const pool = `${namespace}/${owner.name}`;
  return { runs: holder, pools: [pool], waitingIn: [pool] };
}

/** A VM Lease changed: its holder, and its pool. */
export function keysOfLease(obj: KubernetesObject): Keys {
  const lease = readVMLease(obj);
  const holder = holderKeys(lease?.holder);
  if (!lease?.pool) return { runs: holder, pools: [], waitingIn: [] };
  const pool = `${lease.namespace}/${lease.pool}`;
  return { runs: holder, pools: [pool], waitingIn: [pool] };
}

/** On taking over: every run of ours (runs caught mid-flight by a restart are found so) and every pool. */
export function allKeys(caches: Pick<Caches, "runs" | "pools">): Keys {
  return { runs: caches.runs.list().filter(isOurs).map(keyOf), pools: caches.pools.list().map(keyOf), waitingIn: [] };
}

/** Every run of ours not finished yet: the periodic resync, in case an event that should have woken one was lost. */
export function unfinishedRuns(caches: Pick<Caches, "runs">): string[] {
  return caches.runs.list().filter((obj) => isOurs(obj) && !isFinished(parseRun(obj).run?.status)).map(keyOf);
}

/**
 * The pool's waiting runs within one round of its VMs, woken when the pool itself changed. Waking every waiting run
 * costs a reconcile each, ranking the whole queue; the others wake at their own queue timeout, or when the pool's
 * free VMs can serve them (PoolWakes).
 */
export function roundOf(poolKey: string, caches: Pick<Caches, "vms" | "queue">): string[] {
  const { namespace, name } = splitPoolKey(poolKey);
  return queueHead(caches.queue(poolKey), Math.max(1, poolMembers(caches, namespace, name).length));
}

/** The first waiting runs, in queue order, while the VMs the runs ahead of each need are fewer than `vms`. */
export function queueHead(queue: readonly QueueEntry[], vms: number): string[] {
  const runs: string[] = [];
  let ahead = 0;
  for (const { key, demand } of queue) {
    if (ahead >= vms) break;
    runs.push(key);
    ahead += demand;
  }
  return runs;
}

/** Our unfinished runs whose status names VM `vm` of `namespace` (their pool's namespace, not always theirs). */
function runsNaming(caches: Pick<Caches, "runs">, namespace: string, vm: string): string[] {
  return caches.runs.list().flatMap((obj) => {
    const status = (obj as { status?: { extraFields?: unknown } }).status;
    const state = readRunState(status?.extraFields);
    if (!state || state.phase === "Done" || !isOurs(obj)) return [];
    const names = state.slots.some((slot) => slot.vm === vm && splitPoolKey(slot.pool).namespace === namespace);
    return names ? [keyOf(obj)] : [];
  });
}

type Owned = { metadata?: { ownerReferences?: { kind: string; name: string }[] } };

function holderKeys(holder: string | undefined): string[] {
  const run = parseHolder(holder ?? "");
  return run ? [`${run.namespace}/${run.name}`] : [];
}

function keyOf(obj: KubernetesObject): string {
  return `${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`;
}
