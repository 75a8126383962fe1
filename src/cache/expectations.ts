import type { KubernetesObject, ObjectCache } from "@kubernetes/client-node";
import { isDeepStrictEqual } from "node:util";

// Our own writes the informers have not delivered yet. Like the expectations of Kubernetes' own controllers: an
// overlay, never the truth; the apiserver's create and resourceVersion checks still decide every write.
// - A Lease we are creating or have just written is shown in place of the cached copy: a run reconciled in that
//   gap would otherwise see the VM free, and its create would fail with a conflict.
// - Of a CustomRun, the copies our last pass wrote over: a reconcile that reads one of them would repeat or undo
//   that pass's actions, so it waits for the newer copy.
// - A VM we started or stopped is shown as we wrote it: a run that ends a moment after starting its VM would
//   otherwise see it stopped, call it scratched, and leave it booting without a Lease.
// - A Lease we deleted is hidden: a run whose VMs go one by one would otherwise give the first one back again.
// An expectation ends when the cache catches up (seen on read or in an informer event), when the informer deletes
// the object, when we release it, or after EXPECTATION_TTL_MS: memory holds at most the last TTL's writes.

/** How long an expectation may outlive an informer that does not catch up (a watch restarting). */
export const EXPECTATION_TTL_MS = 15_000;

/** The informers whose objects we expect: CustomRuns, VM Leases and VirtualMachines. */
export type ExpectedKind = "runs" | "leases" | "vms";

/** What we wait to see: our Lease or VM as we wrote it, or the run's versions we wrote over. */
type Expected =
  | { kind: "leases"; lease: KubernetesObject }
  | { kind: "leaseDeleted"; uid: string }
  | { kind: "runs"; versions: readonly string[] }
  | { kind: "vms"; vm: KubernetesObject };

interface Expectation {
  expected: Expected;
  until: number;
}

export class Expectations {
  // Every set deletes first, so insertion order is expiry order and the TTL sweep stops at the first live entry.
  private readonly entries = new Map<string, Expectation>();

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * A Lease create or holder swap about to be sent: the reconciles that run while it is in flight see the VM taken
   * instead of racing for it. Followed by wrote() or, when it failed, released().
   */
  sending(namespace: string, name: string, holder: string): void {
    const lease = { metadata: { namespace, name }, spec: { holderIdentity: holder } } as KubernetesObject;
    this.set(keyOf("leases", namespace, name), { kind: "leases", lease });
  }

  /** A Lease as the apiserver returned it from our create or update. */
  wrote(lease: KubernetesObject): void {
    this.set(keyOf("leases", lease.metadata?.namespace, lease.metadata?.name), { kind: "leases", lease });
  }

  /**
   * Our Lease delete (or a write of ours that failed): nothing is claimed any more. With `holder`, a write of
   * `holder`'s that failed: only a claim naming `holder` ends. A claim of another holder is someone else's write that
   * won (the keeper's claim, a run's create): dropping it would show the VM free, or its old holder, until the
   * informer catches up.
   */
  released(namespace: string, name: string, holder?: string): void {
    const key = keyOf("leases", namespace, name);
    const expected = this.entries.get(key)?.expected;
    if (holder !== undefined && expected?.kind === "leases" && holderOf(expected.lease) !== holder) return;
    this.entries.delete(key);
  }

  /**
   * Our release of a Lease: `uid`, the Lease we deleted (or found gone), is hidden until the informer drops it;
   * without one (the Lease was not ours any more), nothing of ours is claimed.
   */
  deletedLease(namespace: string, name: string, uid: string | undefined): void {
    if (uid === undefined) this.released(namespace, name);
    else this.set(keyOf("leases", namespace, name), { kind: "leaseDeleted", uid });
  }

  /**
   * `cache` (the Leases') with our Leases in place of older copies and without those we deleted, for get (what
   * decide reads); list is the cache's own.
   */
  overLeases(cache: ObjectCache<KubernetesObject>): ObjectCache<KubernetesObject> {
    return {
      list: (namespace?: string) => cache.list(namespace),
      get: (name: string, namespace?: string) => {
        const cached = cache.get(name, namespace);
        const pending = this.pending(keyOf("leases", namespace, name), cached);
        if (pending?.kind === "leaseDeleted") return undefined;
        return pending?.kind === "leases" ? pending.lease : cached;
      },
    };
  }

  /** A VM as the apiserver returned it from our start or stop. */
  wroteVM(vm: KubernetesObject): void {
    this.set(keyOf("vms", vm.metadata?.namespace, vm.metadata?.name), { kind: "vms", vm });
  }

