// The stand-in's VMs are one "golden image": every VM has the same ssh host key and authorizes the same client key,
// as a platform team bakes them into its containerDisk. Made once per testenv; a pool's ssh Secret carries the
// client key and a known_hosts line for the host key (test/support/cluster.ts creates it next to each pool).
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "./exec.js";
import { stateDir } from "./paths.js";

export interface VMSsh {
  /** Holds host_ed25519 and authorized_keys, which the stand-in's sshd reads. */
  dir: string;
  /** The client's OpenSSH private key (the Secret's `ssh-privatekey`). */
  clientKeyFile: string;
  /** `* ssh-ed25519 AAAA...`: the host key for any address (VMs get new addresses on every start). */
  knownHosts: string;
}

const dir = join(stateDir, "vm-ssh");

async function keyPair(name: string): Promise<string> {
  const file = join(dir, name);
  if (!existsSync(file)) await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `vmbuild-testenv-${name}`, "-f", file]);
  return (await readFile(`${file}.pub`, "utf8")).trim().split(/\s+/).slice(0, 2).join(" ");
}

export async function ensureVMSsh(): Promise<VMSsh> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const hostKey = await keyPair("host_ed25519");
  const clientPub = await keyPair("client");
  // SECURITY.md's hardening: the key may only forward (to podman's socket); no shell, no pty.
  await writeFile(join(dir, "authorized_keys"), `restrict,port-forwarding,command="/bin/false" ${clientPub}\n`, { mode: 0o600 });
  return { dir, clientKeyFile: join(dir, "client"), knownHosts: `* ${hostKey}\n` };
}
