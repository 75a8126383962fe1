// Kubernetes object names, as the apiserver validates them: a name that fails here can name no object.

/** A DNS-1123 label: namespaces. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** A DNS-1123 subdomain: most object names (Secrets, CustomRuns, VirtualMachinePools). */
export const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isNamespace(text: string): boolean {
  return DNS_LABEL.test(text);
}

export function isObjectName(text: string): boolean {
  return DNS_SUBDOMAIN.test(text);
}
