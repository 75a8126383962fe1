// VirtualMachine controller: keeps a VMI of the VM's name in line with spec.runStrategy / spec.running, and
// mirrors the VMI into the VM's status.
import type { ObjectCache } from "@kubernetes/client-node";
import { isConflict, type KubeClient, type NewObject } from "./kube.js";
import { log } from "./log.js";
import {
  POOL_KIND,
  VM,
  VMI,
  VMI_FINALIZER,
  controllerOf,
  isReady,
  splitKey,
  type Condition,
  type ResourceRef,
  type VirtualMachine,
  type VirtualMachineInstance,
  type VirtualMachinePool,
  type VirtualMachineStatus,
} from "./types.js";

export interface VMControllerDeps {
  client: KubeClient;
  pools: ObjectCache<VirtualMachinePool>;
  vms: ObjectCache<VirtualMachine>;
  vmis: ObjectCache<VirtualMachineInstance>;
  poolRef: ResourceRef;
  /** Reconcile `key` again after `ms` (restart backoff). */
  requeueAfter: (key: string, ms: number) => void;
}

/** Restart backoff for VMs whose VMIs keep failing, like KubeVirt's CrashLoopBackOff: 0, 1 s, 2 s, ... 30 s. */
const RESTART_BACKOFF_BASE_MS = 1000;
const RESTART_BACKOFF_MAX_MS = 30_000;

interface FailureHistory {
  count: number;
  /** Failed VMI uid -> when this controller first saw it failed. */
  seen: Map<string, number>;
}

/** What the VM asks for. Manual and Once leave the VMI alone (no start/stop subresources in the testenv). */
export type RunIntent = "run" | "stop" | "leave";

export function runIntent(vm: VirtualMachine): RunIntent {
  const strategy = vm.spec?.runStrategy;
  if (strategy !== undefined) {
    if (strategy === "Always" || strategy === "RerunOnFailure") return "run";
    if (strategy === "Halted") return "stop";
    return "leave";
  }
  return vm.spec?.running === true ? "run" : "stop";
}

/** Whether a finished VMI of a running VM is replaced, as KubeVirt does for Always and RerunOnFailure. */
function restartable(vm: VirtualMachine, vmi: VirtualMachineInstance): boolean {
  const phase = vmi.status?.phase;
  if (phase === "Failed") return true;
  return phase === "Succeeded" && vm.spec?.runStrategy !== "RerunOnFailure";
}

export function vmStatusFor(
  vm: VirtualMachine,
  vmi: VirtualMachineInstance | undefined,
  backingOff = false,
): VirtualMachineStatus {
  const ready = (status: "True" | "False", reason: string): Condition[] => [{ type: "Ready", status, reason }];
  if (vmi === undefined || controllerOf(vmi.metadata)?.uid !== vm.metadata.uid) {
    return { printableStatus: "Stopped", ready: false, created: false, conditions: ready("False", "VMINotExists") };
  }
  if (vmi.metadata.deletionTimestamp !== undefined) {
    return { printableStatus: "Stopping", ready: false, created: true, conditions: ready("False", "Stopping") };
  }
  const phase = vmi.status?.phase;
  if (phase === "Running" && isReady(vmi)) {
    return { printableStatus: "Running", ready: true, created: true, conditions: ready("True", "Ready") };
  }
  if (phase === "Failed" && backingOff) {
    return { printableStatus: "CrashLoopBackOff", ready: false, created: true, conditions: ready("False", phase) };
  }
  if (phase === "Failed" || phase === "Succeeded") {
    return { printableStatus: "Stopped", ready: false, created: true, conditions: ready("False", phase) };
  }
  return { printableStatus: "Starting", ready: false, created: true, conditions: ready("False", "NotReady") };
}

function sameStatus(a: VirtualMachineStatus | undefined, b: VirtualMachineStatus): boolean {
  const readyOf = (s: VirtualMachineStatus | undefined): string =>
    (s?.conditions ?? []).filter((c) => c.type === "Ready").map((c) => `${c.status}/${c.reason ?? ""}`).join();
  return (
    a !== undefined &&
    a.printableStatus === b.printableStatus &&
    a.ready === b.ready &&
    a.created === b.created &&
    readyOf(a) === readyOf(b)
  );
}

export class VMController {
  private readonly failures = new Map<string, FailureHistory>();

  constructor(private readonly d: VMControllerDeps) {}

