// VirtualMachineInstance controller (virt-controller + virt-handler in one): boots a podman service for each new
// VMI, reports it Running/Ready with its address, and scratches it when the VMI goes away.
import type { ObjectCache } from "@kubernetes/client-node";
import type { BootOptions, Instances } from "./instances.js";
import { isNotFound, type KubeClient } from "./kube.js";
import { errorMessage, log } from "./log.js";
import type { Recorder } from "./recorder.js";
import type { VMIKey } from "./state-dir.js";
import {
  BOOT_DELAY_ANNOTATION,
  NEVER_READY_ANNOTATION,
  PODMAN_LISTEN_ANNOTATION,
  VM,
  VMI,
  VMI_FINALIZER,
  controllerOf,
  splitKey,
  type VirtualMachine,
  type VirtualMachineInstance,
  type VirtualMachineInstanceStatus,
} from "./types.js";

export interface VMIControllerDeps {
  client: KubeClient;
  vms: ObjectCache<VirtualMachine>;
  vmis: ObjectCache<VirtualMachineInstance>;
  instances: Instances;
  recorder: Recorder;
  defaultBootDelayMs: number;
  nodeName: string;
}

const STATUS_ATTEMPTS = 5;

export class VMIController {
  constructor(private readonly d: VMIControllerDeps) {}

  readonly reconcile = async (k: string): Promise<void> => {
    const { namespace, name } = splitKey(k);
    const vmi = this.d.vmis.get(name, namespace);
    // Instances of this name that the API no longer has (hard deletes, or an older VMI of the same name).
    for (const uid of this.d.instances.uidsFor(namespace, name)) {
      if (vmi === undefined || vmi.metadata.uid !== uid) await this.d.instances.scratch(uid);
    }
    if (vmi === undefined) return;
    const uid = vmi.metadata.uid;

    if (vmi.metadata.deletionTimestamp !== undefined) {
      await this.d.instances.scratch(uid);
      await this.removeFinalizer(vmi);
      return;
    }
    if (!(vmi.metadata.finalizers ?? []).includes(VMI_FINALIZER)) {
      // KubeVirt adds it too; our own VMIs are created with it. The update event brings us back.
      await this.setFinalizers(vmi, [...(vmi.metadata.finalizers ?? []), VMI_FINALIZER]);
      return;
    }
    if (await this.collectOrphan(vmi)) return;

    const phase = vmi.status?.phase ?? "";
    if (this.d.instances.has(uid)) {
      if (phase === "Running" && this.d.instances.serviceExited(uid)) {
        await this.markFailed(vmi, "podman service exited");
      }
      return;
    }
    if (phase === "" || phase === "Pending" || phase === "Scheduling") {
      this.startBoot(vmi);
    } else if (phase === "Scheduled" || phase === "Running") {
      // Like a virt-launcher pod that vanished: the VM controller restarts it when the VM wants to run.
      await this.markFailed(vmi, "its podman service is gone (simulator restarted)");
    }
  };

  private startBoot(vmi: VirtualMachineInstance): void {
    const { namespace, name, uid } = vmi.metadata;
    const key: VMIKey = { namespace, vm: name, uid };
    const opts = this.bootOptions(vmi);
    const started = Date.now();
    let addressed: (ip: string) => void = () => {};
    const address = new Promise<string>((resolve) => (addressed = resolve));
    // boot() registers the instance synchronously: a concurrent reconcile of this VMI will not boot it twice.
    const booting = this.d.instances.boot(key, opts, addressed);
    log.info("booting", { namespace, vmi: name, uid, ...opts });
    void this.completeBoot(vmi, { address, booting }, started);
  }

  private async completeBoot(
    vmi: VirtualMachineInstance,
    boot: { address: Promise<string>; booting: Promise<string> },
    started: number,
  ): Promise<void> {
    const { namespace, name, uid } = vmi.metadata;
    try {
      await this.patchStatus(vmi, { phase: "Scheduling" });
    } catch (err) {
      log.warn("could not set phase Scheduling", { namespace, vmi: name, uid, error: errorMessage(err) });
    }
    // Like virt-handler: Running with the pod network's address while the guest still boots, Ready only once it
    // answers (the example pool's readiness probe).
    const running = (ip: string, ready: boolean): VirtualMachineInstanceStatus => ({
      phase: "Running",
      nodeName: this.d.nodeName,
      conditions: [
        {
          type: "Ready",
          ...(ready ? { status: "True" } : { status: "False", reason: "PodNotReady" }),
          lastProbeTime: null,
          lastTransitionTime: new Date().toISOString(),
        },
      ],
      interfaces: [{ name: "default", ipAddress: ip, ipAddresses: [ip] }],
    });
    const early = await Promise.race([boot.address, boot.booting.then(() => undefined, () => undefined)]);
    if (early !== undefined && !this.d.instances.cancelled(uid)) await this.reportStatus(vmi, "Running", running(early, false));
    let ip: string;
    try {
      ip = await boot.booting;
    } catch (err) {
      if (this.d.instances.cancelled(uid)) return;
      log.error("boot failed", { namespace, vmi: name, uid, error: errorMessage(err) });
      await this.markFailed(vmi, `boot failed: ${errorMessage(err)}`).catch((e: unknown) =>
        log.error("could not mark VMI Failed", { namespace, vmi: name, uid, error: errorMessage(e) }),
      );
      return;
    }
    // Recorded before the API shows Ready, so a test that saw Ready finds the entry.
    const durationMs = Date.now() - started;
    const storageDir = this.d.instances.facts(uid)?.storageDir ?? null;
    this.d.recorder.ready({ namespace, vm: name, uid, ip, storageDir }, durationMs);
    const reported = await this.reportStatus(vmi, "Ready", running(ip, true));
    if (reported) log.info("ready", { namespace, vmi: name, uid, ip, ms: durationMs });
  }

