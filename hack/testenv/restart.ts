// Taking one component of a running testenv down and bringing it back with the very same command line (flags,
// ports, data dir), for fault-injection tests: `npm run testenv -- restart apiserver|etcd|registry`.
import { readFile, readlink } from "node:fs/promises";
import { z } from "zod";
import { apiserverHealthy, apiserverLog, apiserverPidFile } from "./apiserver.js";
import { readTestenv, writeTestenv, type Testenv } from "./env-file.js";
import { etcdHealthy, etcdLog, etcdPidFile } from "./etcd.js";
import { withLock } from "./lock.js";
import { rel } from "./paths.js";
import { isRunning, readPid, startDetached, stopProcess } from "./processes.js";
import { registryLog, registryPidFile, registryReady } from "./registry.js";
import { poll } from "./wait.js";

export const RestartableSchema = z.enum(["apiserver", "etcd", "registry"]);
export type Restartable = z.infer<typeof RestartableSchema>;

interface ComponentFiles {
  pidFile: string;
  logFile: string;
  pidKey: "apiserver" | "etcd" | "registry";
  healthy(env: Testenv): Promise<boolean>;
}

const COMPONENTS: Record<Restartable, ComponentFiles> = {
  apiserver: {
    pidFile: apiserverPidFile,
    logFile: apiserverLog,
    pidKey: "apiserver",
    healthy: async (env) => apiserverHealthy(env.apiserverURL, await readFile(env.caFile, "utf8"), env.tokens.admin),
  },
  etcd: { pidFile: etcdPidFile, logFile: etcdLog, pidKey: "etcd", healthy: (env) => etcdHealthy(env.etcdURL) },
  registry: { pidFile: registryPidFile, logFile: registryLog, pidKey: "registry", healthy: (env) => registryReady(env.registry) },
};

/** A component that was stopped; `start()` runs it again as it ran before and resolves once it answers. */
export interface StoppedComponent {
  readonly name: Restartable;
  start(): Promise<number>;
}

/**
 * Stops `name` by the PID the testenv recorded (SIGTERM, SIGKILL after `graceMs`), remembering its command line
 * and working directory first so that it comes back on the same ports with the same data.
 */
export async function stopComponent(name: Restartable, graceMs = 5000): Promise<StoppedComponent> {
  const files = COMPONENTS[name];
  const pid = readPid(files.pidFile);
  if (pid === undefined || !isRunning(pid)) throw new Error(`${name} is not running (no live PID in ${rel(files.pidFile)})`);
  const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").filter((a) => a !== "");
  const cwd = await readlink(`/proc/${pid}/cwd`);
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error(`${name} (pid ${pid}) has no command line`);
  await withLock(`stopping ${name}`, () => stopProcess(pid, graceMs));
  return {
    name,
    start: () => withLock(`starting ${name}`, () => startAgain(name, { cmd, args, cwd })),
  };
}

const START_ATTEMPTS = 10;

async function startAgain(name: Restartable, spec: { cmd: string; args: string[]; cwd: string }): Promise<number> {
  const files = COMPONENTS[name];
  const env = readTestenv();
  if (!env) throw new Error("no testenv is up (.testenv/env.json missing)");
  // Its ports were free only while it ran: an outgoing connection may take one as its ephemeral port meanwhile
  // (seen: etcd's peer port, "bind: address already in use"). Such a connection ends soon; try again.
  for (let attempt = 1; ; attempt++) {
    const pid = startDetached({ ...spec, logFile: files.logFile, pidFile: files.pidFile });
    env.pids[files.pidKey] = pid;
    await writeTestenv(env);
    try {
      await poll(async () => ((await files.healthy(env)) ? true : undefined), {
        timeoutMs: 60_000,
        what: `${name} did not answer again after its restart`,
        hint: `; see ${rel(files.logFile)}`,
        failFast: () => (isRunning(pid) ? undefined : `${name} exited right after its restart`),
      });
      return pid;
    } catch (err) {
      if (isRunning(pid) || attempt >= START_ATTEMPTS) throw err;
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
  }
}

/** Stop, stay down for `downMs`, start again; resolves with the new PID once the component answers. */
export async function restartComponent(name: Restartable, downMs = 0): Promise<number> {
  const stopped = await stopComponent(name);
  if (downMs > 0) await new Promise((resolve) => setTimeout(resolve, downMs));
  return stopped.start();
}
