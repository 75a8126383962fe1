import type { CoreV1Api } from "@kubernetes/client-node";
import { apiStatus } from "../kube/errors.js";
import { CredentialSourceError, describeSource, type CredentialSource } from "./errors.js";
import {
  DEFAULT_SERVICE_ACCOUNT,
  secretsToRead,
  tektonCredentials,
  type SecretLike,
  type ServiceAccountLike,
  type TektonCredentials,
} from "./tekton-secrets.js";
import type { WorkspaceBinding } from "../tekton/customrun.js";

// The I/O half: get the run's ServiceAccount and, by name, only the Secrets it and the run point at (never a
// list of Secrets), then hand them to the pure half. RBAC: get serviceaccounts, get secrets.

export { CredentialSourceError, type CredentialErrorCode } from "./errors.js";
export { gitCredentialFor, type GitCredential } from "./git.js";
export {
  DOCKERCONFIG_WORKSPACE,
  tektonCredentials,
  type RegistryLogins,
  type TektonCredentials,
} from "./tekton-secrets.js";

export interface ResolveCredentialsOptions {
  /** The CustomRun's `spec.serviceAccountName`; Tekton's default `default` when absent or empty. */
  serviceAccountName?: string | undefined;
  /** The CustomRun's `spec.workspaces`; a `dockerconfig` binding to a Secret is read. */
  workspaces?: readonly WorkspaceBinding[] | undefined;
  /** The `registrySecret` param. */
  registrySecret?: string | undefined;
  /** The `pullSecret` param. */
  pullSecret?: string | undefined;
}

export interface ResolvedCredentials extends TektonCredentials {
  /** Secrets the ServiceAccount links that do not exist: skipped, as Tekton does (worth a Warning Event). */
  missingSecrets: string[];
}

/** Registry and git credentials for a run, the Tekton way; precedence is documented on `tektonCredentials`. */
export async function resolveCredentials(
  core: CoreV1Api,
  namespace: string,
  opts: ResolveCredentialsOptions,
): Promise<ResolvedCredentials> {
  const serviceAccount = await readServiceAccount(core, namespace, opts.serviceAccountName || DEFAULT_SERVICE_ACCOUNT);
  const workspaces = opts.workspaces ?? [];
  const inputs = { namespace, serviceAccount, workspaces, registrySecret: opts.registrySecret, pullSecret: opts.pullSecret };
  const plan = secretsToRead(inputs);
  const read = await Promise.all(plan.map(async (want) => readSecret(core, namespace, want.name, want.source)));
  const secrets = read.filter((secret): secret is SecretLike => secret !== undefined);
  const missingSecrets = plan.filter((_, i) => read[i] === undefined).map((want) => want.name);
  return { ...tektonCredentials({ ...inputs, secrets }), missingSecrets };
}

async function readServiceAccount(core: CoreV1Api, namespace: string, name: string): Promise<ServiceAccountLike> {
  try {
    return await core.readNamespacedServiceAccount({ name, namespace });
  } catch (err) {
    const status = apiStatus(err);
    const object = `ServiceAccount ${namespace}/${name} (spec.serviceAccountName)`;
    if (status === 404) {
      throw new CredentialSourceError({ code: "ServiceAccountNotFound", namespace, object: name, message: `${object} not found` });
    }
    if (status === 403) {
      const message = `the controller may not get ${object}: grant it get on serviceaccounts`;
      throw new CredentialSourceError({ code: "Forbidden", namespace, object: name, message });
    }
    throw err;
  }
}

/** The Secret, or undefined when it does not exist (the pure half decides whether that is an error). */
async function readSecret(
  core: CoreV1Api,
  namespace: string,
  name: string,
  source: CredentialSource,
): Promise<SecretLike | undefined> {
  try {
    return await core.readNamespacedSecret({ name, namespace });
  } catch (err) {
    const status = apiStatus(err);
    if (status === 404) return undefined;
    if (status === 403) {
      const message = `the controller may not get Secret ${namespace}/${name} (named by ${describeSource(source)}): grant it get on secrets`;
      throw new CredentialSourceError({ code: "Forbidden", namespace, object: name, message });
    }
    throw err;
  }
}
