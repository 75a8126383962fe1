// The order in which waiting runs get free VMs of one pool: round-robin across namespaces, FIFO within one.
// Stateless, derived from the runs themselves: a run's rank is (its index within its namespace's queue, when its
// namespace was last given a VM of this pool). The least recently served namespace goes first, so a namespace with
// a hundred queued runs delays another namespace's single run by at most one turn.

export interface Waiting {
  key: string; // namespace/name
  namespace: string;
  queuedAt: string; // RFC3339
}

/** lastServed: namespace → RFC3339 time its latest run leased a VM of this pool (absent: never). */
export function fairOrder(waiting: readonly Waiting[], lastServed: ReadonlyMap<string, string>): string[] {
  const byNamespace = new Map<string, Waiting[]>();
  for (const w of waiting) {
    const list = byNamespace.get(w.namespace) ?? [];
    list.push(w);
    byNamespace.set(w.namespace, list);
  }
  const ranked: { key: string; round: number; served: string; namespace: string }[] = [];
  for (const [namespace, list] of byNamespace) {
    list.sort((a, b) => a.queuedAt.localeCompare(b.queuedAt) || a.key.localeCompare(b.key));
    const served = lastServed.get(namespace) ?? "";
    list.forEach((w, round) => ranked.push({ key: w.key, round, served, namespace }));
  }
  ranked.sort(
    (a, b) => a.round - b.round || a.served.localeCompare(b.served) || a.namespace.localeCompare(b.namespace),
  );
  return ranked.map((r) => r.key);
}

/** How many runs are ahead of `key`; a run not in the list yet counts as last. */
export function positionOf(key: string, order: readonly string[]): number {
  const at = order.indexOf(key);
  return at === -1 ? order.length : at;
}
