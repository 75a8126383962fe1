import type { CoreV1Api, KubernetesObject, V1Secret } from "@kubernetes/client-node";
import { z } from "zod";
import { withApiRetries } from "../kube/retry.js";
import { isNotFound } from "../kube/errors.js";
import { splitPoolKey } from "../kubevirt/pool-key.js";
import { connectEndpoint, type PodmanConnection } from "./connection.js";
import { PodmanTransportError } from "./errors.js";
import { KnownHostsError, parseKnownHosts } from "./known-hosts.js";
import { connectSsh, type SshTarget } from "./ssh.js";

// How the controller reaches a VM's podman is a property of the pool (of the VM image), not of a pipeline:
// annotations on the VirtualMachinePool choose ssh to podman's unix socket (the default: podman then listens on no
// TCP port a build step could reach), with the key and known_hosts in a Secret of the pool's namespace, or plain
// TCP (the article's setup, for trusted builds only).

export const TRANSPORT_ANNOTATIONS = {
  connection: "vmbuild.dev/podman-connection",
  secret: "vmbuild.dev/ssh-secret",
  user: "vmbuild.dev/ssh-user",
  port: "vmbuild.dev/ssh-port",
  socket: "vmbuild.dev/podman-socket",
} as const;

/** Keys of the ssh Secret: `ssh-privatekey` as in a kubernetes.io/ssh-auth Secret, plus `known_hosts`. */
export const SSH_SECRET_KEYS = { privateKey: "ssh-privatekey", knownHosts: "known_hosts" } as const;

export type PoolTransport =
  | { kind: "tcp" }
  | { kind: "ssh"; secret: string; user: string; port: number; socketPath: string };

/** A pool's transport settings or its Secret are unusable; the message names the pool and what to fix. */
export class PoolTransportError extends Error {
  override readonly name = "PoolTransportError";
}

const A = TRANSPORT_ANNOTATIONS;
const SECRET_NAME = "expected the name of a Secret in the pool's namespace";
const dnsName = z.string({ error: SECRET_NAME }).regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, SECRET_NAME);
const annotationsSchema = z.discriminatedUnion(A.connection, [
  z.object({ [A.connection]: z.literal("tcp") }).transform((): PoolTransport => ({ kind: "tcp" })),
  z
    .object({
      [A.connection]: z.literal("ssh"),
      [A.secret]: dnsName,
      [A.user]: z.string().regex(/^[a-z_][a-z0-9_.-]{0,31}$/i, "expected a user name").default("root"),
      [A.port]: z.coerce.number().int().min(1).max(65535).default(22),
      [A.socket]: z.string().regex(/^\/[^\0]*$/, "expected an absolute path").default("/run/podman/podman.sock"),
    })
    .transform(
      (a): PoolTransport => ({ kind: "ssh", secret: a[A.secret], user: a[A.user], port: a[A.port], socketPath: a[A.socket] }),
    ),
]);

/** Reads the pool's annotations (pure). Without `vmbuild.dev/podman-connection`, the connection is ssh. */
export function parsePoolTransport(pool: string, annotations: Readonly<Record<string, string>>): PoolTransport {
  const parsed = annotationsSchema.safeParse({ [A.connection]: "ssh", ...annotations });
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue?.path[0] ?? A.connection);
    const got = annotations[key];
    const detail = key === A.connection ? `expected "tcp" or "ssh"` : (issue?.message ?? "invalid");
    const value = got === undefined ? "it is missing" : `got ${JSON.stringify(got)}`;
    const byDefault =
      annotations[A.connection] === undefined && key === A.secret
        ? `; builds reach podman over ssh unless the pool sets ${A.connection}: tcp, which is for trusted builds only`
        : "";
    throw new PoolTransportError(`VirtualMachinePool ${pool}: annotation ${key}: ${detail} (${value})${byDefault}`);
  }
  return parsed.data;
}

/** A pool (NAMESPACE/NAME, as a run's slot names it) as the cache holds it: its annotations choose the transport. */
export function knownPool(
  pools: Pick<ObjectCacheLike, "get">,
  key: string,
): { namespace: string; name: string; annotations: Record<string, string> } {
  const { namespace, name } = splitPoolKey(key);
  const pool = pools.get(name, namespace);
  if (!pool) throw new PoolTransportError(`VirtualMachinePool ${key} is not known`);
  return { namespace, name, annotations: pool.metadata?.annotations ?? {} };
}

