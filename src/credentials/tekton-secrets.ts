import type { WorkspaceBinding } from "../tekton/customrun.js";
import { CredentialSourceError, secretError, type CredentialSource } from "./errors.js";
import {
  CredentialsParseError,
  normalizeCredentialKey,
  parseDockerConfig,
  type RegistryCredentials,
} from "./docker-config.js";
import { isValidGitPrefix, type GitCredential } from "./git.js";

// Pure: Tekton's credential conventions (docs/auth.md, pkg/credentials, pkg/pod/creds_init.go) turned into logins.
// The I/O half (tekton-credentials.ts) fetches exactly the Secrets `secretsToRead` lists and calls `tektonCredentials`.

export const DOCKERCONFIG_WORKSPACE = "dockerconfig";
export const DEFAULT_SERVICE_ACCOUNT = "default";

const TYPE = {
  basicAuth: "kubernetes.io/basic-auth",
  sshAuth: "kubernetes.io/ssh-auth",
  dockerConfigJson: "kubernetes.io/dockerconfigjson",
  dockerCfg: "kubernetes.io/dockercfg",
} as const;
const GIT_ANNOTATION = "tekton.dev/git-";
const DOCKER_ANNOTATION = "tekton.dev/docker-";
// What the article's Task looks for at the workspace root, in this order.
const WORKSPACE_FILES = ["config.json", ".dockerconfigjson"] as const;
const NAMED_SECRET_KEYS = [".dockerconfigjson", ".dockercfg"] as const;

/** The parts of a Secret read here (a client-node V1Secret fits). `data` values are base64. */
export interface SecretLike {
  metadata?: { name?: string; annotations?: Record<string, string> };
  type?: string;
  data?: Record<string, string>;
}

/** The parts of a ServiceAccount read here (a client-node V1ServiceAccount fits). */
export interface ServiceAccountLike {
  metadata?: { name?: string };
  secrets?: { name?: string }[];
  imagePullSecrets?: { name?: string }[];
}

/** A run's registry logins, keys normalised (`quay.example.com`, `host:5000`, `ghcr.io/org`); see `credentialsFor`. */
export interface RegistryLogins {
  /** The pullSecret's, for base-image pulls: the build's RUN steps share the VM with these. */
  pull: RegistryCredentials;
  /** For pushes and the controller's own registry calls; they reach the VM only after the build has ended. */
  push: RegistryCredentials;
}

export interface TektonCredentials extends RegistryLogins {
  /** In ServiceAccount order, then annotation value order; pick one with `gitCredentialFor`. */
  git: GitCredential[];
}

export interface CredentialInputs {
  /** The run's namespace, for messages. */
  namespace: string;
  serviceAccount: ServiceAccountLike;
  /** The Secrets fetched; names absent here were not found (allowed only for ServiceAccount-linked ones). */
  secrets: readonly SecretLike[];
  workspaces: readonly WorkspaceBinding[];
  registrySecret: string | undefined;
  pullSecret: string | undefined;
}

export interface SecretToRead {
  name: string;
  /** A Secret named by the run itself must exist; ServiceAccount-linked ones are skipped when gone, as Tekton does. */
  required: boolean;
  source: CredentialSource;
}

/** The Secrets `tektonCredentials` needs, each once, in the order their sources are named. */
export function secretsToRead(input: Omit<CredentialInputs, "secrets">): SecretToRead[] {
  const wanted: SecretToRead[] = [];
  const add = (name: string | undefined, required: boolean, source: CredentialSource): void => {
    if (name === undefined || name === "" || wanted.some((w) => w.name === name)) return;
    wanted.push({ name, required, source });
  };
  add(input.registrySecret, true, { kind: "registrySecret" });
  add(input.pullSecret, true, { kind: "pullSecret" });
  const workspace = dockerconfigSecret(input.namespace, input.workspaces);
  add(workspace?.secretName, true, { kind: "workspace", workspace: DOCKERCONFIG_WORKSPACE });
  const sa = serviceAccountName(input.serviceAccount);
  for (const ref of input.serviceAccount.secrets ?? []) {
    add(ref.name, false, { kind: "serviceAccount", serviceAccount: sa, field: "secrets" });
  }
  for (const ref of input.serviceAccount.imagePullSecrets ?? []) {
    add(ref.name, false, { kind: "serviceAccount", serviceAccount: sa, field: "imagePullSecrets" });
  }
  return wanted;
}

/**
 * Registry and git credentials for a run. Pull logins are the `pullSecret` param's alone (a Secret with
 * `.dockerconfigjson` or `.dockercfg`), none without it. Push logins are merged per registry key, the first layer
 * holding a key winning:
 *   1. the `registrySecret` param (a Secret with `.dockerconfigjson` or `.dockercfg`);
 *   2. the `dockerconfig` workspace's Secret (`config.json`, else `.dockerconfigjson`, as the article's Task);
 *   3. the ServiceAccount's `.secrets`, merged as Tekton's creds-init does: `kubernetes.io/basic-auth` with
 *      `tekton.dev/docker-N` over `kubernetes.io/dockerconfigjson` over `kubernetes.io/dockercfg`, and among
 *      Secrets of one type the later in the list wins. Docker config Secrets need no annotation (Tekton ignores
 *      their annotations and uses every entry);
 *   4. the ServiceAccount's `imagePullSecrets` (docker config types), which Tekton leaves to the kubelet.
 * Git credentials come from the ServiceAccount's `.secrets` only: `kubernetes.io/basic-auth` or
 * `kubernetes.io/ssh-auth` with `tekton.dev/git-N`. Secrets without a matching annotation are ignored, as in Tekton.
 */
