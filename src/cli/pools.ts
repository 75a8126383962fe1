import type { KubernetesObject, ObjectCache } from "@kubernetes/client-node";
import { buildViewState, type PoolView, type ViewCaches } from "../server/view-state.js";

// `kubectl vmbuild pools`: each pool's VMs as the web view shows them (the same function, over what the user may
// list instead of the controller's caches). Pure.

export interface Listed {
  pools: readonly KubernetesObject[];
  vms: readonly KubernetesObject[];
  vmis: readonly KubernetesObject[];
  /** The vmbuild Leases (app.kubernetes.io/managed-by=vmbuild). */
  leases: readonly KubernetesObject[];
  /** The runs the user may list: they name the phase of a VM's holder and make the queues. */
  runs: readonly KubernetesObject[];
}

export interface PoolCounts {
  total: number;
  free: number;
  leased: number;
  warm: number;
  queued: number;
}

export function poolViews(listed: Listed, now: Date): PoolView[] {
  const caches: ViewCaches = {
    pools: listCache(listed.pools),
    vms: listCache(listed.vms),
    vmis: listCache(listed.vmis),
    leases: listCache(listed.leases),
    runs: listCache(listed.runs),
  };
  // Whatever was listed, the user may see: RBAC has already decided.
  return buildViewState(caches, now, () => true).pools;
}

export function countsOf(pool: PoolView): PoolCounts {
  const has = (...states: string[]) => pool.vms.filter((vm) => states.includes(vm.state)).length;
  return {
    total: pool.vms.length,
    free: has("free"),
    leased: pool.vms.filter((vm) => vm.holder !== undefined).length,
    warm: has("warm", "warming"),
    queued: pool.queue.length,
  };
}

export function formatPools(pools: readonly PoolView[], namespace: string): string {
  if (pools.length === 0) return `No VirtualMachinePools in ${namespace}.\n`;
  const rows = [["POOL", "VMS", "FREE", "LEASED", "WARM", "QUEUED"]];
  for (const pool of pools) {
    const c = countsOf(pool);
    rows.push([pool.name, c.total, c.free, c.leased, c.warm, c.queued].map(String));
  }
  const out = [table(rows)];
  for (const pool of pools) {
    out.push("", `${pool.namespace}/${pool.name}:`);
    const vmRows = pool.vms.map((vm) => {
      const h = vm.holder;
      return [`  ${vm.name}`, vm.state, h ? `${h.namespace}/${h.name} (attempt ${h.attempt}${h.phase ? `, ${h.phase}` : ""})` : ""];
    });
    if (vmRows.length > 0) out.push(table(vmRows));
    else out.push("  no VMs");
    for (const q of pool.queue) out.push(`  queued ${q.position}: ${q.namespace}/${q.name} (waiting ${q.waitingSeconds}s)`);
  }
  return `${out.join("\n")}\n`;
}

function table(rows: readonly string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join("  ").trimEnd()).join("\n");
}

/** An ObjectCache over a list read once. */
export function listCache(items: readonly KubernetesObject[]): ObjectCache<KubernetesObject> {
  return {
    get: (name, namespace) => items.find((o) => o.metadata?.name === name && o.metadata?.namespace === namespace),
    list: (namespace) => (namespace === undefined ? items : items.filter((o) => o.metadata?.namespace === namespace)),
  };
}
