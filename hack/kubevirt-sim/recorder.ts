// Turns lifecycle facts into record.jsonl lines. "Created" means first seen by any sim process on this state dir,
// so a restarted sim does not record the VMs it re-lists as new.
import { RecordWriter, readRecord } from "./record.js";
import type { VirtualMachine, VirtualMachineInstance } from "./types.js";

export interface InstanceFacts {
  namespace: string;
  vm: string;
  uid: string;
  ip: string | null;
  storageDir: string | null;
}

export class Recorder {
  private readonly writer: RecordWriter;
  private readonly seen = new Set<string>();

  constructor(stateDir: string) {
    this.writer = new RecordWriter(stateDir);
    for (const e of readRecord(stateDir)) {
      if (e.event === "vm-created" && e.vmUid !== undefined) this.seen.add(e.vmUid);
      if (e.event === "vmi-created" && e.vmi !== null) this.seen.add(e.vmi);
    }
  }

  vmSeen(vm: VirtualMachine): void {
    const uid = vm.metadata.uid;
    if (this.seen.has(uid)) return;
    this.seen.add(uid);
    const { namespace, name } = vm.metadata;
    this.writer.append({ event: "vm-created", namespace, vm: name, vmUid: uid, vmi: null, ip: null, storageDir: null });
  }

  vmDeleted(vm: VirtualMachine): void {
    const { namespace, name, uid } = vm.metadata;
    this.writer.append({ event: "vm-deleted", namespace, vm: name, vmUid: uid, vmi: null, ip: null, storageDir: null });
  }

  vmiSeen(vmi: VirtualMachineInstance): void {
    const uid = vmi.metadata.uid;
    if (this.seen.has(uid)) return;
    this.seen.add(uid);
    const { namespace, name } = vmi.metadata;
    this.writer.append({ event: "vmi-created", namespace, vm: name, vmi: uid, ip: null, storageDir: null });
  }

  podmanStarted(f: InstanceFacts, pid: number): void {
    this.writer.append({ event: "podman-started", namespace: f.namespace, vm: f.vm, vmi: f.uid, ip: f.ip, storageDir: f.storageDir, pid });
  }

  ready(f: InstanceFacts, durationMs: number): void {
    this.writer.append({ event: "ready", namespace: f.namespace, vm: f.vm, vmi: f.uid, ip: f.ip, storageDir: f.storageDir, durationMs });
  }

  /** Only call once the podman service is dead and its storage removed. */
  scratched(f: InstanceFacts, durationMs: number): void {
    this.writer.append({ event: "scratched", namespace: f.namespace, vm: f.vm, vmi: f.uid, ip: f.ip, storageDir: f.storageDir, durationMs });
  }
}