  /** A boot's status patch, retried a few times; false when it could not be written (or the VMI went). */
  private async reportStatus(vmi: VirtualMachineInstance, what: string, status: VirtualMachineInstanceStatus): Promise<boolean> {
    const { namespace, name, uid } = vmi.metadata;
    for (let attempt = 1; ; attempt++) {
      if (this.d.instances.cancelled(uid)) return false;
      try {
        await this.patchStatus(vmi, status);
        return true;
      } catch (err) {
        if (isNotFound(err) || attempt >= STATUS_ATTEMPTS) {
          log.error(`could not report VMI ${what}`, { namespace, vmi: name, uid, error: errorMessage(err) });
          return false;
        }
        await new Promise<void>((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
      }
    }
  }

  /** Boot delay, never-ready, podman's listener: the VM's own annotations win over its template's (the VMI's). */
  private bootOptions(vmi: VirtualMachineInstance): BootOptions {
    const owner = controllerOf(vmi.metadata);
    const vm = owner?.kind === VM.kind ? this.d.vms.get(owner.name, vmi.metadata.namespace) : undefined;
    const sources = [vm?.metadata.annotations, vm?.spec?.template?.metadata?.annotations, vmi.metadata.annotations];
    const lookup = (name: string): string | undefined => sources.map((a) => a?.[name]).find((v) => v !== undefined);

    let delayMs = this.d.defaultBootDelayMs;
    const rawDelay = lookup(BOOT_DELAY_ANNOTATION);
    if (rawDelay !== undefined) {
      const n = Number(rawDelay);
      if (Number.isInteger(n) && n >= 0) delayMs = n;
      else log.warn("ignoring invalid boot delay annotation", { vmi: vmi.metadata.name, value: rawDelay });
    }
    return {
      delayMs,
      neverReady: lookup(NEVER_READY_ANNOTATION) === "true",
      podmanListen: lookup(PODMAN_LISTEN_ANNOTATION) === "tcp" ? "tcp" : "socket",
    };
  }

  /** Deletes a VMI whose controlling VM is gone (the testenv runs no garbage collector). */
  private async collectOrphan(vmi: VirtualMachineInstance): Promise<boolean> {
    const owner = controllerOf(vmi.metadata);
    if (owner === undefined || owner.kind !== VM.kind) return false;
    const { namespace, name, uid } = vmi.metadata;
    if (this.d.vms.get(owner.name, namespace)?.metadata.uid === owner.uid) return false;
    // The cache may lag behind a VM created a moment ago: ask the API before deleting.
    const live = await this.d.client.get<VirtualMachine>(VM, namespace, owner.name);
    if (live?.metadata.uid === owner.uid) return false;
    log.info("deleting VMI of a deleted VM", { namespace, vmi: name, uid, ownerUid: owner.uid });
    await this.d.client.delete(VMI, namespace, name, { uid });
    return true;
  }

  private async markFailed(vmi: VirtualMachineInstance, message: string): Promise<void> {
    log.warn("VMI failed", { namespace: vmi.metadata.namespace, vmi: vmi.metadata.name, uid: vmi.metadata.uid, message });
    const now = new Date().toISOString();
    try {
      await this.patchStatus(vmi, {
        phase: "Failed",
        conditions: [{ type: "Ready", status: "False", reason: "Failed", message, lastProbeTime: null, lastTransitionTime: now }],
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /** Status merge patch that only applies to this very VMI (uid precondition), not a successor of the same name. */
  private async patchStatus(vmi: VirtualMachineInstance, status: VirtualMachineInstanceStatus): Promise<void> {
    const { namespace, name, uid } = vmi.metadata;
    await this.d.client.mergePatchStatus(VMI, namespace, name, { metadata: { uid }, status });
  }

  private async removeFinalizer(vmi: VirtualMachineInstance): Promise<void> {
    const finalizers = vmi.metadata.finalizers ?? [];
    if (!finalizers.includes(VMI_FINALIZER)) return;
    await this.setFinalizers(vmi, finalizers.filter((f) => f !== VMI_FINALIZER));
  }

  private async setFinalizers(vmi: VirtualMachineInstance, finalizers: string[]): Promise<void> {
    const { namespace, name, uid, resourceVersion } = vmi.metadata;
    try {
      // resourceVersion makes this a compare-and-swap: a conflict is retried from a fresh cache by the queue.
      await this.d.client.mergePatch(VMI, namespace, name, { metadata: { uid, resourceVersion, finalizers } });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}