export function tektonCredentials(input: CredentialInputs): TektonCredentials {
  const byName = new Map<string, SecretLike>();
  for (const secret of input.secrets) {
    const name = secret.metadata?.name;
    if (name !== undefined) byName.set(name, secret);
  }
  const plan = secretsToRead(input);
  const context = (name: string): SecretContext | undefined => {
    const secret = byName.get(name);
    const wanted = plan.find((w) => w.name === name);
    if (secret === undefined || wanted === undefined) {
      if (wanted?.required) throw secretError("SecretNotFound", input.namespace, name, wanted.source, "not found");
      return undefined;
    }
    return { namespace: input.namespace, name, secret, source: wanted.source };
  };

  const layers: RegistryCredentials[] = [];
  if (input.registrySecret) {
    const named = context(input.registrySecret);
    if (named !== undefined) layers.push(namedDockerConfig(named));
  }
  const workspace = dockerconfigSecret(input.namespace, input.workspaces);
  if (workspace !== undefined) {
    const bound = context(workspace.secretName);
    if (bound !== undefined) layers.push(workspaceDockerConfig(bound, workspace.items));
  }
  const saSecrets = linked(input.serviceAccount.secrets, context);
  layers.push(serviceAccountDocker(saSecrets));
  const pullOnly = linked(input.serviceAccount.imagePullSecrets, context).filter(
    (c) => c.secret.type !== TYPE.basicAuth && !saSecrets.some((s) => s.name === c.name),
  );
  layers.push(serviceAccountDocker(pullOnly));

  const pull = input.pullSecret ? context(input.pullSecret) : undefined;
  return {
    pull: pull === undefined ? {} : namedDockerConfig(pull),
    push: mergeLayers(layers),
    git: serviceAccountGit(saSecrets),
  };
}

interface SecretContext {
  namespace: string;
  name: string;
  secret: SecretLike;
  source: CredentialSource;
}

function serviceAccountName(sa: ServiceAccountLike): string {
  return sa.metadata?.name ?? DEFAULT_SERVICE_ACCOUNT;
}

function linked(
  refs: readonly { name?: string }[] | undefined,
  context: (name: string) => SecretContext | undefined,
): SecretContext[] {
  const found: SecretContext[] = [];
  for (const ref of refs ?? []) {
    if (ref.name === undefined || ref.name === "") continue;
    const secret = context(ref.name);
    if (secret !== undefined && !found.some((f) => f.name === secret.name)) found.push(secret);
  }
  return found;
}

function dockerconfigSecret(
  namespace: string,
  workspaces: readonly WorkspaceBinding[],
): { secretName: string; items: { key: string; path: string }[] | undefined } | undefined {
  const binding = workspaces.find((w) => w.name === DOCKERCONFIG_WORKSPACE);
  if (binding === undefined) return undefined;
  const secretName = binding.secret?.secretName;
  if (secretName === undefined || secretName === "") {
    // A volume (claim, emptyDir, configMap, csi...) is not something the controller can open.
    const bound = Object.keys(binding).find((key) => key !== "name" && key !== "subPath") ?? "nothing";
    throw new CredentialSourceError({
      code: "UnsupportedWorkspace",
      namespace,
      object: DOCKERCONFIG_WORKSPACE,
      message: `workspace ${DOCKERCONFIG_WORKSPACE} is bound to ${bound}; vmbuild reads it only from a Secret (secret.secretName)`,
    });
  }
  return { secretName, items: binding.secret?.items };
}

function namedDockerConfig(ctx: SecretContext): RegistryCredentials {
  const key = NAMED_SECRET_KEYS.find((k) => ctx.secret.data?.[k] !== undefined);
  if (key === undefined) throw malformed(ctx, `has neither ${NAMED_SECRET_KEYS.join(" nor ")}`);
  return dockerConfigFrom(ctx, key);
}

/** The file names the workspace shows: the Secret's keys, or only the `items` remapped to their paths. */
function workspaceDockerConfig(ctx: SecretContext, items: { key: string; path: string }[] | undefined): RegistryCredentials {
  for (const file of WORKSPACE_FILES) {
    const key = items === undefined ? file : items.find((item) => item.path === file)?.key;
    if (key !== undefined && ctx.secret.data?.[key] !== undefined) return dockerConfigFrom(ctx, key);
  }
  throw malformed(ctx, `shows neither ${WORKSPACE_FILES.join(" nor ")} at the workspace root`);
}

