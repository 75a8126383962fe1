import type { KubernetesObject, ObjectCache } from "@kubernetes/client-node";
import { fairOrder, type Waiting } from "../lease/fair-queue.js";
import { readRunState } from "../tekton/run-state.js";

// Each pool's fair queue of waiting runs, as the cached runs' own status says it.

export interface QueueEntry {
  key: string;
  /** How many of the pool's VMs the run needs. */
  demand: number;
}

/**
 * The pool's waiting runs, first served first, each with the number of the pool's VMs it needs. Shared with the
 * web view, so both agree.
 */
export function poolQueue(pool: string, runs: Iterable<unknown>): QueueEntry[] {
  const waiting: Waiting[] = [];
  const demand = new Map<string, number>();
  const lastServed = new Map<string, string>();
  for (const raw of runs) {
    const other = raw as { metadata?: { namespace?: string; name?: string }; status?: { extraFields?: unknown; completionTime?: string } };
    const st = readRunState(other.status?.extraFields);
    const ns = other.metadata?.namespace;
    const needs = st?.slots.filter((s) => s.pool === pool).length ?? 0;
    if (!st || needs === 0 || !ns || !other.metadata?.name) continue;
    if (st.leasedAt && (lastServed.get(ns) ?? "") < st.leasedAt) lastServed.set(ns, st.leasedAt);
    if (st.phase === "Queued" && !other.status?.completionTime) {
      const key = `${ns}/${other.metadata.name}`;
      waiting.push({ key, namespace: ns, queuedAt: st.queuedAt });
      demand.set(key, needs);
    }
  }
  return fairOrder(waiting, lastServed).map((key) => ({ key, demand: demand.get(key) ?? 1 }));
}

/**
 * Each pool's queue, ranked once per change of its waiting runs. Every VM, VMI and Lease event and every reconcile
 * of a waiting run asks for it, and a ranking walks every run in the cache, finished ones included.
 */
export class PoolQueues {
  private readonly ranked = new Map<string, readonly QueueEntry[]>();
  /** The runs in the rankings kept. */
  private readonly ranks = new Set<string>();

  constructor(private readonly runs: Pick<ObjectCache<KubernetesObject>, "list">) {}

  /**
   * To be called on every add and update of the runs cache, before anything reads a queue again. Only a run that
   * waits, or was in a queue, changes a ranking: a run that waits neither before nor after the change took no VM
   * (which is what moves a pool's last-served time) and left no queue.
   */
  runChanged(obj: KubernetesObject): void {
    const key = `${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`;
    const status = (obj as { status?: { extraFields?: unknown; completionTime?: string } }).status;
    const waits = readRunState(status?.extraFields)?.phase === "Queued" && !status?.completionTime;
    if (waits || this.ranks.has(key)) this.runsChanged();
  }

  /** Any change of the runs, e.g. a delete: every pool is ranked afresh. */
  runsChanged(): void {
    this.ranked.clear();
    this.ranks.clear();
  }

  of(pool: string): readonly QueueEntry[] {
    let queue = this.ranked.get(pool);
    if (queue === undefined) {
      queue = poolQueue(pool, this.runs.list());
      this.ranked.set(pool, queue);
      for (const { key } of queue) this.ranks.add(key);
    }
    return queue;
  }
}
