// etcd for the apiserver: one member on loopback, data under .testenv/etcd.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { isRunning, startDetached } from "./processes.js";
import { logsDir, pidsDir, rel, repoRoot, stateDir } from "./paths.js";
import { poll } from "./wait.js";

export interface EtcdHandle {
  url: string;
  pid: number;
}

export const etcdLog: string = join(logsDir, "etcd.log");
export const etcdPidFile: string = join(pidsDir, "etcd.pid");

export async function startEtcd(binary: string, clientPort: number, peerPort: number): Promise<EtcdHandle> {
  const dataDir = join(stateDir, "etcd");
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const pid = startDetached({
    cmd: binary,
    args: [
      "--name=testenv",
      `--data-dir=${dataDir}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=testenv=${peer}`,
      // Throwaway data: skipping fsync makes the apiserver's writes fast on a slow disk.
      "--unsafe-no-fsync=true",
      "--log-level=warn",
    ],
    cwd: repoRoot,
    logFile: etcdLog,
    pidFile: etcdPidFile,
  });
  await waitEtcdHealthy(url, pid);
  return { url, pid };
}

export async function etcdHealthy(url: string): Promise<boolean> {
  const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
  const body = (await res.json()) as { health?: string };
  return res.ok && body.health === "true";
}

async function waitEtcdHealthy(url: string, pid: number): Promise<void> {
  await poll(async () => ((await etcdHealthy(url)) ? true : undefined), {
    timeoutMs: 20_000,
    what: "etcd did not become healthy",
    failFast: () => (isRunning(pid) ? undefined : "etcd exited during startup"),
    hint: `; see ${rel(etcdLog)}`,
  });
}
