import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Testenv } from "../../hack/testenv/index.js";
import { freePort } from "./ports.js";
import { startProcess, waitUntil, type TestProcess } from "./processes.js";

const ROOT = new URL("../..", import.meta.url).pathname;

export interface ControllerProcess extends TestProcess {
  /** http://127.0.0.1:PORT of its HTTP server. */
  url: string;
  logDir: string;
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
    /** Run the compiled dist/main.js (after `npm run build`) instead of src/ under tsx, as deployed (the bench). */
    compiled?: boolean;
  } = {},
): Promise<ControllerProcess> {
  const name = opts.name ?? "controller";
  const port = await freePort("127.0.0.1");
  const workDir = join(env.stateDir, name);
  const logDir = join(workDir, "logs");
  await mkdir(workDir, { recursive: true });
  const args = opts.compiled ? [join(ROOT, "dist/main.js")] : ["--import", "tsx", join(ROOT, "src/main.ts")];
  const proc = startProcess(process.execPath, args, {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      KUBECONFIG: env.controllerKubeconfig,
      VMBUILD_HTTP_HOST: "127.0.0.1",
      VMBUILD_HTTP_PORT: String(port),
      VMBUILD_WORK_DIR: workDir,
      VMBUILD_LOG_DIR: logDir,
      VMBUILD_PUBLIC_URL: `http://127.0.0.1:${port}`,
      VMBUILD_LOG_LEVEL: "debug",
      ...opts.extraEnv,
    },
  });
  const url = `http://127.0.0.1:${port}`;
  let exited = false;
  void proc.exited.then(() => {
    exited = true;
  });
  await waitUntil(
    async () => {
      if (exited) throw new Error("exited");
      const res = await fetch(`${url}/readyz`);
      return res.ok;
    },
    60_000,
    () => `controller not ready; output:\n${proc.output().slice(-4000)}`,
  ).catch(async (err: unknown) => {
    await proc.stop(2_000);
    throw err;
  });
  // Keep what it printed next to its work dir, for whoever reads a failed test.
  void proc.exited.then(() => writeFile(join(workDir, `controller-${proc.pid}.out`), proc.output()).catch(() => undefined));
  return Object.assign(proc, { url, logDir });
}
