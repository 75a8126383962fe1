// Kubernetes object names, as the apiserver validates them: a name that fails here can name no object.

/** A DNS-1123 label: namespaces. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/**
 * A DNS-1123 subdomain, at most DNS_SUBDOMAIN_MAX long: most object names (Secrets, CustomRuns, pools). No
 * lookahead for the length: the pattern also goes into the CRD, and the apiserver's regexps (RE2) have none.
 */
export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const DNS_SUBDOMAIN_MAX = 253;

export function isNamespace(text: string): boolean {
  return DNS_LABEL.test(text);
}

export function isObjectName(text: string): boolean {
  return text.length <= DNS_SUBDOMAIN_MAX && DNS_SUBDOMAIN.test(text);
}
