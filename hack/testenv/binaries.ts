// Finding etcd, kube-apiserver and Tekton's controller: the user's own (env var, then PATH), else our cache, else
// build from Go modules.
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { access, constants, mkdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { run, which } from "./exec.js";
import { elapsed, progress, warn } from "./log.js";
import { cacheDir, repoRoot } from "./paths.js";

export interface BinarySpec {
  name: "etcd" | "kube-apiserver" | "tekton-controller";
  version: string;
  /** Environment variable naming a binary the user already has. */
  envVar: string;
  /** Go wrapper module under hack/testenv/go/. */
  moduleDir: string;
  /** What `go build` builds inside the module. */
  target: string;
  ldflags: string;
  /**
   * Oldest version accepted from PATH (an explicit env var is trusted as is); absent: PATH is not searched (a
   * binary that cannot report its version).
   */
  minimum?: readonly [number, number, number];
}

export const kubeApiserver: BinarySpec = {
  name: "kube-apiserver",
  version: "v1.35.4",
  envVar: "KUBE_APISERVER",
  moduleDir: join(repoRoot, "hack/testenv/go/kube-apiserver"),
  target: "k8s.io/kubernetes/cmd/kube-apiserver",
  ldflags:
    "-s -w -X k8s.io/component-base/version.gitVersion=v1.35.4" +
    " -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35",
  minimum: [1, 31, 0],
};

export const etcd: BinarySpec = {
  name: "etcd",
  version: "v3.6.16",
  envVar: "ETCD",
  moduleDir: join(repoRoot, "hack/testenv/go/etcd"),
  target: ".",
  ldflags: "-s -w",
  // Kubernetes 1.31+ documents etcd 3.5.11+ and needs 3.5.13+ for watch progress; Debian's etcd-server is 3.4.23.
  minimum: [3, 5, 13],
};

/**
 * Tekton Pipelines' controller (cmd/controller), for the suite that runs PipelineRuns. Its version is the one the
 * wrapper module requires (hack/testenv/go/tekton-controller/go.mod), which also pins the CRDs the testenv applies.
 */
export const tektonController: BinarySpec = {
  name: "tekton-controller",
  version: "v1.15.1",
  envVar: "TEKTON_CONTROLLER",
  moduleDir: join(repoRoot, "hack/testenv/go/tekton-controller"),
  target: "github.com/tektoncd/pipeline/cmd/controller",
  ldflags: "-s -w",
};

export function cachedBinaryPath(spec: BinarySpec): string {
  return join(cacheDir(), `${spec.name}-${spec.version}`, spec.name);
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Path of a usable binary, building it into the cache if nobody has one. */
export async function resolveBinary(spec: BinarySpec): Promise<string> {
  const fromEnv = process.env[spec.envVar];
  if (fromEnv) {
    if (!(await isExecutable(fromEnv))) throw new Error(`${spec.envVar}=${fromEnv} is not an executable file`);
    return fromEnv;
  }
  const onPath = spec.minimum ? await which(spec.name) : undefined;
  if (onPath && (await recentEnough(spec, onPath))) return onPath;
  const cached = cachedBinaryPath(spec);
  if (await isExecutable(cached)) return cached;
  await buildBinary(spec, cached);
  return cached;
}

async function recentEnough(spec: BinarySpec, path: string): Promise<boolean> {
  if (!spec.minimum) return false;
  const { stdout } = await run(path, ["--version"]).catch(() => ({ stdout: "" }));
  const found = /(\d+)\.(\d+)\.(\d+)/.exec(stdout)?.slice(1, 4).map(Number) ?? [];
  const [a = 0, b = 0, c = 0] = found;
  const [x, y, z] = spec.minimum;
  const ok = a !== x ? a > x : b !== y ? b > y : c >= z;
  if (!ok) warn(`ignoring ${path} (version ${found.join(".") || "unknown"}, need ${spec.minimum.join(".")}+)`);
  return ok;
}

export async function goCommand(spec: Pick<BinarySpec, "name" | "envVar">): Promise<string> {
  // /usr/local/go/bin is where the official tarball installs, often missing from a non-login shell's PATH.
  const found = (await which("go")) ?? ((await isExecutable("/usr/local/go/bin/go")) ? "/usr/local/go/bin/go" : undefined);
  if (!found) {
    throw new Error(
      `cannot build ${spec.name}: Go is not installed; install Go 1.25+ or set ${spec.envVar} to an existing binary`,
    );
  }
  return found;
}

/** `go build` into a temporary name next to the target, then rename: a killed build never leaves a half binary. */
async function buildBinary(spec: BinarySpec, out: string): Promise<void> {
  const go = await goCommand(spec);
  const dir = join(out, "..");
  await mkdir(dir, { recursive: true });
  const tmp = `${out}.tmp-${process.pid}`;
  const logPath = join(dir, "build.log");
  const start = Date.now();
  progress(`building ${spec.name} ${spec.version} from Go modules (several minutes, cached afterwards); log: ${logPath}`);
  const heartbeat = setInterval(() => progress(`still building ${spec.name} (${elapsed(start)})`), 30_000);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const log = createWriteStream(logPath);
      const child = spawn(go, ["build", "-trimpath", "-ldflags", spec.ldflags, "-o", tmp, spec.target], {
        cwd: spec.moduleDir,
        stdio: ["ignore", "pipe", "pipe"],
      });
      child.stdout.pipe(log);
      child.stderr.pipe(log);
      child.on("error", reject);
      child.on("close", (c) => log.end(() => resolve(c)));
    });
    if (code !== 0) {
      const tail = (await readFile(logPath, "utf8")).trim().split("\n").slice(-20).join("\n");
      throw new Error(`building ${spec.name} ${spec.version} failed (exit ${code}); see ${logPath}:\n${tail}`);
    }
    await rename(tmp, out);
    progress(`built ${spec.name} ${spec.version} in ${elapsed(start)}: ${out}`);
  } finally {
    clearInterval(heartbeat);
    await rm(tmp, { force: true });
  }
}