interface ObjectCacheLike {
  get(name: string, namespace?: string): KubernetesObject | undefined;
}

/** How long a pool's ssh Secret, once read, serves the builds after it (unless a connection with it fails). */
export const POOL_SECRET_TTL_MS = 30_000;

/**
 * The pools' ssh Secrets as last read, so that a burst of builds on a pool reads its Secret once, not once per
 * build. A copy serves for POOL_SECRET_TTL_MS; a build that fails with a kept copy (its key refused, its host keys
 * not matching, its contents unusable: a rotation or a fix under way) reads the Secret again at once.
 */
export class PoolSecrets {
  private readonly kept = new Map<string, { secret: V1Secret; at: number }>();

  constructor(
    private readonly core: Pick<CoreV1Api, "readNamespacedSecret">,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The Secret, kept or read now; `fresh` reads it now. */
  async read(namespace: string, name: string, fresh = false): Promise<{ secret: V1Secret; kept: boolean }> {
    const key = `${namespace}/${name}`;
    const kept = this.kept.get(key);
    if (!fresh && kept && this.now() - kept.at < POOL_SECRET_TTL_MS) return { secret: kept.secret, kept: true };
    this.kept.delete(key);
    const secret = await this.core.readNamespacedSecret({ name, namespace });
    this.kept.set(key, { secret, at: this.now() });
    return { secret, kept: false };
  }
}

/**
 * The connection to a VM's podman, as its pool says: `tcp://ADDRESS:PORT`, or an ssh session to ADDRESS with
 * the pool's Secret (PoolSecrets: a rotated key applies to the next build that the old one fails).
 */
export async function podmanConnectionFor(
  secrets: PoolSecrets,
  pool: { namespace: string; name: string; annotations: Readonly<Record<string, string>> },
  address: string,
  podmanPort: number,
  signal: AbortSignal,
): Promise<PodmanConnection> {
  const transport = parsePoolTransport(`${pool.namespace}/${pool.name}`, pool.annotations);
  if (transport.kind === "tcp") return connectEndpoint(`tcp://${address.includes(":") ? `[${address}]` : address}:${podmanPort}`);
  const source = `Secret ${pool.namespace}/${transport.secret}`;
  const readSecret = (fresh: boolean) =>
    withApiRetries(() => secrets.read(pool.namespace, transport.secret, fresh), signal).catch((err: unknown) => {
      if (isNotFound(err)) {
        throw new PoolTransportError(`${source}, named by pool ${pool.name}'s ${A.secret} annotation, does not exist`);
      }
      throw err;
    });
  const targetOf = (secret: V1Secret): SshTarget => {
    const read = (key: string): string => {
      const value = secret.data?.[key];
      if (value === undefined || value === "") throw new PoolTransportError(`${source} has no ${key} key`);
      return Buffer.from(value, "base64").toString("utf8");
    };
    let knownHosts;
    try {
      knownHosts = parseKnownHosts(read(SSH_SECRET_KEYS.knownHosts));
    } catch (err) {
      if (err instanceof KnownHostsError) throw new PoolTransportError(`${source}: ${err.message}`);
      throw err;
    }
    return {
      host: address,
      port: transport.port,
      username: transport.user,
      privateKey: read(SSH_SECRET_KEYS.privateKey),
      knownHosts,
      socketPath: transport.socketPath,
      source,
    };
  };
  // A copy kept from an earlier build may be older than a rotation or a fix: what it fails with (its contents, its
  // key refused, its host keys not matching) reads the Secret again, and only a newer Secret is tried.
  const first = await readSecret(false);
  const newer = async (): Promise<V1Secret | undefined> => {
    const now = await readSecret(true);
    return now.secret.metadata?.resourceVersion === first.secret.metadata?.resourceVersion ? undefined : now.secret;
  };
  let target: SshTarget;
  try {
    target = targetOf(first.secret);
  } catch (err) {
    const secret = first.kept && err instanceof PoolTransportError ? await newer() : undefined;
    if (!secret) throw err;
    return connectSsh(targetOf(secret));
  }
  if (!first.kept) return connectSsh(target);
  return connectSsh(target, {
    retarget: async () => {
      try {
        const secret = await newer();
        return secret && targetOf(secret);
      } catch (err) {
        // Inside the session's handshake, what is wrong with the Secret now ends the build as the refusal would.
        if (err instanceof PoolTransportError) throw new PodmanTransportError(err.message, true);
        throw err;
      }
    },
  });
}
