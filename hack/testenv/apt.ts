// Installs the Debian packages the testenv needs, only when one of their commands is missing.
import { run, which } from "./exec.js";
import { elapsed, progress } from "./log.js";

/** Command that proves the package is installed → Debian package that provides it. */
export const requiredCommands: Readonly<Record<string, string>> = {
  podman: "podman",
  skopeo: "skopeo",
  "docker-registry": "docker-registry",
  htpasswd: "apache2-utils",
  "qemu-aarch64-static": "qemu-user-static",
  "dpkg-deb": "dpkg",
};

const aptEnv: NodeJS.ProcessEnv = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
// Another apt run (ours in a parallel shell, or unattended upgrades) must not fail us: wait for its lock.
const lockWait: readonly string[] = ["-o", "DPkg::Lock::Timeout=300"];

let updated = false;

/** `apt-get update`, at most once per process unless forced (after adding an architecture). */
export async function aptUpdate(force = false): Promise<void> {
  if (updated && !force) return;
  const start = Date.now();
  progress("apt-get update");
  await run("apt-get", [...lockWait, "update"], { env: aptEnv });
  updated = true;
  progress(`apt-get update done (${elapsed(start)})`);
}

export async function ensureCommands(commands: Readonly<Record<string, string>> = requiredCommands): Promise<void> {
  const missing = new Set<string>();
  for (const [cmd, pkg] of Object.entries(commands)) {
    if (!(await which(cmd))) missing.add(pkg);
  }
  if (missing.size === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`missing Debian packages ${[...missing].join(", ")}; install them as root (apt-get install)`);
  }
  await aptUpdate();
  const start = Date.now();
  progress(`installing ${[...missing].join(" ")}`);
  await run("apt-get", [...lockWait, "install", "-y", "--no-install-recommends", ...missing], { env: aptEnv });
  progress(`installed (${elapsed(start)})`);
}
