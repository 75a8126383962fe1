// The KubeVirt stand-in (hack/kubevirt-sim/main.ts): it turns VirtualMachines into podman services, each in a
// network namespace of its own on the testenv's bridge.
// It writes the PIDs of the services it starts to <state>/pids/*.pid so that `down` can stop them even if it died.
import { existsSync } from "node:fs";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { warn } from "./log.js";
import type { VMNetwork } from "./network.js";
import { isRunning, startDetached, stopFromPidFile } from "./processes.js";
import { logsDir, pidsDir, rel, repoRoot, stateDir } from "./paths.js";

export const simMain: string = join(repoRoot, "hack/kubevirt-sim/main.ts");
export const simStateDir: string = join(stateDir, "kubevirt-sim");
export const simLog: string = join(logsDir, "kubevirt-sim.log");
export const simPidFile: string = join(pidsDir, "kubevirt-sim.pid");

/** Starts the stand-in; undefined (with a warning) if it has not been written yet. */
export async function startKubevirtSim(
  adminKubeconfig: string,
  registryHost: string,
  network: VMNetwork,
  sshDir: string,
): Promise<number | undefined> {
  if (!existsSync(simMain)) {
    warn(`${rel(simMain)} does not exist: the KubeVirt stand-in is NOT running (VMs will never start)`);
    return undefined;
  }
  await mkdir(join(simStateDir, "pids"), { recursive: true });
  const pid = startDetached({
    cmd: process.execPath,
    args: [
      "--import",
      "tsx",
      simMain,
      "--kubeconfig",
      adminKubeconfig,
      "--state-dir",
      simStateDir,
      "--insecure-registry",
      registryHost,
      "--bridge",
      network.bridge,
      "--gateway",
      `${network.gateway}/${network.prefixLength}`,
      "--ssh-dir",
      sshDir,
    ],
    cwd: repoRoot,
    logFile: simLog,
    pidFile: simPidFile,
  });
  // Catch an immediate crash (syntax error, bad flag) here rather than in the first test that needs a VM.
  await sleep(1500);
  if (!isRunning(pid)) throw new Error(`the KubeVirt stand-in exited right after starting; see ${rel(simLog)}`);
  return pid;
}

/** PID files the stand-in wrote for the services it started. */
export async function simChildPidFiles(): Promise<string[]> {
  const dir = join(simStateDir, "pids");
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => n.endsWith(".pid")).map((n) => join(dir, n));
}

/** Stops the stand-in first (so it cannot start more services), then every service it recorded. */
export async function stopKubevirtSim(): Promise<Array<[string, number | undefined]>> {
  const stopped: Array<[string, number | undefined]> = [[simPidFile, await stopFromPidFile(simPidFile)]];
  const children = await simChildPidFiles();
  const pids = await Promise.all(children.map((file) => stopFromPidFile(file)));
  return [...stopped, ...children.map((file, i): [string, number | undefined] => [file, pids[i]])];
}