  /** `cache` (the VMs') with the VMs we started or stopped in place of older copies, for get and list. */
  overVMs(cache: ObjectCache<KubernetesObject>): ObjectCache<KubernetesObject> {
    const ours = (cached: KubernetesObject): KubernetesObject => {
      const pending = this.pending(keyOf("vms", cached.metadata?.namespace, cached.metadata?.name), cached);
      return pending?.kind === "vms" ? pending.vm : cached;
    };
    return {
      list: (namespace?: string) => {
        const listed = cache.list(namespace);
        return this.entries.size === 0 ? listed : listed.map(ours);
      },
      get: (name: string, namespace?: string) => {
        const cached = cache.get(name, namespace);
        return cached && ours(cached);
      },
    };
  }

  /** We wrote `run`: the resourceVersions in `versions` (the copy we read, and any we wrote over) are behind. */
  wroteRun(run: KubernetesObject, versions: readonly string[]): void {
    this.set(keyOf("runs", run.metadata?.namespace, run.metadata?.name), { kind: "runs", versions });
  }

  /** The cached copy of a run is one our last write replaced: deciding on it could repeat or undo that write. */
  runBehind(cached: KubernetesObject): boolean {
    return this.pending(keyOf("runs", cached.metadata?.namespace, cached.metadata?.name), cached) !== undefined;
  }

  /**
   * An informer's add or update: ends the object's expectation if the cache now has what we wrote (or newer), so
   * an object nobody reads again does not keep one.
   */
  observed(kind: ExpectedKind, obj: KubernetesObject): void {
    this.pending(keyOf(kind, obj.metadata?.namespace, obj.metadata?.name), obj);
  }

  /** An informer's delete: nothing we wrote of that object is left to wait for. */
  deleted(kind: ExpectedKind, obj: KubernetesObject): void {
    const key = keyOf(kind, obj.metadata?.namespace, obj.metadata?.name);
    const expected = this.entries.get(key)?.expected;
    // A create of ours in flight (no uid yet) is for a new Lease, not the deleted one.
    if (expected?.kind === "leases" && expected.lease.metadata?.uid !== obj.metadata?.uid) return;
    this.entries.delete(key);
  }

  /** How many expectations are held. */
  get size(): number {
    return this.entries.size;
  }

  private set(key: string, expected: Expected): void {
    const now = this.now();
    this.entries.delete(key);
    this.entries.set(key, { expected, until: now + EXPECTATION_TTL_MS });
    for (const [k, { until }] of this.entries) {
      if (until > now) break;
      this.entries.delete(k);
    }
  }

  /**
   * The expectation still pending against `cached`, the informer's copy; an expectation that is met or expired
   * ends here. Checked on read too, since the watch event may come before the response to our own write.
   */
  private pending(key: string, cached: KubernetesObject | undefined): Expected | undefined {
    const entry = this.entries.get(key);
    if (entry && (entry.until <= this.now() || met(entry.expected, cached))) {
      this.entries.delete(key);
      return undefined;
    }
    return entry?.expected;
  }
}

function met(expected: Expected, cached: KubernetesObject | undefined): boolean {
  if (expected.kind === "runs") {
    const version = cached?.metadata?.resourceVersion;
    return version === undefined || !expected.versions.includes(version);
  }
  // A VM no longer cached was deleted: nothing of ours to show.
  if (expected.kind === "vms") return cached === undefined || vmCaughtUp(cached, expected.vm);
  if (expected.kind === "leaseDeleted") return cached?.metadata?.uid !== expected.uid;
  return cached !== undefined && caughtUp(cached, expected.lease);
}

/**
 * The cache has our start or stop (the same version, or a later one that runs as we wrote), or a VM that is not
 * the one we wrote (a new VM of the same name: ours is gone).
 */
function vmCaughtUp(cached: KubernetesObject, ours: KubernetesObject): boolean {
  if (cached.metadata?.resourceVersion === ours.metadata?.resourceVersion) return true;
  return cached.metadata?.uid !== ours.metadata?.uid || isDeepStrictEqual(runFields(cached), runFields(ours));
}

function runFields(vm: KubernetesObject): unknown {
  const spec = (vm as { spec?: { running?: unknown; runStrategy?: unknown } }).spec;
  return [spec?.running, spec?.runStrategy];
}

/** The cache has our Lease write: the same version, or a later one of the same Lease with our holder. */
function caughtUp(cached: KubernetesObject, ours: KubernetesObject): boolean {
  if (cached.metadata?.resourceVersion === ours.metadata?.resourceVersion) return true;
  return cached.metadata?.uid === ours.metadata?.uid && holderOf(cached) === holderOf(ours);
}

function holderOf(lease: KubernetesObject): unknown {
  return (lease as { spec?: { holderIdentity?: string } }).spec?.holderIdentity;
}

function keyOf(kind: ExpectedKind, namespace: string | undefined, name: string | undefined): string {
  return `${kind}:${namespace ?? ""}/${name ?? ""}`;
}
