// An image's ENTRYPOINT run from the image's own root filesystem, the way a kubelet runs a Deployment's container:
// `podman run` is refused here (crun's setrlimit), so the image is pulled into a private storage and mounted, and
// its entrypoint is started chrooted into it, with the container's user, env, read-only root and emptyDir volumes
// from the Deployment manifest, and the in-cluster API config (service-account token, CA and namespace files,
// KUBERNETES_SERVICE_HOST/PORT). What it does not copy: a network namespace of its own (it shares the host's, so
// its ports are the caller's to choose) and cgroup limits.
import { execFile } from "node:child_process";
import { copyFile, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { Testenv } from "../../hack/testenv/index.js";
import type { Cluster } from "./cluster.js";
import { startProcess, type TestProcess } from "./processes.js";

const exec = promisify(execFile);

/** The parts of a Deployment's pod template this runner honours. */
export interface PodTemplate {
  spec: {
    serviceAccountName: string;
    securityContext?: { runAsUser?: number; runAsGroup?: number };
    containers: {
      name: string;
      env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
      securityContext?: { runAsUser?: number; runAsGroup?: number; readOnlyRootFilesystem?: boolean };
      volumeMounts?: { name: string; mountPath: string }[];
    }[];
    volumes?: { name: string; emptyDir?: object }[];
  };
}

interface ImageConfig {
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Env?: string[] | null;
  User?: string;
  WorkingDir?: string;
}

export interface ImagePod {
  proc: TestProcess;
  /** Unmounts and removes the image copy; call after the process has exited. */
  remove(): Promise<void>;
}

// Runs as root in a mount namespace of its own: the image's root gets the pod's mounts, becomes read-only, and
// nsenter chroots into it as the container's user. $1 image root, $2 new root, $3 token dir, $4 working dir,
// $5 uid, $6 gid, $7 read-only (true/false), $8 emptyDir mount paths (space-separated), then the command.
const POD_INIT = `set -e
image=$1 root=$2 sa=$3 wd=$4 uid=$5 gid=$6 ro=$7 emptydirs=$8
shift 8
mount --bind "$image" "$root"
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
for dir in $emptydirs; do mkdir -p "$root$dir"; mount -t tmpfs -o mode=1777 emptydir "$root$dir"; done
token="$root/var/run/secrets/kubernetes.io/serviceaccount"
mkdir -p "$token"
mount --bind -o ro "$sa" "$token"
if [ "$ro" = true ]; then mount -o remount,bind,ro "$root"; fi
exec nsenter --root="$root" --wd="$root$wd" --setuid="$uid" --setgid="$gid" -- "$@"`;

export async function runImageAsPod(opts: {
  env: Testenv;
  cluster: Cluster;
  image: string;
  arch: string;
  template: PodTemplate;
  namespace: string;
  podName: string;
  /** Replaces or adds container env (e.g. ports: the pod shares the host's network). */
  envOverrides?: Record<string, string>;
  outputFile?: string;
}): Promise<ImagePod> {
  // Under the temp dir: podman refuses a runroot over 50 characters.
  const dir = await mkdtemp(join(tmpdir(), "vmbuild-pod-"));
  const podman = async (...args: string[]): Promise<string> =>
    (
      await exec(
        "podman",
        [`--root=${join(dir, "root")}`, `--runroot=${join(dir, "run")}`, "--storage-driver=vfs", "--events-backend=file", ...args],
        { maxBuffer: 16 * 1024 * 1024 },
      )
    ).stdout.trim();
  const remove = async (): Promise<void> => {
    await podman("image", "umount", "--all").catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const authFile = join(dir, "auth.json");
    const { host, username, password } = opts.env.registry;
    const auth = Buffer.from(`${username}:${password}`).toString("base64");
    await writeFile(authFile, JSON.stringify({ auths: { [host]: { auth } } }), { mode: 0o600 });
    await podman("pull", "--quiet", "--tls-verify=false", `--authfile=${authFile}`, `--arch=${opts.arch}`, opts.image);
    const image = await podman("image", "mount", opts.image);
    const [inspected] = JSON.parse(await podman("image", "inspect", opts.image)) as { Config: ImageConfig }[];
    const config = inspected?.Config ?? {};

    const pod = opts.template.spec;
    const container = pod.containers[0];
    if (!container) throw new Error("the pod template has no container");
    const saDir = join(dir, "serviceaccount");
    await mkdir(saDir);
    const token = await opts.cluster.core.createNamespacedServiceAccountToken({
      name: pod.serviceAccountName,
      namespace: opts.namespace,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    });
    await writeFile(join(saDir, "token"), token.status?.token ?? "");
    await copyFile(opts.env.caFile, join(saDir, "ca.crt"));
    await writeFile(join(saDir, "namespace"), opts.namespace);

    const emptyDirs = new Set((pod.volumes ?? []).filter((v) => v.emptyDir !== undefined).map((v) => v.name));
    const mounts = (container.volumeMounts ?? []).map((m) => {
      if (!emptyDirs.has(m.name)) throw new Error(`volume ${m.name}: only emptyDir volumes are supported here`);
      return m.mountPath;
    });
    const uid = container.securityContext?.runAsUser ?? pod.securityContext?.runAsUser ?? Number(config.User?.split(":")[0] ?? 0);
    const gid = container.securityContext?.runAsGroup ?? pod.securityContext?.runAsGroup ?? Number(config.User?.split(":")[1] ?? 0);
    const api = new URL(opts.env.apiserverURL);
    const env: Record<string, string> = {
      ...Object.fromEntries((config.Env ?? []).map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)])),
      ...Object.fromEntries((container.env ?? []).map((e) => [e.name, envValue(e, opts)])),
      KUBERNETES_SERVICE_HOST: api.hostname,
      KUBERNETES_SERVICE_PORT: api.port,
      ...opts.envOverrides,
    };
    const argv = [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])];
    if (argv.length === 0) throw new Error(`${opts.image} has neither ENTRYPOINT nor CMD`);
    const root = join(dir, "rootfs");
    await mkdir(root);
    const readOnly = container.securityContext?.readOnlyRootFilesystem === true;
    const proc = startProcess(
      "/usr/bin/unshare",
      ["--mount", "--propagation", "private", "/bin/sh", "-c", POD_INIT, "pod-init", image, root, saDir,
        config.WorkingDir || "/", String(uid), String(gid), String(readOnly), mounts.join(" "), ...argv],
      { env, ...(opts.outputFile ? { outputFile: opts.outputFile } : {}) },
    );
    return { proc, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}

function envValue(
  e: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } },
  pod: { namespace: string; podName: string },
): string {
  if (e.value !== undefined) return e.value;
  const field = e.valueFrom?.fieldRef?.fieldPath;
  if (field === "metadata.namespace") return pod.namespace;
  if (field === "metadata.name") return pod.podName;
  throw new Error(`env ${e.name}: only values and the fieldRefs metadata.namespace and metadata.name are supported here`);
}
