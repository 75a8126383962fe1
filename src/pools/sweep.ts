import { parseHolder } from "../lease/holder.js";
import { RETIRING_HOLDER, WARM_HOLDER } from "./warm.js";

// Which VM leases no live run stands behind any more: their VMs are scratched and the leases released. Pure.

export interface HeldLease {
  namespace: string;
  pool: string;
  vm: string;
  holder: string;
}

export interface RunSummary {
  uid: string;
  attempt: number;
  finished: boolean;
}

export function orphanedLeases(
  leases: readonly HeldLease[],
  runs: (namespace: string, name: string) => RunSummary | undefined,
): { lease: HeldLease; why: string }[] {
  const orphans: { lease: HeldLease; why: string }[] = [];
  for (const lease of leases) {
    // The warm-pool keeper's own VMs: it looks after them itself.
    if (lease.holder === WARM_HOLDER || lease.holder === RETIRING_HOLDER) continue;
    const holder = parseHolder(lease.holder);
    if (!holder) {
      orphans.push({ lease, why: `unreadable holder "${lease.holder}"` });
      continue;
    }
    const run = runs(holder.namespace, holder.name);
    const who = `${holder.namespace}/${holder.name}`;
    if (!run) orphans.push({ lease, why: `CustomRun ${who} is gone` });
    else if (run.uid !== holder.uid) orphans.push({ lease, why: `CustomRun ${who} was re-created` });
    else if (run.finished) orphans.push({ lease, why: `CustomRun ${who} has finished` });
    // A holder attempt above the run's is a retry whose status write is still on its way: live.
    else if (holder.attempt < run.attempt) orphans.push({ lease, why: `attempt ${holder.attempt} of ${who} is over` });
  }
  return orphans;
}
