// What is running, checked for real (PID alive and the service answering), for `status` and for a repeated `up`.
import { readFile } from "node:fs/promises";
import { apiserverHealthy } from "./apiserver.js";
import { binfmtReady } from "./binfmt.js";
import { readTestenv, type Testenv } from "./env-file.js";
import { etcdHealthy } from "./etcd.js";
import { isRunning } from "./processes.js";
import { registryReady } from "./registry.js";

export type ComponentState = "healthy" | "not started" | "not running" | "not answering";

export interface ComponentStatus {
  name: string;
  pid?: number;
  healthy: boolean;
  state: ComponentState;
  detail: string;
}

export interface Health {
  /** etcd, kube-apiserver and registry all healthy. */
  core: boolean;
  kubevirtSim: boolean;
  components: ComponentStatus[];
}

export interface StatusReport extends Health {
  up: boolean;
  env?: Testenv;
}

async function probe(check: () => Promise<boolean>): Promise<boolean> {
  try {
    return await check();
  } catch {
    return false;
  }
}

async function component(name: string, pid: number | undefined, detail: string, check: () => Promise<boolean>): Promise<ComponentStatus> {
  const alive = pid !== undefined && isRunning(pid);
  const healthy = alive && (await probe(check));
  const state: ComponentState =
    pid === undefined ? "not started" : !alive ? "not running" : healthy ? "healthy" : "not answering";
  return { name, ...(pid !== undefined ? { pid } : {}), healthy, state, detail };
}

export async function checkHealth(env: Testenv): Promise<Health> {
  const ca = await readFile(env.caFile, "utf8").catch(() => "");
  const components = await Promise.all([
    component("etcd", env.pids.etcd, env.etcdURL, () => etcdHealthy(env.etcdURL)),
    component("kube-apiserver", env.pids.apiserver, env.apiserverURL, () =>
      apiserverHealthy(env.apiserverURL, ca, env.tokens.admin),
    ),
    component("registry", env.pids.registry, `http://${env.registry.host}`, () => registryReady(env.registry)),
    component("kubevirt-sim", env.pids.kubevirtSim, env.simStateDir, async () => true),
  ]);
  const byName = (n: string): boolean => components.find((c) => c.name === n)?.healthy === true;
  const binfmt = binfmtReady();
  components.push({
    name: "binfmt qemu-aarch64",
    healthy: binfmt,
    state: binfmt ? "healthy" : "not running",
    detail: binfmt ? "registered" : "not registered",
  });
  return {
    core: byName("etcd") && byName("kube-apiserver") && byName("registry"),
    kubevirtSim: byName("kubevirt-sim"),
    components,
  };
}

export async function status(): Promise<StatusReport> {
  const env = readTestenv();
  if (!env) return { up: false, core: false, kubevirtSim: false, components: [] };
  const health = await checkHealth(env);
  return { ...health, up: health.core, env };
}
