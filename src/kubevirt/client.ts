import type { KubernetesObject } from "@kubernetes/client-node";
import type { Kube } from "../kube/client.js";
import { mergePatch } from "../kube/client.js";
import { isNotFound } from "../kube/errors.js";
import { VIRTUAL_MACHINES, VMIS } from "../kube/resources.js";
import { runPatch, type VirtualMachine } from "./vm.js";

// Starting, stopping and scratching VMs through the API: thin adapters, shared by runs and the sweeper.

/** Resolves with the VM as the apiserver returned it. */
export async function setRunning(kube: Kube, vm: VirtualMachine, run: boolean): Promise<KubernetesObject> {
  return (await kube.custom.patchNamespacedCustomObject(
    {
      group: VIRTUAL_MACHINES.group,
      version: VIRTUAL_MACHINES.version,
      plural: VIRTUAL_MACHINES.plural,
      namespace: vm.metadata.namespace,
      name: vm.metadata.name,
      body: runPatch(vm, run),
    },
    mergePatch,
  )) as KubernetesObject;
}

/** Deletes the VM's instance with grace period 0: its disk is thrown away anyway, the default 30 s buys nothing. */
export async function deleteVMI(kube: Kube, namespace: string, name: string): Promise<void> {
  try {
    await kube.custom.deleteNamespacedCustomObject({
      group: VMIS.group,
      version: VMIS.version,
      plural: VMIS.plural,
      namespace,
      name,
      gracePeriodSeconds: 0,
      body: { gracePeriodSeconds: 0 },
    });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