function serviceAccountDocker(secrets: readonly SecretContext[]): RegistryCredentials {
  const cfg = secrets.filter((s) => s.secret.type === TYPE.dockerCfg).map((s) => dockerConfigFrom(s, ".dockercfg"));
  const json = secrets
    .filter((s) => s.secret.type === TYPE.dockerConfigJson)
    .map((s) => dockerConfigFrom(s, ".dockerconfigjson"));
  // Tekton writes these in list order into one map, so a later Secret overwrites an earlier one's entry.
  const merged = mergeLayers([...json.reverse(), ...cfg.reverse()]);
  return mergeLayers([basicDockerLogins(secrets), merged]);
}

function basicDockerLogins(secrets: readonly SecretContext[]): RegistryCredentials {
  const logins: RegistryCredentials = {};
  const claimed = new Map<string, string>();
  for (const ctx of secrets) {
    if (ctx.secret.type !== TYPE.basicAuth) continue;
    const urls = annotated(ctx, DOCKER_ANNOTATION);
    if (urls.length === 0) continue;
    const login = basicLogin(ctx);
    for (const { annotation, value } of urls) {
      claimDistinct(claimed, ctx, annotation, value);
      const key = normalizeCredentialKey(value);
      if (key === "") throw malformed(ctx, `has an empty ${annotation} annotation`);
      logins[key] ??= login;
    }
  }
  return logins;
}

function serviceAccountGit(secrets: readonly SecretContext[]): GitCredential[] {
  const credentials: GitCredential[] = [];
  const claimed = new Map<string, string>();
  for (const ctx of secrets) {
    const type = ctx.secret.type;
    if (type !== TYPE.basicAuth && type !== TYPE.sshAuth) continue;
    const urls = annotated(ctx, GIT_ANNOTATION);
    if (urls.length === 0) continue;
    for (const { annotation, value } of urls) {
      if (!isValidGitPrefix(value)) throw malformed(ctx, `has a ${annotation} annotation that is not a URL or host`);
    }
    if (type === TYPE.basicAuth) {
      const login = basicLogin(ctx);
      for (const { annotation, value } of urls) {
        // Tekton refuses two basic-auth Secrets for one URL ("multiple entries for url"); ssh allows several keys.
        claimDistinct(claimed, ctx, annotation, value);
        credentials.push({ urlPrefix: value, kind: "basic", secretName: ctx.name, ...login });
      }
    } else {
      const privateKey = required(ctx, "ssh-privatekey");
      const knownHosts = optional(ctx, "known_hosts");
      for (const { value } of urls) {
        credentials.push({
          urlPrefix: value,
          kind: "ssh",
          secretName: ctx.name,
          privateKey,
          ...(knownHosts === undefined ? {} : { knownHosts }),
        });
      }
    }
  }
  return credentials;
}

/** Annotations with `prefix`, sorted by value as Tekton's SortAnnotations does; one entry per value. */
function annotated(ctx: SecretContext, prefix: string): { annotation: string; value: string }[] {
  const found: { annotation: string; value: string }[] = [];
  for (const [annotation, raw] of Object.entries(ctx.secret.metadata?.annotations ?? {})) {
    if (!annotation.startsWith(prefix)) continue;
    const value = raw.trim();
    if (value === "") throw malformed(ctx, `has an empty ${annotation} annotation`);
    if (!found.some((f) => f.value === value)) found.push({ annotation, value });
  }
  return found.sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
}

function claimDistinct(claimed: Map<string, string>, ctx: SecretContext, annotation: string, value: string): void {
  const owner = claimed.get(value);
  if (owner !== undefined && owner !== ctx.name) {
    throw secretError(
      "DuplicateCredential",
      ctx.namespace,
      ctx.name,
      ctx.source,
      `claims the URL of its ${annotation} annotation, which Secret ${owner} already claims (Tekton refuses this too)`,
    );
  }
  claimed.set(value, ctx.name);
}

function basicLogin(ctx: SecretContext): { username: string; password: string } {
  return { username: required(ctx, "username"), password: required(ctx, "password") };
}

function dockerConfigFrom(ctx: SecretContext, key: string): RegistryCredentials {
  try {
    return parseDockerConfig(required(ctx, key));
  } catch (err) {
    if (err instanceof CredentialsParseError) throw malformed(ctx, `key ${key}: ${err.message}`);
    throw err;
  }
}

function required(ctx: SecretContext, key: string): string {
  const value = optional(ctx, key);
  if (value === undefined) throw malformed(ctx, `(type ${ctx.secret.type ?? "unset"}) has no "${key}" key`);
  return value;
}

function optional(ctx: SecretContext, key: string): string | undefined {
  const encoded = ctx.secret.data?.[key];
  return encoded === undefined ? undefined : Buffer.from(encoded, "base64").toString("utf8");
}

function malformed(ctx: SecretContext, what: string): Error {
  return secretError("MalformedSecret", ctx.namespace, ctx.name, ctx.source, what);
}

/** Per registry key, the first layer that has it wins. */
function mergeLayers(layers: readonly RegistryCredentials[]): RegistryCredentials {
  const merged: RegistryCredentials = {};
  for (const layer of layers) {
    for (const [key, login] of Object.entries(layer)) {
      const normalized = normalizeCredentialKey(key);
      merged[normalized] ??= login;
    }
  }
  return merged;
}
