import { z } from "zod";
import type { VMLeaseView } from "../lease/leases.js";

// What the controller reads from KubeVirt objects, validated at the edge. Unknown fields are ignored.

/** A VM as the controller sees it: its spec, its instance and its Lease, joined. */
export interface VMView {
  name: string;
  /** The VM's spec asks KubeVirt to run it (runStrategy Always/RerunOnFailure, or running: true). */
  wantsRunning: boolean;
  vmi?: {
    phase: string;
    ready: boolean;
    address?: string;
    deleting: boolean;
  };
  /** Holder identity of the VM's lease, if leased. */
  leaseHolder?: string;
  /** When the lease was last taken (by a run, or by the warm-pool keeper). */
  leasedSince?: string;
}

const OwnerRef = z.object({ kind: z.string(), name: z.string(), controller: z.boolean().optional() });

export const VirtualMachineSchema = z.object({
  metadata: z.object({
    name: z.string(),
    namespace: z.string(),
    ownerReferences: z.array(OwnerRef).optional(),
  }),
  spec: z
    .object({
      runStrategy: z.string().optional(),
      running: z.boolean().optional(),
    })
    .default({}),
});

export const VMISchema = z.object({
  metadata: z.object({ name: z.string(), namespace: z.string(), deletionTimestamp: z.string().optional() }),
  status: z
    .object({
      phase: z.string().optional(),
      conditions: z.array(z.object({ type: z.string(), status: z.string() })).optional(),
      interfaces: z.array(z.object({ ipAddress: z.string().optional() })).optional(),
    })
    .default({}),
});

export type VirtualMachine = z.infer<typeof VirtualMachineSchema>;
export type VMI = z.infer<typeof VMISchema>;

const RUNNING_STRATEGIES = new Set(["Always", "RerunOnFailure"]);

export function wantsRunning(vm: VirtualMachine): boolean {
  return vm.spec.running === true || RUNNING_STRATEGIES.has(vm.spec.runStrategy ?? "");
}

export function belongsToPool(vm: VirtualMachine, pool: string): boolean {
  return (vm.metadata.ownerReferences ?? []).some((o) => o.kind === "VirtualMachinePool" && o.name === pool);
}

/**
 * The patch that starts or stops a VM. VMs carry either `running` (deprecated, as the article's pool) or
 * `runStrategy`, never both: keep whichever the VM uses.
 */
export function runPatch(vm: VirtualMachine, run: boolean): { spec: Record<string, unknown> } {
  if (vm.spec.running !== undefined) return { spec: { running: run } };
  return { spec: { runStrategy: run ? "Always" : "Halted" } };
}

/** Free to lease: no Lease on it, stopped, and no instance left (a scratched VM, or one never started). */
export function isFree(vm: VMView): boolean {
  return !vm.leaseHolder && !vm.wantsRunning && !vm.vmi;
}

export function vmView(vm: VirtualMachine, vmi: VMI | undefined, lease: VMLeaseView | undefined): VMView {
  return {
    name: vm.metadata.name,
    wantsRunning: wantsRunning(vm),
    ...(vmi ? { vmi: vmiView(vmi) } : {}),
    ...(lease?.holder ? { leaseHolder: lease.holder, ...(lease.since ? { leasedSince: lease.since } : {}) } : {}),
  };
}

/** A VM's instance as the controller sees it. */
export function vmiView(vmi: VMI): NonNullable<VMView["vmi"]> {
  const address = vmi.status.interfaces?.[0]?.ipAddress;
  return {
    phase: vmi.status.phase ?? "",
    ready: (vmi.status.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"),
    ...(address ? { address } : {}),
    deleting: vmi.metadata.deletionTimestamp !== undefined,
  };
}
