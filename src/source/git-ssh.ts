import { writeFile } from "node:fs/promises";
import { join } from "node:path";

// ssh for git fetches: the key and known_hosts of a kubernetes.io/ssh-auth Secret, written into the fetch's own
// private temp dir (0700, files 0600) and removed with it, and the ssh command git runs with them. The host key is
// always checked against the Secret's known_hosts alone; nothing of the user's or the system's ssh setup is read.

/** Seconds ssh may take to connect before git's fetch fails as Unreachable. */
export const SSH_CONNECT_TIMEOUT_SECONDS = 30;

const KEY_FILE = "id";
const KNOWN_HOSTS_FILE = "known_hosts";
// ssh reads -i and UserKnownHostsFile through its config parser: whitespace splits, `%` and `~` expand, quotes
// quote. Our own temp dir's path never needs any of that; a TMPDIR that would is refused instead of escaped.
const PLAIN_PATH = /^\/[A-Za-z0-9/._-]+$/;

export class UnsafeTempDirError extends Error {}

/** Writes the key and known_hosts into `dir` (a fresh 0700 dir of ours); returns GIT_SSH_COMMAND. */
export async function writeSshFiles(dir: string, privateKey: string, knownHosts: string): Promise<string> {
  const key = join(dir, KEY_FILE);
  const hosts = join(dir, KNOWN_HOSTS_FILE);
  const command = sshCommand(key, hosts);
  await writeFile(key, withFinalNewline(privateKey), { mode: 0o600, flag: "wx" });
  await writeFile(hosts, withFinalNewline(knownHosts), { mode: 0o600, flag: "wx" });
  return command;
}

/**
 * The ssh command line git runs (through `sh -c`, hence every word quoted): only `keyFile`, only `knownHostsFile`
 * and strict checking, no agent, no config files, no prompts.
 */
export function sshCommand(keyFile: string, knownHostsFile: string): string {
  for (const path of [keyFile, knownHostsFile]) {
    if (!PLAIN_PATH.test(path)) {
      throw new UnsafeTempDirError(
        `the temp dir path ${JSON.stringify(path)} holds characters ssh would expand or split; set TMPDIR to a plain path`,
      );
    }
  }
  const options = [
    "IdentitiesOnly=yes",
    "IdentityAgent=none",
    `UserKnownHostsFile=${knownHostsFile}`,
    "GlobalKnownHostsFile=/dev/null",
    "StrictHostKeyChecking=yes",
    "UpdateHostKeys=no",
    "CheckHostIP=no",
    "BatchMode=yes",
    "PasswordAuthentication=no",
    "KbdInteractiveAuthentication=no",
    `ConnectTimeout=${SSH_CONNECT_TIMEOUT_SECONDS}`,
  ];
  const argv = ["ssh", "-F", "/dev/null", "-i", keyFile, ...options.flatMap((option) => ["-o", option])];
  return argv.map(shellQuote).join(" ");
}

/** One word for `sh -c`: single-quoted, a `'` inside closed, escaped and reopened. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Whether a Secret's known_hosts holds at least one entry (not only comments and blank lines). */
export function hasKnownHostsEntry(knownHosts: string | undefined): boolean {
  return (knownHosts ?? "").split(/\r?\n/).some((line) => {
    const trimmed = line.trim();
    return trimmed !== "" && !trimmed.startsWith("#");
  });
}

/** The form known_hosts names the host in: `host`, or `[host]:port` off port 22. */
export function knownHostsName(host: string, port: string): string {
  const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  return port === "" || port === "22" ? bare : `[${bare}]:${port}`;
}

// OpenSSH refuses a key without its final newline ("invalid format"), and Secrets pasted from Windows carry CRs.
function withFinalNewline(text: string): string {
  const unix = text.replace(/\r\n/g, "\n");
  return unix.endsWith("\n") ? unix : `${unix}\n`;
}
