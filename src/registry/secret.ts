import type { CoreV1Api } from "@kubernetes/client-node";
import { isNotFound } from "../kube/errors.js";
import { CredentialsParseError, parseDockerConfig, type RegistryCredentials } from "./credentials.js";

const KEYS = [".dockerconfigjson", ".dockercfg"] as const;

/** Registry logins from a kubernetes.io/dockerconfigjson (or legacy dockercfg) Secret; none if no Secret is named. */
export async function readRegistryCredentials(
  core: CoreV1Api,
  namespace: string,
  name: string | undefined,
): Promise<RegistryCredentials> {
  if (!name) return {};
  let data: Record<string, string> | undefined;
  try {
    data = (await core.readNamespacedSecret({ name, namespace })).data;
  } catch (err) {
    if (isNotFound(err)) throw new Error(`Secret ${namespace}/${name} (registrySecret) not found`);
    throw err;
  }
  const key = KEYS.find((k) => data?.[k] !== undefined);
  const encoded = key ? data?.[key] : undefined;
  if (!key || encoded === undefined) {
    throw new Error(`Secret ${namespace}/${name} (registrySecret) has neither ${KEYS.join(" nor ")}`);
  }
  try {
    return parseDockerConfig(Buffer.from(encoded, "base64").toString("utf8"));
  } catch (err) {
    if (err instanceof CredentialsParseError) throw new Error(`Secret ${namespace}/${name} (registrySecret): ${err.message}`);
    throw err;
  }
}
