import { poolVMs, type Caches } from "../cache/caches.js";
import { splitPoolKey } from "../kubevirt/pool-key.js";
import { isFree } from "../kubevirt/vm.js";
import { isWarmReady } from "../pools/warm.js";
import { queueHead } from "./run-keys.js";

// A pool's waiting runs decide on two things (decide/queue.ts): which of its VMs are free to lease (free, or warm
// and ready) and how many VMs the runs ahead of them need. Only the first of them, as many as those VMs serve, can
// take one. Most VM, VMI and Lease events change neither (a leased VM booting, a finished build's VM being
// scratched, a free VM taken), yet waking one round of waiting runs at each cost ~90 reconciles that decided
// nothing per run of a queue (bench t).

export class PoolWakes {
  /** Per pool: the runs woken and the leasable VMs as last answered. */
  private readonly seen = new Map<string, string>();

  /**
   * The pool's waiting runs that its leasable VMs can serve (in queue order, while the VMs the runs ahead need are
   * fewer than those), if they or the leasable VMs changed since last asked; else none.
   */
  changed(pool: string, caches: Pick<Caches, "vms" | "vmis" | "leases" | "queue">): string[] {
    const { namespace, name } = splitPoolKey(pool);
    const leasable = poolVMs(caches, namespace, name)
      .filter((vm) => isFree(vm) || isWarmReady(vm))
      .map((vm) => vm.name)
      .sort();
    const served = queueHead(caches.queue(pool), leasable.length);
    const signature = `${served.join(" ")}|${leasable.join(" ")}`;
    if (this.seen.get(pool) === signature) return [];
    this.seen.set(pool, signature);
    return served;
  }
}
