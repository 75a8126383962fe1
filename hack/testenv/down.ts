// `down`: stop every process the testenv started (by the PIDs it recorded) and remove .testenv/.
import { existsSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { stopKubevirtSim } from "./kubevirt-sim.js";
import { withLock } from "./lock.js";
import { progress } from "./log.js";
import { apiserverPidFile } from "./apiserver.js";
import { etcdPidFile } from "./etcd.js";
import { removeVMNetwork } from "./network.js";
import { logsDir, pidsDir, stateDir } from "./paths.js";
import { stopFromPidFile } from "./processes.js";
import { registryPidFile } from "./registry.js";

export interface DownOptions {
  /** Keep .testenv/logs (after a failed `up`, for the user to read). */
  keepLogs?: boolean;
}

export function down(opts: DownOptions = {}): Promise<void> {
  return withLock("down", () => stopAndClean(opts));
}

/** `down` without the lock, for `up` (which holds it) to clean up before or after itself. */
export async function stopAndClean(opts: DownOptions = {}): Promise<void> {
  // The stand-in first (it writes to the apiserver and starts services), the apiserver before its etcd.
  for (const [file, pid] of await stopKubevirtSim()) report(file, pid);
  const ordered = [apiserverPidFile, registryPidFile, etcdPidFile];
  for (const file of ordered) report(file, await stopFromPidFile(file));
  // Anything else recorded under .testenv/pids (a component added later, a file from an older version).
  const others = (await readdir(pidsDir).catch(() => [] as string[]))
    .map((n) => join(pidsDir, n))
    .filter((f) => f.endsWith(".pid") && !ordered.includes(f));
  for (const file of others) report(file, await stopFromPidFile(file));
  await removeVMNetwork();

  if (!existsSync(stateDir)) return;
  if (opts.keepLogs) {
    for (const entry of await readdir(stateDir)) {
      const path = join(stateDir, entry);
      if (path !== logsDir) await rm(path, { recursive: true, force: true });
    }
  } else {
    await rm(stateDir, { recursive: true, force: true });
  }
}

function report(pidFile: string, pid: number | undefined): void {
  if (pid !== undefined) progress(`stopped ${pidFile.split("/").pop()?.replace(/\.pid$/, "")} (pid ${pid})`);
}