  /** ms to wait before replacing this failed VMI; 0 to go ahead. */
  private restartDelay(vm: VirtualMachine, vmi: VirtualMachineInstance): number {
    const history = this.failures.get(vm.metadata.uid) ?? { count: 0, seen: new Map<string, number>() };
    this.failures.set(vm.metadata.uid, history);
    let failedAt = history.seen.get(vmi.metadata.uid);
    if (failedAt === undefined) {
      failedAt = Date.now();
      history.seen.set(vmi.metadata.uid, failedAt);
      history.count++;
    }
    const backoff = history.count <= 1 ? 0 : Math.min(RESTART_BACKOFF_BASE_MS * 2 ** (history.count - 2), RESTART_BACKOFF_MAX_MS);
    return Math.max(0, failedAt + backoff - Date.now());
  }

  readonly reconcile = async (k: string): Promise<void> => {
    const { namespace, name } = splitKey(k);
    const vm = this.d.vms.get(name, namespace);
    if (vm === undefined) return;
    if (await this.collectOrphan(vm)) return;

    const vmi = this.d.vmis.get(name, namespace);
    const ours = vmi !== undefined && controllerOf(vmi.metadata)?.uid === vm.metadata.uid;
    const intent = runIntent(vm);
    let backingOff = false;
    if (ours && isReady(vmi)) this.failures.delete(vm.metadata.uid);
    if (vmi === undefined) {
      if (intent === "run") await this.createVMI(vm);
    } else if (ours && vmi.metadata.deletionTimestamp === undefined) {
      const restart = intent === "run" && restartable(vm, vmi);
      const wait = restart ? this.restartDelay(vm, vmi) : 0;
      if (wait > 0) {
        backingOff = true;
        this.d.requeueAfter(k, wait);
      } else if (intent === "stop" || restart) {
        log.info("deleting VMI", { namespace, vm: name, uid: vmi.metadata.uid, intent, phase: vmi.status?.phase });
        await this.d.client.delete(VMI, namespace, name, { uid: vmi.metadata.uid });
      }
    }
    // A VMI of the same name owned by someone else (e.g. a previous VM of this name) is left to the VMI GC.
    await this.updateStatus(vm, vmi, backingOff);
  };

  private async createVMI(vm: VirtualMachine): Promise<void> {
    const { namespace, name, uid } = vm.metadata;
    const template = vm.spec?.template ?? {};
    const body: NewObject = {
      apiVersion: `${VMI.group}/${VMI.version}`,
      kind: VMI.kind,
      metadata: {
        name,
        namespace,
        labels: { ...(template.metadata?.labels ?? {}) },
        annotations: { ...(template.metadata?.annotations ?? {}) },
        ownerReferences: [
          { apiVersion: `${VM.group}/${VM.version}`, kind: VM.kind, name, uid, controller: true, blockOwnerDeletion: true },
        ],
        finalizers: [VMI_FINALIZER],
      },
      spec: template.spec ?? {},
    };
    try {
      const created = await this.d.client.create<VirtualMachineInstance>(VMI, namespace, body);
      log.info("created VMI", { namespace, vm: name, uid: created.metadata.uid });
    } catch (err) {
      // The cache had not seen a VMI created a moment ago: the next event reconciles again.
      if (!isConflict(err)) throw err;
    }
  }

  private async updateStatus(vm: VirtualMachine, vmi: VirtualMachineInstance | undefined, backingOff: boolean): Promise<void> {
    const status = vmStatusFor(vm, vmi, backingOff);
    if (sameStatus(vm.status, status)) return;
    const { namespace, name, uid } = vm.metadata;
    await this.d.client.mergePatchStatus(VM, namespace, name, { metadata: { uid }, status });
  }

  /** Deletes a VM whose controlling pool is gone (the testenv runs no garbage collector). */
  private async collectOrphan(vm: VirtualMachine): Promise<boolean> {
    const owner = controllerOf(vm.metadata);
    if (owner === undefined || owner.kind !== POOL_KIND) return false;
    const { namespace, name, uid } = vm.metadata;
    if (this.d.pools.get(owner.name, namespace)?.metadata.uid === owner.uid) return false;
    const live = await this.d.client.get<VirtualMachinePool>(this.d.poolRef, namespace, owner.name);
    if (live?.metadata.uid === owner.uid) return false;
    log.info("deleting VM of a deleted pool", { namespace, vm: name, uid, pool: owner.name });
    await this.d.client.delete(VM, namespace, name, { uid });
    return true;
  }
}
