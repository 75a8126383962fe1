import type { KubernetesObject } from "@kubernetes/client-node";
import { poolMembers, type Caches } from "../cache/caches.js";
import { splitPoolKey } from "../kubevirt/pool-key.js";
import { leaseName, parseHolder } from "../lease/holder.js";
import { readVMLease } from "../lease/leases.js";
import { isFinished, isOurs, parseRun } from "../tekton/customrun.js";
import { readRunState } from "../tekton/run-state.js";

// Which keys an informer event concerns: the CustomRuns to reconcile (NAMESPACE/NAME) and the pools whose warm set
// to keep. Pure: reads the caches, enqueues nothing.

export interface Keys {
  runs: string[];
  pools: string[];
}

/** A CustomRun changed: it, if it is ours. */
export function keysOfRun(obj: KubernetesObject): Keys {
  return { runs: isOurs(obj) ? [keyOf(obj)] : [], pools: [] };
}

/** A VMBuild changed: our runs of its namespace, any of which may use it. */
export function keysOfVMBuild(obj: KubernetesObject, caches: Pick<Caches, "runs">): Keys {
  return { runs: caches.runs.list(obj.metadata?.namespace).filter(isOurs).map(keyOf), pools: [] };
}

/** A VirtualMachinePool changed: its warm set and its first waiting runs. */
export function keysOfPool(obj: KubernetesObject, caches: Pick<Caches, "vms" | "queue">): Keys {
  return waking(keyOf(obj), caches);
}

/**
 * A VM or its VMI (same name) changed: the run holding its lease, then its pool's first waiting runs. A VM with no
 * Lease at all (deleted by hand) wakes the unfinished runs whose status names it: such a run still owns the VM,
 * and would otherwise hear of its boot or its scratch only from a timer.
 */
export function keysOfVM(obj: KubernetesObject, caches: Pick<Caches, "runs" | "vms" | "leases" | "queue">): Keys {
  const namespace = obj.metadata?.namespace ?? "";
  const vm = obj.metadata?.name ?? "";
  const lease = caches.leases.get(leaseName(vm), namespace);
  const holder = lease ? holderKeys(readVMLease(lease)?.holder) : runsNaming(caches, namespace, vm);
  const owner = (caches.vms.get(vm, namespace) as Owned | undefined)?.metadata?.ownerReferences?.find(
    (o) => o.kind === "VirtualMachinePool",
  );
  if (!owner) return { runs: holder, pools: [] };
  const pool = waking(`${namespace}/${owner.name}`, caches);
  return { runs: [...holder, ...pool.runs], pools: pool.pools };
}

/** A VM Lease changed: its holder, then its pool's first waiting runs. */
export function keysOfLease(obj: KubernetesObject, caches: Pick<Caches, "vms" | "queue">): Keys {
  const lease = readVMLease(obj);
  const holder = holderKeys(lease?.holder);
  if (!lease?.pool) return { runs: holder, pools: [] };
  const pool = waking(`${lease.namespace}/${lease.pool}`, caches);
  return { runs: [...holder, ...pool.runs], pools: pool.pools };
}

/** On taking over: every run of ours (runs caught mid-flight by a restart are found so) and every pool. */
export function allKeys(caches: Pick<Caches, "runs" | "pools">): Keys {
  return { runs: caches.runs.list().filter(isOurs).map(keyOf), pools: caches.pools.list().map(keyOf) };
}

/** Every run of ours not finished yet: the periodic resync, in case an event that should have woken one was lost. */
export function unfinishedRuns(caches: Pick<Caches, "runs">): string[] {
  return caches.runs.list().filter((obj) => isOurs(obj) && !isFinished(parseRun(obj).run?.status)).map(keyOf);
}

/**
 * The pool, and those of its waiting runs within one round of its VMs: only they can take one or see their queue
 * message change (decide). Waking every waiting run at every VM change costs O(queue²) reconciles, each ranking
 * the whole queue; the others wake at their own queue timeout.
 */
function waking(poolKey: string, caches: Pick<Caches, "vms" | "queue">): Keys {
  const { namespace, name } = splitPoolKey(poolKey);
  const round = Math.max(1, poolMembers(caches, namespace, name).length);
  const runs: string[] = [];
  let ahead = 0;
  for (const { key, demand } of caches.queue(poolKey)) {
    if (ahead >= round) break;
    runs.push(key);
    ahead += demand;
  }
  return { runs, pools: [poolKey] };
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
