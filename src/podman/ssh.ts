import type { Socket } from "node:net";
import type { Client, ClientChannel, ServerHostKeyAlgorithm } from "ssh2";
import type { buildConnector } from "undici";
import { connectWith, type PodmanConnection } from "./connection.js";
import { describeCause, PodmanTransportError } from "./errors.js";
import { checkHostKey, hostKeyAlgorithms, hostName, type KnownHost } from "./known-hosts.js";

// podman remote's ssh mode: one ssh session to the VM, and for each HTTP connection a stream forwarded to
// podman's unix socket there (direct-streamlocal@openssh.com, what `ssh -L local:/run/podman/podman.sock` uses).
// Nothing listens on a TCP port of the VM but sshd; the host key is checked against known_hosts before the key
// is offered.

export interface SshTarget {
  host: string;
  port: number;
  username: string;
  /** OpenSSH or PEM private key. */
  privateKey: string;
  knownHosts: readonly KnownHost[];
  /** podman's socket on the VM. */
  socketPath: string;
  /** Where the key and known_hosts came from, for messages (e.g. `Secret ns/name`). */
  source: string;
}

// The host key types ssh2 can verify; offering an unknown name would make it throw.
const SUPPORTED_HOST_KEYS: ReadonlySet<string> = new Set([
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  "ssh-rsa",
]);

// The handshake timeout of a warm(): long enough on a busy node, short as a guest still booting may drop the
// packets, and a request that joins a warm() still in flight waits at most this.
const WARM_TIMEOUT_MS = 3_000;

export interface SshOptions {
  readyTimeoutMs?: number;
  /**
   * Once, when the VM refuses the target's key or its host key does not match: where to get a newer key and
   * known_hosts (the target's may be a copy kept from before a rotation), or undefined when there is none.
   */
  retarget?: () => Promise<SshTarget | undefined>;
}

/**
 * A podman connection tunnelled over ssh. The session opens with the first request and is shared by the
 * dispatcher's connections; if it drops, the next request opens a new one.
 */
export function connectSsh(first: SshTarget, opts: SshOptions = {}): PodmanConnection {
  const where = `${first.username}@${hostName(first.host, first.port)}`;
  const readyTimeout = opts.readyTimeoutMs ?? 10_000;
  let target = first;
  let retarget = opts.retarget;
  const handshakeOnce = async (timeout: number): Promise<Client> => {
    try {
      return await handshake(target, where, timeout);
    } catch (err) {
      const again = retarget;
      // Only a refusal spends it: an sshd not up yet is tried again with the same target.
      if (!again || !(err instanceof PodmanTransportError && err.permanent)) throw err;
      retarget = undefined;
      const next = await again();
      if (!next) throw err;
      target = next;
      return handshake(target, where, timeout);
    }
  };
  let session: Promise<Client> | undefined;
  let lost: string | undefined;
  const open = (timeout = readyTimeout): Promise<Client> => {
    if (session) return session;
    // A new session's own failure says what went wrong with it; the one before it no longer matters.
    lost = undefined;
    session = handshakeOnce(timeout).then(
      (client) => {
        // ssh2 emits these before it closes the session's channels, so a request they cut off finds them set.
        client.on("error", (err: Error) => {
          lost ??= `the ssh session to ${where} ended: ${describeCause(err)}`;
        });
        client.once("close", () => {
          session = undefined;
          lost ??= `the ssh session to ${where} closed`;
        });
        return client;
      },
      (err: unknown) => {
        session = undefined;
        throw err;
      },
    );
    return session;
  };
  const connector: buildConnector.connector = (_options, callback) => {
    open()
      .then((client) => forward(client, first.socketPath, where))
      // undici needs only a duplex stream: an ssh channel is one.
      .then((channel) => callback(null, channel as unknown as Socket), (err: Error) => callback(err, null));
  };
  const connection = connectWith(connector, `ssh://${where}${target.socketPath}`);
  return {
    ...connection,
    async warm() {
      await open(WARM_TIMEOUT_MS);
    },
    lost: () => lost,
    async close() {
      const client = await session?.catch(() => undefined);
      if (!client) return;
      await new Promise<void>((resolve) => {
        client.once("close", () => resolve());
        client.end();
      });
    },
  };
}

// Loaded on the first ssh connection: ssh2 and its WebAssembly add ~2 MiB to the controller's resident set, which
// pools on the default tcp transport never need.
async function handshake(target: SshTarget, where: string, readyTimeout: number): Promise<Client> {
  const { Client } = await import("ssh2");
  return new Promise((resolve, reject) => {
    const client = new Client();
    let hostKeyProblem: string | undefined;
    let ready = false;
    client.on("ready", () => {
      ready = true;
      resolve(client);
    });
    // Always listened to: an 'error' without a listener would crash the controller. Once ready, connectSsh's own
    // listener keeps it as the reason the session ended.
    client.on("error", (err: Error & { level?: string }) => {
      if (ready) return;
      if (hostKeyProblem !== undefined) {
        reject(new PodmanTransportError(`ssh ${where}: ${hostKeyProblem} (known_hosts of ${target.source}); refusing to connect`, true));
      } else if (err.level === "client-authentication") {
        reject(new PodmanTransportError(`ssh ${where}: the VM refused the private key of ${target.source}`, true, { cause: err }));
      } else {
        const code = "code" in err && typeof err.code === "string" ? `${err.code}: ` : "";
        reject(new PodmanTransportError(`ssh ${where}: ${code}${err.message}`, false, { cause: err }));
      }
    });
    client.on("close", () => {
      if (!ready) reject(new PodmanTransportError(`ssh ${where}: the connection closed during the handshake`, false));
    });
    const algorithms = hostKeyAlgorithms(target.knownHosts, target.host, target.port).filter((a) => SUPPORTED_HOST_KEYS.has(a));
    try {
      client.connect({
        host: target.host,
        port: target.port,
        username: target.username,
        privateKey: target.privateKey,
        // Straight to the key: by default ssh2 first asks for "none", a round trip every VM refuses.
        authHandler: ["publickey"],
        readyTimeout,
        // A VM that dies is seen in its VMI first; the pings only catch one that hangs. ssh2 counts them unanswered
        // even while the build's output flows, and on a starved 2-core host 3 of them (45 s) once went unanswered.
        keepaliveInterval: 15_000,
        keepaliveCountMax: 8,
        hostVerifier: (key: Buffer) => {
          const verdict = checkHostKey(target.knownHosts, target.host, target.port, key);
          if (!verdict.ok) hostKeyProblem = verdict.message;
          return verdict.ok;
        },
        ...(algorithms.length > 0 ? { algorithms: { serverHostKey: algorithms as ServerHostKeyAlgorithm[] } } : {}),
      });
    } catch (err) {
      // ssh2 throws here for a key it cannot parse (malformed, or encrypted).
      const detail = err instanceof Error ? err.message : String(err);
      reject(new PodmanTransportError(`ssh ${where}: the private key of ${target.source} cannot be used: ${detail}`, true));
    }
  });
}

function forward(client: Client, socketPath: string, where: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    client.openssh_forwardOutStreamLocal(socketPath, (err, channel) => {
      if (err) reject(new PodmanTransportError(`ssh ${where}: could not open podman's socket ${socketPath}: ${err.message}`, false, { cause: err }));
      else resolve(channel);
    });
  });
}
