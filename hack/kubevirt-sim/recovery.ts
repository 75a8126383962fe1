// Start-up cleanup after a previous sim process on the same state dir (crashed, or killed without SIGTERM): its
// podman services are killed and their disks removed. The VMIs they backed are then found without a service by
// the VMI controller and marked Failed, so VMs that want to run get fresh ones.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { basename, join } from "node:path";
import { errorMessage, log } from "./log.js";
import { removeLeftoverNamespaces, type BridgeConfig } from "./network.js";
import { commandLine, isAlive, killTree } from "./processes.js";
import type { Recorder } from "./recorder.js";
import { parseStorageDirName, runRootFor, type StateDir } from "./state-dir.js";
import { removeStorage } from "./storage.js";

/** Kills the leftover services listed in pids/; returns each VMI uid's address, where its command line has one. */
async function killLeftovers(layout: StateDir): Promise<Map<string, string>> {
  const addresses = new Map<string, string>();
  for (const file of readdirSync(layout.pids).filter((f) => f.endsWith(".pid"))) {
    const path = join(layout.pids, file);
    const uid = basename(file, ".pid");
    const pid = Number(readFileSync(path, "utf8").trim());
    const cmd = Number.isInteger(pid) && pid > 0 && isAlive(pid) ? commandLine(pid) : undefined;
    // Only a podman service on one of our disks: the PID may have been reused since.
    if (cmd !== undefined && cmd.includes("system service") && cmd.includes(layout.vms)) {
      const ip = /tcp:\/\/([\d.]+):/.exec(cmd)?.[1];
      if (ip !== undefined) addresses.set(uid, ip);
      log.info("recovery: killing leftover podman service", { pid, vmi: uid, ip });
      await killTree(pid);
    }
    await rm(path, { force: true });
  }
  return addresses;
}

export async function recover(layout: StateDir, recorder: Recorder, bridge: BridgeConfig): Promise<void> {
  const addresses = await killLeftovers(layout);
  for (const ns of await removeLeftoverNamespaces(bridge.bridge)) log.info("recovery: deleted leftover network namespace", { ns });
  for (const entry of readdirSync(layout.vms)) {
    const dir = join(layout.vms, entry);
    const key = parseStorageDirName(dir);
    const started = Date.now();
    try {
      if (key !== undefined) await removeStorage(runRootFor(key.uid));
      await removeStorage(dir);
    } catch (err) {
      throw new Error(`recovery: ${errorMessage(err)}`);
    }
    if (key === undefined) continue;
    const ip = addresses.get(key.uid) ?? null;
    recorder.scratched({ namespace: key.namespace, vm: key.vm, uid: key.uid, ip, storageDir: dir }, Date.now() - started);
    log.info("recovery: scratched leftover disk", { namespace: key.namespace, vm: key.vm, vmi: key.uid, ip });
  }
}

/** Foreign RUN steps need qemu registered in binfmt_misc; testenv does that, the sim only warns. */
export function checkBinfmt(): void {
  const entry = "/proc/sys/fs/binfmt_misc/qemu-aarch64";
  if (!existsSync(entry)) {
    log.warn("qemu-aarch64 is not registered in binfmt_misc: arm64 RUN steps will fail", { entry });
  }
}
