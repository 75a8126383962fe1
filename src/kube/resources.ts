// The API resources the controller reads and writes, in one place.

export interface Resource {
  group: string;
  version: string;
  plural: string;
  kind: string;
}

export const CUSTOM_RUNS: Resource = { group: "tekton.dev", version: "v1beta1", plural: "customruns", kind: "CustomRun" };
export const VMBUILDS: Resource = { group: "vmbuild.dev", version: "v1alpha1", plural: "vmbuilds", kind: "VMBuild" };
export const VIRTUAL_MACHINES: Resource = {
  group: "kubevirt.io",
  version: "v1",
  plural: "virtualmachines",
  kind: "VirtualMachine",
};
export const VMIS: Resource = {
  group: "kubevirt.io",
  version: "v1",
  plural: "virtualmachineinstances",
  kind: "VirtualMachineInstance",
};
/** KubeVirt serves v1beta1 from v1.7 and only v1alpha1 before: the controller uses whichever is served. */
export const POOL_VERSIONS = ["v1beta1", "v1alpha1"] as const;
export const poolResource = (version: string): Resource => ({
  group: "pool.kubevirt.io",
  version,
  plural: "virtualmachinepools",
  kind: "VirtualMachinePool",
});

export function collectionPath(r: Resource): string {
  return r.group === "" ? `/api/${r.version}/${r.plural}` : `/apis/${r.group}/${r.version}/${r.plural}`;
}
