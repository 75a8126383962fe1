import type { KubernetesObject } from "@kubernetes/client-node";
import { readReplicaLease, REPLICA_LABEL } from "../lease/replicas.js";

// The controller's replicas as this one sees them, from their Leases, and which unfinished runs each owns.
// A replica is alive while its Lease keeps changing: like leader election, expiry is judged on this process's
// monotonic clock since the Lease last changed, never by comparing renewTime with a wall clock.

interface Seen {
  version: string;
  /** When (monotonic ms) this replica saw the Lease change last. */
  at: number;
  durationMs: number;
  draining: boolean;
  /** Seen to change since first seen: a replica alive now, not just a Lease left behind. */
  renewed: boolean;
}

export class Replicas {
  private readonly seen = new Map<string, Seen>();
  /** Run key → the replica that owns it (or owned it, for a finished run). */
  private readonly owners = new Map<string, string>();
  /** Of those, the finished runs: they weigh on no replica, and no drain waits for them. */
  private readonly finished = new Set<string>();
  private draining = false;

  constructor(
    readonly me: string,
    private readonly now: () => number = () => performance.now(),
  ) {}

  leaseChanged(raw: KubernetesObject): void {
    const lease = readReplicaLease(raw);
    if (!lease) return;
    const before = this.seen.get(lease.identity);
    if (before?.version === lease.version) return;
    this.seen.set(lease.identity, {
      version: lease.version,
      at: this.now(),
      durationMs: lease.durationMs,
      draining: lease.draining,
      renewed: before !== undefined,
    });
  }

  /** A deleted replica Lease: that replica handed its runs over (or an admin removed it). */
  leaseDeleted(raw: KubernetesObject): void {
    const identity = raw.metadata?.labels?.[REPLICA_LABEL];
    if (identity) this.seen.delete(identity);
  }

  /** This replica drains: it takes no new runs. */
  drain(): void {
    this.draining = true;
  }

  alive(identity: string): boolean {
    if (identity === this.me) return true;
    const seen = this.seen.get(identity);
    return seen !== undefined && this.now() - seen.at < seen.durationMs;
  }

  /**
   * Whether this replica acts on a run owned by `owner` (undefined: unowned, or finished): on its own runs always;
   * on the others only as the leader, and only once their owner is gone.
   */
  actsOn(owner: string | undefined, leading: boolean): boolean {
    if (owner === this.me) return true;
    return leading && (owner === undefined || !this.alive(owner));
  }

  /**
   * The replica a newly leased run goes to: the one owning the fewest runs (ties by name) among those seen renewing
   * their Lease and not draining. A Lease only ever seen once may be a dead replica's, not expired yet.
   */
  assignee(): string {
    const candidates = new Set<string>();
    if (!this.draining) candidates.add(this.me);
    for (const [identity, seen] of this.seen) {
      if (identity !== this.me && seen.renewed && !seen.draining && this.alive(identity)) candidates.add(identity);
    }
    const load = this.load();
    let best = this.me;
    let bestLoad = Infinity;
    for (const identity of [...candidates].sort()) {
      const n = load.get(identity) ?? 0;
      if (n < bestLoad) [best, bestLoad] = [identity, n];
    }
    return best;
  }

  /**
   * Records a run's owner (undefined: unowned or gone), from the informer or from our own write. A finished run keeps
   * its owner: that replica, while it lives, removes the finalizer (the leader would only race it).
   */
  owned(runKey: string, owner: string | undefined, finished = false): void {
    if (owner === undefined) this.owners.delete(runKey);
    else this.owners.set(runKey, owner);
    if (owner !== undefined && finished) this.finished.add(runKey);
    else this.finished.delete(runKey);
  }

  ownerOf(runKey: string): string | undefined {
    return this.owners.get(runKey);
  }

  /** Runs owned by this replica and not finished yet: what a drain waits for. */
  ownedByMe(): string[] {
    return [...this.owners].flatMap(([key, owner]) => (owner === this.me && !this.finished.has(key) ? [key] : []));
  }

  /** Runs whose owner is not alive any more: the leader takes them over (a finished one: its finalizer, if left). */
  orphaned(): string[] {
    return [...this.owners].flatMap(([key, owner]) => (this.alive(owner) ? [] : [key]));
  }

  /** Lapsed Leases of other replicas, with the version seen: the leader deletes them. */
  lapsed(): { identity: string; version: string }[] {
    return [...this.seen].flatMap(([identity, seen]) =>
      identity !== this.me && !this.alive(identity) ? [{ identity, version: seen.version }] : [],
    );
  }

  private load(): Map<string, number> {
    const load = new Map<string, number>();
    for (const [key, owner] of this.owners) if (!this.finished.has(key)) load.set(owner, (load.get(owner) ?? 0) + 1);
    return load;
  }
}
