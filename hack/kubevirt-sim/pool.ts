// VirtualMachinePool controller: VMs <pool>-<n> for n in 0..replicas-1 (lowest free index first), created from
// spec.virtualMachineTemplate; scale-down deletes the highest indexes; a template change rewrites the VMs and
// deletes their outdated running instances, as KubeVirt's pool does by default.
import { createHash } from "node:crypto";
import type { ObjectCache } from "@kubernetes/client-node";
import { isConflict, type KubeClient, type NewObject } from "./kube.js";
import { log } from "./log.js";
import {
  POOL_REVISION_LABEL,
  VM,
  VMI,
  controllerOf,
  splitKey,
  type ResourceRef,
  type VirtualMachine,
  type VirtualMachineInstance,
  type VirtualMachinePool,
} from "./types.js";

export interface PoolControllerDeps {
  client: KubeClient;
  pools: ObjectCache<VirtualMachinePool>;
  vms: ObjectCache<VirtualMachine>;
  vmis: ObjectCache<VirtualMachineInstance>;
  poolRef: ResourceRef;
}

/** JSON with sorted keys, so the revision does not depend on how the API server orders fields. */
function canonicalJSON(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJSON).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJSON(v)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

export function revisionName(pool: VirtualMachinePool): string {
  const template = pool.spec?.virtualMachineTemplate ?? {};
  const hash = createHash("sha256").update(canonicalJSON(template)).digest("hex").slice(0, 10);
  return `${pool.metadata.name}-${hash}`;
}

/** n of "<pool>-<n>", or undefined for names the pool did not generate. */
function indexOf(pool: string, vmName: string): number | undefined {
  const prefix = `${pool}-`;
  if (!vmName.startsWith(prefix)) return undefined;
  const rest = vmName.slice(prefix.length);
  return /^(0|[1-9]\d*)$/.test(rest) ? Number(rest) : undefined;
}

export class PoolController {
  constructor(private readonly d: PoolControllerDeps) {}

  readonly reconcile = async (k: string): Promise<void> => {
    const { namespace, name } = splitKey(k);
    const pool = this.d.pools.get(name, namespace);
    // A deleted pool's VMs are collected by the VM controller.
    if (pool === undefined || pool.metadata.deletionTimestamp !== undefined) return;

    const owned = this.d.vms
      .list(namespace)
      .filter((vm) => controllerOf(vm.metadata)?.uid === pool.metadata.uid && vm.metadata.deletionTimestamp === undefined);
    const revision = revisionName(pool);
    if (pool.spec?.paused !== true) {
      const replicas = pool.spec?.replicas ?? 1;
      if (owned.length < replicas) await this.scaleUp(pool, replicas - owned.length, revision);
      if (owned.length > replicas) await this.scaleDown(pool, owned, owned.length - replicas);
      for (const vm of owned) {
        if (vm.metadata.labels?.[POOL_REVISION_LABEL] !== revision) await this.updateVM(pool, vm, revision);
      }
    }
    await this.updateStatus(pool, owned);
  };

  private vmBody(pool: VirtualMachinePool, vmName: string, revision: string): NewObject {
    const template = pool.spec?.virtualMachineTemplate ?? {};
    return {
      apiVersion: `${VM.group}/${VM.version}`,
      kind: VM.kind,
      metadata: {
        name: vmName,
        namespace: pool.metadata.namespace,
        labels: { ...(template.metadata?.labels ?? {}), [POOL_REVISION_LABEL]: revision },
        annotations: { ...(template.metadata?.annotations ?? {}) },
        ownerReferences: [
          {
            apiVersion: pool.apiVersion ?? `${this.d.poolRef.group}/${this.d.poolRef.version}`,
            kind: pool.kind ?? this.d.poolRef.kind,
            name: pool.metadata.name,
            uid: pool.metadata.uid,
            controller: true,
            blockOwnerDeletion: true,
          },
        ],
      },
      spec: template.spec ?? {},
    };
  }

  private async scaleUp(pool: VirtualMachinePool, count: number, revision: string): Promise<void> {
    const { namespace, name } = pool.metadata;
    // Any VM holding a name blocks that index, ours or not.
    const taken = new Set(this.d.vms.list(namespace).map((vm) => vm.metadata.name));
    let created = 0;
    for (let n = 0; created < count; n++) {
      const vmName = `${name}-${n}`;
      if (taken.has(vmName)) continue;
      try {
        await this.d.client.create<VirtualMachine>(VM, namespace, this.vmBody(pool, vmName, revision));
        log.info("pool created VM", { namespace, pool: name, vm: vmName });
      } catch (err) {
        // Created a moment ago and not in the cache yet: the VM event brings us back with a fresh view.
        if (!isConflict(err)) throw err;
      }
      created++;
    }
  }

  private async scaleDown(pool: VirtualMachinePool, owned: VirtualMachine[], count: number): Promise<void> {
    const { namespace, name } = pool.metadata;
    const order = (vm: VirtualMachine): number => indexOf(name, vm.metadata.name) ?? Number.MAX_SAFE_INTEGER;
    const victims = [...owned].sort((a, b) => order(b) - order(a)).slice(0, count);
    for (const vm of victims) {
      log.info("pool deleting VM", { namespace, pool: name, vm: vm.metadata.name });
      await this.d.client.delete(VM, namespace, vm.metadata.name, { uid: vm.metadata.uid });
    }
  }

  /** Template changed: rewrite spec, labels and annotations (anything written there is lost), restart if running. */
  private async updateVM(pool: VirtualMachinePool, vm: VirtualMachine, revision: string): Promise<void> {
    const { namespace, name, uid } = vm.metadata;
    const body = this.vmBody(pool, name, revision);
    await this.d.client.jsonPatch<VirtualMachine>(VM, namespace, name, [
      { op: "test", path: "/metadata/uid", value: uid },
      { op: "replace", path: "/spec", value: body.spec },
      { op: "add", path: "/metadata/labels", value: body.metadata?.labels ?? {} },
      { op: "add", path: "/metadata/annotations", value: body.metadata?.annotations ?? {} },
    ]);
    log.info("pool updated VM to a new template", { namespace, pool: pool.metadata.name, vm: name, revision });
    const vmi = this.d.vmis.get(name, namespace);
    if (vmi !== undefined && controllerOf(vmi.metadata)?.uid === uid && vmi.metadata.deletionTimestamp === undefined) {
      log.info("pool deleting outdated VMI", { namespace, vm: name, uid: vmi.metadata.uid });
      await this.d.client.delete(VMI, namespace, name, { uid: vmi.metadata.uid });
    }
  }

  private async updateStatus(pool: VirtualMachinePool, owned: VirtualMachine[]): Promise<void> {
    const replicas = owned.length;
    const readyReplicas = owned.filter((vm) => vm.status?.ready === true).length;
    if (pool.status?.["replicas"] === replicas && pool.status?.["readyReplicas"] === readyReplicas) return;
    const { namespace, name, uid } = pool.metadata;
    await this.d.client.mergePatchStatus(this.d.poolRef, namespace, name, {
      metadata: { uid },
      status: { replicas, readyReplicas },
    });
  }
}
