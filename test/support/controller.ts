import { readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Testenv } from "../../hack/testenv/index.js";
import { freePort } from "./ports.js";
import { startProcess, waitReady, type TestProcess } from "./processes.js";

const ROOT = new URL("../..", import.meta.url).pathname;

export interface ControllerProcess extends TestProcess {
  /** http://127.0.0.1:PORT of its HTTP server. */
  url: string;
  /** http://127.0.0.1:PORT of its metrics server (/metrics). */
  metricsURL: string;
  logDir: string;
  /** Everything it printed (its pino log), whole; written as it runs. */
  outputPath: string;
}

/**
 * Runs the controller as its own process (as in a cluster), authenticated as the controller's identity, so it
 * gets only what deploy/rbac.yaml grants. Resolves once it reports ready.
 */
export async function startController(
  env: Testenv,
  opts: {
    name?: string;
    extraEnv?: NodeJS.ProcessEnv;
    readyTimeoutMs?: number;
    /** Run the compiled dist/main.js (after `npm run build`) instead of src/ under tsx, as deployed (the bench). */
    compiled?: boolean;
    /** Flags for node itself, after the image's (imageNodeArgs), e.g. the bench's --cpu-prof (not allowed in NODE_OPTIONS). */
    nodeArgs?: string[];
  } = {},
): Promise<ControllerProcess> {
  const name = opts.name ?? "controller";
  const port = await freePort("127.0.0.1");
  const metricsPort = await freePort("127.0.0.1");
  const workDir = join(env.stateDir, name);
  const logDir = join(workDir, "logs");
  await mkdir(workDir, { recursive: true });
  // Kept next to its work dir for whoever reads a failed test, and whole for tests that scan it.
  const outputPath = join(workDir, `controller-${Date.now()}.out`);
  const main = opts.compiled ? [join(ROOT, "dist/main.js")] : ["--import", "tsx", join(ROOT, "src/main.ts")];
  const args = [...imageNodeArgs(), ...(opts.nodeArgs ?? []), ...main];
  const proc = startProcess(process.execPath, args, {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      KUBECONFIG: env.controllerKubeconfig,
      VMBUILD_HTTP_HOST: "127.0.0.1",
      VMBUILD_HTTP_PORT: String(port),
      VMBUILD_METRICS_PORT: String(metricsPort),
      VMBUILD_WORK_DIR: workDir,
      VMBUILD_LOG_DIR: logDir,
      VMBUILD_PUBLIC_URL: `http://127.0.0.1:${port}`,
      VMBUILD_LOG_LEVEL: "debug",
      GLIBC_TUNABLES: imageGlibcTunables(),
      ...opts.extraEnv,
    },
    outputFile: outputPath,
  });
  const url = `http://127.0.0.1:${port}`;
  await waitReady(
    proc,
    async () => (await fetch(`${url}/readyz`)).ok,
    opts.readyTimeoutMs ?? 60_000,
    () => `controller not ready; output:\n${proc.output().slice(-4000)}`,
  );
  return Object.assign(proc, { url, metricsURL: `http://127.0.0.1:${metricsPort}`, logDir, outputPath });
}

const dockerfile = () => readFileSync(join(ROOT, "Dockerfile"), "utf8");

/** The node flags of the image's ENTRYPOINT (its V8 heap settings), so that the controller here runs as deployed. */
export function imageNodeArgs(): string[] {
  const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile())?.[1];
  if (!entrypoint) throw new Error("Dockerfile: no ENTRYPOINT [...] line");
  const argv = JSON.parse(entrypoint) as string[];
  const main = argv.indexOf("dist/main.js");
  if (argv[0] !== "node" || main < 0) throw new Error(`Dockerfile: ENTRYPOINT is not node FLAGS... dist/main.js: ${entrypoint}`);
  return argv.slice(1, main);
}

/** The image's glibc malloc settings (its `ENV GLIBC_TUNABLES=` line), the other half of running as deployed. */
export function imageGlibcTunables(): string {
  const tunables = /^ENV GLIBC_TUNABLES=(\S+)$/m.exec(dockerfile())?.[1];
  if (!tunables) throw new Error("Dockerfile: no ENV GLIBC_TUNABLES=... line");
  return tunables;
}

/** A controller kept running as a Deployment keeps its pod: whenever the process exits, a new one is started. */
export interface SupervisedController {
  /** The process running now (or the last one, while a replacement starts). */
  current(): ControllerProcess;
  /** How many times a replacement was started. */
  restarts(): number;
  /** SIGKILLs the running process; the supervisor starts a replacement. */
  kill(): Promise<void>;
  /** Resolves once a replacement (if one is due) is ready. */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

export async function superviseController(
  env: Testenv,
  opts: { name?: string; extraEnv?: NodeJS.ProcessEnv } = {},
): Promise<SupervisedController> {
  let proc = await startController(env, opts);
  let stopping = false;
  let restarts = 0;
  // Resolves once a live, ready process exists; replaced by a new promise each time one exits.
  let ready: Promise<void> = Promise.resolve();
  const replace = async (): Promise<void> => {
    // The API server may be down (that may be why it exited): keep trying, as a kubelet would.
    while (!stopping) {
      try {
        proc = await startController(env, opts);
        restarts++;
        watch(proc);
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
  };
  const watch = (p: ControllerProcess): void => {
    void p.exited.then(() => {
      if (!stopping) ready = replace();
    });
  };
  watch(proc);
  return {
    current: () => proc,
    restarts: () => restarts,
    async kill() {
      const victim = proc;
      process.kill(victim.pid, "SIGKILL");
      await victim.exited;
    },
    async settled() {
      for (let seen = ready; ; seen = ready) {
        await seen;
        if (seen === ready) return;
      }
    },
    async stop() {
      stopping = true;
      await ready;
      await proc.stop();
    },
  };
}
