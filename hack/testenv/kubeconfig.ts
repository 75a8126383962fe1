// Token kubeconfigs for the testenv's identities; the CA is embedded so each file stands alone.
import { writeFile } from "node:fs/promises";
import { stringify } from "yaml";

export interface KubeconfigSpec {
  path: string;
  server: string;
  ca: string;
  user: string;
  token: string;
}

export function kubeconfigYaml(spec: Omit<KubeconfigSpec, "path">): string {
  const name = "vmbuild-testenv";
  return stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [
      { name, cluster: { server: spec.server, "certificate-authority-data": Buffer.from(spec.ca).toString("base64") } },
    ],
    users: [{ name: spec.user, user: { token: spec.token } }],
    contexts: [{ name: `${spec.user}@${name}`, context: { cluster: name, user: spec.user, namespace: "default" } }],
    "current-context": `${spec.user}@${name}`,
  });
}

export async function writeKubeconfig(spec: KubeconfigSpec): Promise<void> {
  await writeFile(spec.path, kubeconfigYaml(spec), { mode: 0o600 });
}
