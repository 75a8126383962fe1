import { mkdir, readFile, writeFile } from "node:fs/promises";
import { userInfo } from "node:os";
import { join } from "node:path";
import { accepts, hardenedSshdConfig } from "../../hack/kubevirt-sim/podman-service.js";
import { descendants } from "../../hack/kubevirt-sim/processes.js";
import { run } from "./exec.js";
import { freePort } from "./ports.js";
import { startProcess, waitUntil } from "./processes.js";
import { makeTempDir } from "./temp-dir.js";

/** Keys for an sshd and its client, made with ssh-keygen in a temp dir. */
export interface SshKeys {
  dir: string;
  /** `TYPE BASE64` of the host key, as a known_hosts line carries it after the host field. */
  hostKey: string;
  /** OpenSSH private key whose public half goes into authorized_keys. */
  clientKey: string;
  clientPub: string;
  /** A fresh key pair; returns [private key, "TYPE BASE64" public key]. */
  newKey(name: string): Promise<[string, string]>;
  remove(): Promise<void>;
}

export async function createSshKeys(): Promise<SshKeys> {
  const temp = await makeTempDir("sshd");
  const dir = temp.path;
  const newKey = async (name: string): Promise<[string, string]> => {
    const file = join(dir, name);
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", file]);
    const pub = (await readFile(`${file}.pub`, "utf8")).trim().split(/\s+/).slice(0, 2).join(" ");
    return [await readFile(file, "utf8"), pub];
  };
  const [, hostKey] = await newKey("host_ed25519");
  const [clientKey, clientPub] = await newKey("client");
  return { dir, hostKey, clientKey, clientPub, newKey, remove: temp.remove };
}

/** A real OpenSSH sshd on a loopback address, configured as SECURITY.md recommends for build VMs. */
export interface Sshd extends SshKeys {
  host: string;
  port: number;
  username: string;
  output(): string;
  /** SIGKILLs the session processes sshd forked, not sshd itself, as a VM's crash cuts its sessions; how many. */
  cutSessions(): number;
  /** Stops sshd; removes the keys too unless they were passed in. */
  stop(): Promise<void>;
}

const SSHD = "/usr/sbin/sshd";

export async function startSshd(
  opts: {
    keys?: SshKeys;
    host?: string;
    port?: number;
    /** Public keys ("TYPE BASE64") that may run git over ssh: git-shell, which runs only git-upload-pack & co. */
    gitClients?: string[];
  } = {},
): Promise<Sshd> {
  const keys = opts.keys ?? (await createSshKeys());
  const host = opts.host ?? "127.0.0.1";
  const { dir } = keys;
  const port = opts.port ?? (await freePort(host));
  // The hardening SECURITY.md recommends: no shell, no pty, nothing but forwarding.
  // git clients: the command they ask for (git-upload-pack '<repo>') goes through git-shell, which allows only git.
  const gitLines = (opts.gitClients ?? []).map((pub) => `restrict,command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"" ${pub}\n`);
  await writeFile(
    join(dir, "authorized_keys"),
    [`restrict,port-forwarding,command="/bin/false" ${keys.clientPub}\n`, ...gitLines].join(""),
    { mode: 0o600 },
  );
  const config = join(dir, `sshd_config-${host}-${port}`);
  await writeFile(
    config,
    hardenedSshdConfig({
      port,
      listenAddress: host,
      hostKey: join(dir, "host_ed25519"),
      authorizedKeys: join(dir, "authorized_keys"),
      pidFile: join(dir, `sshd-${host}-${port}.pid`),
    }),
  );
  // sshd's privilege-separation directory, as Debian's service unit creates it.
  await mkdir("/run/sshd", { recursive: true, mode: 0o755 });
  const proc = startProcess(SSHD, ["-D", "-e", "-f", config]);
  const stop = async (): Promise<void> => {
    await proc.stop(5_000);
    if (!opts.keys) await keys.remove();
  };
  try {
    await waitUntil(() => accepts(host, port), 15_000, () => `sshd on ${host}:${port} did not start: ${proc.output()}`);
  } catch (err) {
    await stop();
    throw err;
  }
  const cutSessions = (): number => {
    const sessions = descendants(proc.pid);
    for (const pid of sessions) {
      try {
        process.kill(pid, "SIGKILL");
      } catch (err) {
        // A process of the session may have ended with the one killed before it.
        if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
      }
    }
    return sessions.length;
  };
  return { ...keys, host, port, username: userInfo().username, output: () => proc.output(), cutSessions, stop };
}
