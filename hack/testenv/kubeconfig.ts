// Kubeconfigs for the testenv's identities (a token or a client certificate); the CA is embedded so each file stands alone.
import { writeFile } from "node:fs/promises";
import { stringify } from "yaml";

export interface KubeconfigSpec {
  path: string;
  server: string;
  ca: string;
  user: string;
  /** A bearer token, or a client certificate and its key (PEM). */
  token?: string;
  cert?: { cert: string; key: string };
}

export function kubeconfigYaml(spec: Omit<KubeconfigSpec, "path">): string {
  const name = "vmbuild-testenv";
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      { name, cluster: { server: spec.server, "certificate-authority-data": Buffer.from(spec.ca).toString("base64") } },
    ],
    users: [{ name: spec.user, user: spec.cert ? certUser(spec.cert) : { token: spec.token } }],
    contexts: [{ name: `${spec.user}@${name}`, context: { cluster: name, user: spec.user, namespace: "default" } }],
    "current-context": `${spec.user}@${name}`,
  });
}

function certUser(cert: { cert: string; key: string }): object {
  const b64 = (pem: string) => Buffer.from(pem).toString("base64");
  return { "client-certificate-data": b64(cert.cert), "client-key-data": b64(cert.key) };
}

export async function writeKubeconfig(spec: KubeconfigSpec): Promise<void> {
  await writeFile(spec.path, kubeconfigYaml(spec), { mode: 0o600 });
}
