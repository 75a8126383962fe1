// How runs, leases and jobs name a VirtualMachinePool: NAMESPACE/NAME.

/** NAMESPACE/NAME of a pool reference (NAME means the run's namespace). */
export function poolKey(ref: string, runNamespace: string): string {
  return ref.includes("/") ? ref : `${runNamespace}/${ref}`;
}

export function splitPoolKey(key: string): { namespace: string; name: string } {
  const [namespace = "", name = ""] = key.split("/");
  return { namespace, name };
}
