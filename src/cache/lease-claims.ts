import type { KubernetesObject, ObjectCache } from "@kubernetes/client-node";

// Leases this process has just written, shown over the informer's copy until the informer catches up. Without it,
// a run reconciled in that gap sees the VM free and its create fails with a conflict: 1.5 wasted requests per run
// and a reconcile more (bench b). Like the expectations of Kubernetes' own controllers: an overlay, never the
// truth; the apiserver's create and resourceVersion checks still decide every lease.

/** How long a claim may outlive an informer that does not catch up (a watch restarting) before it is dropped. */
export const CLAIM_TTL_MS = 15_000;

interface Claim {
  lease: KubernetesObject;
  until: number;
}

export class LeaseClaims {
  private readonly claims = new Map<string, Claim>();

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * A create or holder swap about to be sent: the reconciles that run while it is in flight see the VM taken
   * instead of racing for it. Followed by wrote() or, when it failed, released().
   */
  sending(namespace: string, name: string, holder: string): void {
    const lease = { metadata: { namespace, name }, spec: { holderIdentity: holder } } as KubernetesObject;
    this.claims.set(keyOf(namespace, name), { lease, until: this.now() + CLAIM_TTL_MS });
  }

  /** A Lease as the apiserver returned it from our create or update. */
  wrote(lease: KubernetesObject): void {
    this.claims.set(keyOf(lease.metadata?.namespace, lease.metadata?.name), { lease, until: this.now() + CLAIM_TTL_MS });
  }

  /** Our delete (or a write of ours that failed): nothing is claimed any more. */
  released(namespace: string, name: string): void {
    this.claims.delete(keyOf(namespace, name));
  }

  /**
   * `cache` with our claimed Leases in place of older copies, for get (what decide reads); list is the cache's own.
   * A claim ends once the cache shows what we wrote: checked on read, since the watch event may come before the
   * response to our own write.
   */
  over(cache: ObjectCache<KubernetesObject>): ObjectCache<KubernetesObject> {
    return {
      list: (namespace?: string) => cache.list(namespace),
      get: (name: string, namespace?: string) => {
        const key = keyOf(namespace, name);
        const cached = cache.get(name, namespace);
        const claim = this.claims.get(key);
        if (!claim) return cached;
        if (claim.until <= this.now() || (cached && caughtUp(cached, claim.lease))) {
          this.claims.delete(key);
          return cached;
        }
        return claim.lease;
      },
    };
  }
}

function caughtUp(cached: KubernetesObject, ours: KubernetesObject): boolean {
  if (cached.metadata?.resourceVersion === ours.metadata?.resourceVersion) return true;
  return cached.metadata?.uid === ours.metadata?.uid && holderOf(cached) === holderOf(ours);
}

function holderOf(lease: KubernetesObject): unknown {
  return (lease as { spec?: { holderIdentity?: string } }).spec?.holderIdentity;
}

function keyOf(namespace: string | undefined, name: string | undefined): string {
  return `${namespace ?? ""}/${name ?? ""}`;
}
