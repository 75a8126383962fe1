import { mkdir, readFile } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { debsFor } from "../../hack/testenv/debs.js";
import { busyboxRootfsTar } from "../../hack/testenv/rootfs.js";
import { run } from "./exec.js";
import { freePort } from "./ports.js";
import { startProcess, waitUntil } from "./processes.js";
import { makeTempDir } from "./temp-dir.js";

/** A real `podman system service` on a loopback TCP port (or a unix socket), with its own storage in a temp dir. */
export interface PodmanService {
  /** `tcp://HOST:PORT` or `unix:///PATH` */
  endpoint: string;
  pid: number;
  /** Temp dir holding the service's storage, runroot and tmpdir. */
  dir: string;
  /** Runs the podman CLI against the service's storage. */
  cli(args: readonly string[]): Promise<string>;
  /**
   * Imports a busybox rootfs (Debian's busybox-static of the host's architecture, from the testenv's .deb cache:
   * the host need not have it installed) as `localhost/busybox:<arch>` with the given architecture label. The
   * binary is the host's: it runs natively whatever the label says.
   */
  importBusybox(arches: readonly string[]): Promise<void>;
  output(): string;
  stop(): Promise<void>;
}

/** Debian's name of the host's architecture (Node's x64 is Debian's amd64; arm64 is the same in both). */
const hostDebianArch = process.arch === "x64" ? "amd64" : process.arch;

/** Listens on `tcp://HOST:<free port>` (default 127.0.0.2), or on a unix socket in its temp dir. */
export async function startPodmanService(opts: { host?: string; unixSocket?: boolean } = {}): Promise<PodmanService> {
  const host = opts.host ?? "127.0.0.2";
  const temp = await makeTempDir("podman");
  const root = join(temp.path, "root");
  const runroot = join(temp.path, "runroot");
  const tmp = join(temp.path, "tmp");
  await mkdir(tmp, { recursive: true });
  // vfs leaves no overlay mounts behind; cgroupfs and chroot isolation suit this sandbox (see podman-api notes).
  const globalArgs = [
    "--root", root,
    "--runroot", runroot,
    "--tmpdir", tmp,
    "--storage-driver", "vfs",
    "--cgroup-manager", "cgroupfs",
    "--events-backend", "file",
  ];
  const env: NodeJS.ProcessEnv = { ...process.env, BUILDAH_ISOLATION: "chroot", TMPDIR: tmp };
  const socketPath = join(temp.path, "podman.sock");
  const endpoint = opts.unixSocket === true ? `unix://${socketPath}` : `tcp://${host}:${await freePort(host)}`;
  const service = startProcess("podman", [...globalArgs, "system", "service", "--time=0", endpoint], { env });

  const stop = async (): Promise<void> => {
    await service.stop();
    await unmountUnder(temp.path);
    await temp.remove();
  };
  try {
    await waitUntil(
      () => pingOnce(endpoint, socketPath),
      30_000,
      () => `podman service on ${endpoint}: ${service.output()}`,
    );
  } catch (error) {
    await stop();
    throw error;
  }

  const cli = (args: readonly string[]): Promise<string> => run("podman", [...globalArgs, ...args], { env });
  return {
    endpoint,
    pid: service.pid,
    dir: temp.path,
    cli,
    async importBusybox(arches) {
      const deb = (await debsFor("busybox-static", [hostDebianArch])).get(hostDebianArch);
      if (!deb) throw new Error(`no busybox-static .deb for ${hostDebianArch}`);
      const archive = await busyboxRootfsTar(deb, hostDebianArch, temp.path);
      for (const arch of arches) {
        await cli(["import", "--quiet", "--os", "linux", "--arch", arch, archive, `localhost/busybox:${arch}`]);
      }
    },
    output: () => service.output(),
    stop,
  };
}

function pingOnce(endpoint: string, socketPath: string): Promise<boolean> {
  const target = endpoint.startsWith("unix://")
    ? { socketPath, path: "/libpod/_ping" }
    : { host: new URL(endpoint).hostname, port: Number(new URL(endpoint).port), path: "/libpod/_ping" };
  return new Promise((resolve) => {
    const req = request(target, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once("error", () => resolve(false));
    req.end();
  });
}

/** Unmounts whatever a killed build may have left mounted under `dir` (deepest first). */
async function unmountUnder(dir: string): Promise<void> {
  const mounts = (await readFile("/proc/self/mounts", "utf8"))
    .split("\n")
    .map((line) => line.split(" ")[1] ?? "")
    .filter((target) => target.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const target of mounts) await run("umount", ["-l", target]).catch(() => undefined);
}
