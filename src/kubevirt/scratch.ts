import type { VMView } from "./vm.js";

// The one scratch sequence, for a run's VMs, a run's extra leases, retiring warm VMs and the sweeper's leaked VMs.
// A containerDisk VM boots from a fresh disk on every start, so stopping it is what throws the build's disk away.
// Pure.

/**
 * stop: the VM still wants to run. deleteVMI: stopped, but its instance is still there. wait: the instance is
 * being deleted. gone: stopped with no instance, so its lease may go.
 */
export type ScratchStep = "stop" | "deleteVMI" | "wait" | "gone";

/**
 * How long after its stop KubeVirt is left to delete a VM's instance itself (it does so for every stopped VM)
 * before the scratch deletes it: sooner, the delete mostly races KubeVirt's own and costs a request for nothing.
 */
export const VMI_DELETE_GRACE_MS = 5_000;

/**
 * The next step for what is seen of a VM (undefined: nothing is seen of it). Stop first, delete the instance only
 * once the VM is seen stopped: deleting the instance of a VM that still wants to run makes KubeVirt start a new one.
 * `sinceStopMs`: how long ago the scratch stopped the VM, when it did (unknown: the instance goes at once).
 */
export function scratchStep(vm: VMView | undefined, sinceStopMs = Number.POSITIVE_INFINITY): ScratchStep {
  if (vm?.wantsRunning) return "stop";
  if (vm?.vmi) return vm.vmi.deleting || sinceStopMs < VMI_DELETE_GRACE_MS ? "wait" : "deleteVMI";
  return "gone";
}

/**
 * How long a Lease on a VM not started yet may be a start on its way: whoever leases a VM creates its Lease, then
 * starts it. Releasing such a Lease in between would leave the VM running with no Lease.
 */
export const LEASE_START_GRACE_MS = 5_000;

/**
 * scratchStep for a VM another decision leased (a racing replica's, a leaked one): a stopped VM whose Lease is
 * younger than LEASE_START_GRACE_MS is waited for, not called gone.
 */
export function strayScratchStep(vm: VMView | undefined, now: Date): ScratchStep {
  const step = scratchStep(vm);
  if (step !== "gone" || !vm?.leasedSince) return step;
  return now.getTime() - Date.parse(vm.leasedSince) < LEASE_START_GRACE_MS ? "wait" : "gone";
}
