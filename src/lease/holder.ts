// A lease is keyed on the run's UID and attempt, not its name: Tekton may re-create a run under the same name.

export interface RunIdentity {
  namespace: string;
  name: string;
  uid: string;
}

export const LEASE_LABEL_VM = "vmbuild.dev/vm";
export const LEASE_LABEL_POOL = "vmbuild.dev/pool";

export function holderIdentity(run: RunIdentity, attempt: number): string {
  return `${run.namespace}/${run.name}/${run.uid}/${attempt}`;
}

export function parseHolder(holder: string): (RunIdentity & { attempt: number }) | undefined {
  const parts = holder.split("/");
  if (parts.length !== 4) return undefined;
  const [namespace, name, uid, attempt] = parts as [string, string, string, string];
  const n = Number(attempt);
  return Number.isInteger(n) && n >= 0 ? { namespace, name, uid, attempt: n } : undefined;
}

export function leaseName(vm: string): string {
  return `vmbuild-vm-${vm}`;
}
