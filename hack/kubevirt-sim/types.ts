// The parts of KubeVirt's objects the sim reads and writes. The CRDs preserve unknown fields, so everything else
// passes through untouched.
import type { KubernetesObject, V1ObjectMeta, V1OwnerReference } from "@kubernetes/client-node";

export interface ResourceRef {
  group: string;
  version: string;
  plural: string;
  kind: string;
}

export const VM: ResourceRef = { group: "kubevirt.io", version: "v1", plural: "virtualmachines", kind: "VirtualMachine" };
export const VMI: ResourceRef = {
  group: "kubevirt.io",
  version: "v1",
  plural: "virtualmachineinstances",
  kind: "VirtualMachineInstance",
};
export const POOL_GROUP = "pool.kubevirt.io";
export const POOL_PLURAL = "virtualmachinepools";
export const POOL_KIND = "VirtualMachinePool";

export const POOL_REVISION_LABEL = "kubevirt.io/vm-pool-revision-name";
/** KubeVirt's VMI finalizer: deletion completes only after the "domain" (our podman) is gone and scratched. */
export const VMI_FINALIZER = "foregroundDeleteVirtualMachine";
export const BOOT_DELAY_ANNOTATION = "sim.vmbuild.dev/boot-delay-ms";
export const NEVER_READY_ANNOTATION = "sim.vmbuild.dev/never-ready";
/** "tcp": the VM's "image" serves podman on TCP (the article's setup) instead of its socket behind sshd. */
export const PODMAN_LISTEN_ANNOTATION = "sim.vmbuild.dev/podman-listen";

export type Meta = V1ObjectMeta & { name: string; namespace: string; uid: string };

export interface TemplateMeta {
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  lastProbeTime?: string | null;
}

export interface VirtualMachinePool extends KubernetesObject {
  metadata: Meta;
  spec?: {
    replicas?: number;
    paused?: boolean;
    virtualMachineTemplate?: { metadata?: TemplateMeta; spec?: Record<string, unknown> };
    [key: string]: unknown;
  };
  status?: Record<string, unknown>;
}

export interface VirtualMachineSpec {
  running?: boolean;
  runStrategy?: string;
  template?: { metadata?: TemplateMeta; spec?: Record<string, unknown> };
  [key: string]: unknown;
}

export interface VirtualMachineStatus {
  printableStatus?: string;
  ready?: boolean;
  created?: boolean;
  conditions?: Condition[];
  [key: string]: unknown;
}

export interface VirtualMachine extends KubernetesObject {
  metadata: Meta;
  spec?: VirtualMachineSpec;
  status?: VirtualMachineStatus;
}

export type VMIPhase = "" | "Pending" | "Scheduling" | "Scheduled" | "Running" | "Succeeded" | "Failed" | "Unknown";

export interface VirtualMachineInstanceStatus {
  phase?: VMIPhase;
  conditions?: Condition[];
  interfaces?: { name: string; ipAddress: string; ipAddresses?: string[] }[];
  nodeName?: string;
  [key: string]: unknown;
}

export interface VirtualMachineInstance extends KubernetesObject {
  metadata: Meta;
  spec?: Record<string, unknown>;
  status?: VirtualMachineInstanceStatus;
}

export function controllerOf(meta: V1ObjectMeta): V1OwnerReference | undefined {
  return meta.ownerReferences?.find((ref) => ref.controller === true);
}

export function key(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

export function splitKey(k: string): { namespace: string; name: string } {
  const slash = k.indexOf("/");
  return { namespace: k.slice(0, slash), name: k.slice(slash + 1) };
}

export function isReady(vmi: VirtualMachineInstance): boolean {
  return vmi.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}
