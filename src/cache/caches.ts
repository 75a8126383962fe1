import type { KubernetesObject, ObjectCache } from "@kubernetes/client-node";
import { parseOnce } from "../kube/parse-once.js";
import {
  belongsToPool,
  vmiView,
  vmView,
  VirtualMachineSchema,
  VMISchema,
  type VirtualMachine,
  type VMView,
} from "../kubevirt/vm.js";
import { leaseName } from "../lease/holder.js";
import { readVMLease } from "../lease/leases.js";
import type { QueueEntry } from "./pool-queues.js";

// The controller's read model: the informers' caches, and the views of pools and VMs built from them. Read by
// the reconciler, the warm-pool keeper, the sweeper and the web view; written only by the informers.

export interface Caches {
  runs: ObjectCache<KubernetesObject>;
  vmbuilds: ObjectCache<KubernetesObject>;
  pools: ObjectCache<KubernetesObject>;
  vms: ObjectCache<KubernetesObject>;
  vmis: ObjectCache<KubernetesObject>;
  leases: ObjectCache<KubernetesObject>;
  /** poolQueue over `runs`, ranked once per change of the runs (PoolQueues). */
  queue(pool: string): readonly QueueEntry[];
}

const parseVM = parseOnce(VirtualMachineSchema);
const parseVMI = parseOnce(VMISchema);

/** The pool's VirtualMachines, without their VMIs and leases: enough to count them (on every VM event). */
export function poolMembers(caches: Pick<Caches, "vms">, namespace: string, pool: string): VirtualMachine[] {
  return caches.vms
    .list(namespace)
    .map(parseVM)
    .flatMap((r) => (r.success && belongsToPool(r.data, pool) ? [r.data] : []));
}

/** The pool's VMs as the controller sees them: each with its VMI and its lease's holder. Shared with the web view. */
export function poolVMs(caches: Pick<Caches, "vms" | "vmis" | "leases">, namespace: string, pool: string): VMView[] {
  return poolMembers(caches, namespace, pool).map((vm) => joined(caches, namespace, vm));
}

/**
 * One VM by name, as the controller sees it. An instance whose VM is gone is still seen, as a VM that does not want
 * to run: it is still there to delete.
 */
export function cachedVM(caches: Pick<Caches, "vms" | "vmis" | "leases">, namespace: string, name: string): VMView | undefined {
  const vm = parseVM(caches.vms.get(name, namespace));
  if (vm.success) return joined(caches, namespace, vm.data);
  const vmi = parseVMI(caches.vmis.get(name, namespace));
  return vmi.success ? { name, wantsRunning: false, vmi: vmiView(vmi.data) } : undefined;
}

function joined(caches: Pick<Caches, "vmis" | "leases">, namespace: string, vm: VirtualMachine): VMView {
  const vmi = parseVMI(caches.vmis.get(vm.metadata.name, namespace));
  const lease = readVMLease(caches.leases.get(leaseName(vm.metadata.name), namespace));
  return vmView(vm, vmi.success ? vmi.data : undefined, lease);
}
