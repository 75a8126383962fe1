// Installs the Debian packages the testenv needs, only when one of their commands is missing, and makes private apt
// states for downloads that must leave the host's apt as it is.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run, RunError, which } from "./exec.js";
import { elapsed, progress, warn } from "./log.js";

/** Command that proves the package is installed → Debian package that provides it. */
export const requiredCommands: Readonly<Record<string, string>> = {
  podman: "podman",
  skopeo: "skopeo",
  "docker-registry": "docker-registry",
  htpasswd: "apache2-utils",
  "qemu-aarch64-static": "qemu-user-static",
  "dpkg-deb": "dpkg",
  openssl: "openssl", // the client-certificate identity
  ip: "iproute2", // the VMs' network namespaces and the bridge
  sshd: "openssh-server", // each VM's sshd, in front of podman's socket
  "ssh-keygen": "openssh-client",
};

/** Where apt reads its sources: a sources.list file and a sources.list.d directory. */
export interface AptSources {
  list: string;
  parts: string;
}

const aptEnv: NodeJS.ProcessEnv = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
// Another apt run (ours in a parallel shell, or unattended upgrades) must not fail us: wait for its lock.
const lockWait: readonly string[] = ["-o", "DPkg::Lock::Timeout=300"];

/**
 * apt-get options for an apt whose lists and downloads are kept in `dir`, so that its updates leave the host's as
 * they are. It reads `sources` (by default the host's, as apt finds them) and the host's apt.conf.d (proxies, mirror
 * settings), but runs none of the host's update hooks: they act on the host's lists. `settings` are more options; a
 * list value replaces the host's list.
 */
export async function privateApt(
  dir: string,
  sources?: AptSources,
  settings: Readonly<Record<string, string | readonly string[]>> = {},
): Promise<string[]> {
  await mkdir(join(dir, "lists", "partial"), { recursive: true });
  await mkdir(join(dir, "cache", "archives", "partial"), { recursive: true });
  const all = {
    "Dir::State::lists": join(dir, "lists"),
    "Dir::Cache": join(dir, "cache"),
    ...(sources && { "Dir::Etc::sourcelist": sources.list, "Dir::Etc::sourceparts": sources.parts }),
    "Acquire::Languages": "none",
    "APT::Update::Pre-Invoke": [],
    "APT::Update::Post-Invoke": [],
    "APT::Update::Post-Invoke-Success": [],
    ...settings,
  };
  const lines = Object.entries(all).map(([key, value]) =>
    typeof value === "string"
      ? `${key} "${value}";`
      : `#clear ${key};${value.length ? ` ${key} { ${value.map((v) => `"${v}";`).join(" ")} };` : ""}`,
  );
  const conf = join(dir, "apt.conf");
  await writeFile(conf, lines.join("\n") + "\n");
  // -c is read after the host's configuration, so these settings win.
  return ["-c", conf];
}

/**
 * `apt-get update` that goes on when indexes fail (a mirror mid-sync, a repository gone): what is needed may still
 * be listed, and the install or download that follows tells. Returns what failed, for that error.
 */
async function aptUpdate(apt: readonly string[]): Promise<string | undefined> {
  const start = Date.now();
  progress("apt-get update");
  let stderr: string;
  let error: RunError | undefined;
  try {
    ({ stderr } = await run("apt-get", [...apt, ...lockWait, "update"], { env: aptEnv }));
  } catch (err) {
    if (!(err instanceof RunError)) throw err;
    error = err;
    stderr = err.stderr;
  }
  const failed = [...stderr.matchAll(/^[EW]: Failed to fetch (.+)$/gm)].map(([, what = ""]) =>
    what.replace(/\s+/g, " "),
  );
  const failure = failed.length ? `failed to fetch ${failed.join("; ")}` : error?.message;
  if (!failure) {
    progress(`apt-get update done (${elapsed(start)})`);
    return undefined;
  }
  warn(`apt-get update: ${failure}; going on (${elapsed(start)})`);
  return failure;
}

/** `apt-get update`, then `apt-get ARGS` however the update went; if ARGS fails, its error names what failed before. */
export async function aptGetAfterUpdate(apt: readonly string[], args: readonly string[], cwd?: string): Promise<void> {
  const updateFailure = await aptUpdate(apt);
  try {
    await run("apt-get", [...apt, ...lockWait, ...args], { env: aptEnv, cwd });
  } catch (err) {
    if (!updateFailure) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`${message}\n(the apt-get update before it: ${updateFailure})`);
  }
}

/** Installs into the host the packages of `commands` not on PATH. `apt`: options of apt-get (none: the host's apt). */
export async function ensureCommands(
  commands: Readonly<Record<string, string>> = requiredCommands,
  apt: readonly string[] = [],
): Promise<void> {
  const missing = new Set<string>();
  for (const [cmd, pkg] of Object.entries(commands)) {
    if (!(await which(cmd))) missing.add(pkg);
  }
  if (missing.size === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`missing Debian packages ${[...missing].join(", ")}; install them as root (apt-get install)`);
  }
  const start = Date.now();
  progress(`installing ${[...missing].join(" ")}`);
  await aptGetAfterUpdate(apt, ["install", "-y", "--no-install-recommends", ...missing]);
  progress(`installed (${elapsed(start)})`);
}
