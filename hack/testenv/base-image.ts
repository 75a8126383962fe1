// The multi-arch base image every test build starts FROM: no public registry is reachable, so it is made here
// (busybox rootfs per architecture → podman import → manifest list → push to the testenv registry).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { debsFor } from "./debs.js";
import type { RegistryInfo } from "./env-file.js";
import { run } from "./exec.js";
import { elapsed, progress } from "./log.js";
import { basicAuth } from "./registry.js";
import { busyboxRootfsTar } from "./rootfs.js";

export const baseImageRepository = "vmbuild/busybox";
/** OCI architecture → Debian's name for it: the bench builds for all four of Debian's busybox-static ports. */
const debianArchitectures: Readonly<Record<string, string>> = { amd64: "amd64", arm64: "arm64", ppc64le: "ppc64el", s390x: "s390x" };
export const baseImageArchitectures: readonly string[] = Object.keys(debianArchitectures);

const indexMediaTypes = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");

export function baseImageRef(registry: RegistryInfo): string {
  return `${registry.host}/${baseImageRepository}:latest`;
}

/** True if the registry serves repository:tag as an index holding every one of `architectures`. */
export async function registryServesIndex(
  registry: RegistryInfo,
  repository: string,
  tag: string,
  architectures: readonly string[],
): Promise<boolean> {
  const res = await fetch(`http://${registry.host}/v2/${repository}/manifests/${tag}`, {
    headers: { Authorization: basicAuth(registry), Accept: indexMediaTypes },
    signal: AbortSignal.timeout(5000),
  });
  if (res.status !== 200 || !indexMediaTypes.includes(res.headers.get("content-type") ?? "-")) return false;
  const index = (await res.json()) as { manifests?: { platform?: { architecture?: string } }[] };
  const served = new Set(index.manifests?.map((m) => m.platform?.architecture));
  return architectures.every((arch) => served.has(arch));
}

export async function ensureBaseImage(registry: RegistryInfo): Promise<string> {
  const ref = baseImageRef(registry);
  // An older testenv served two architectures only.
  if (await registryServesIndex(registry, baseImageRepository, "latest", baseImageArchitectures)) return ref;
  const start = Date.now();
  progress(`building base image ${ref} (${baseImageArchitectures.join(", ")})`);
  await withScratchDir("vmbuild-base-", async (dir) => {
    const debs = await debsFor("busybox-static", Object.values(debianArchitectures));
    const rootfs: RootfsTar[] = [];
    for (const arch of baseImageArchitectures) {
      const debianArch = debianArchitectures[arch] ?? arch;
      const deb = debs.get(debianArch);
      if (!deb) throw new Error(`no busybox-static .deb for ${debianArch}`);
      rootfs.push({ arch, tar: await busyboxRootfsTar(deb, debianArch, dir) });
    }
    await pushIndex(registry, { repository: baseImageRepository, tag: "latest" }, rootfs, ['CMD ["/bin/sh"]'], dir);
  });
  progress(`base image ${ref} pushed (${elapsed(start)})`);
  return ref;
}

/**
 * Runs `fn` with a fresh directory under the temp dir (not the checkout: podman refuses a runroot over 50
 * characters), removed afterwards.
 */
export async function withScratchDir<T>(prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface RootfsTar {
  /** OCI architecture. */
  arch: string;
  tar: string;
}

/**
 * Imports each root filesystem tarball as an image of its architecture (with Dockerfile `changes`), and pushes them
 * to the registry as one index. Uses a private podman storage in `dir`: nothing leaks into (or depends on) the
 * machine's own images.
 */
export async function pushIndex(
  registry: RegistryInfo,
  target: { repository: string; tag: string },
  rootfs: readonly RootfsTar[],
  changes: readonly string[],
  dir: string,
): Promise<void> {
  const podmanArgs = [
    `--root=${join(dir, "root")}`,
    `--runroot=${join(dir, "runroot")}`,
    "--storage-driver=vfs",
    "--events-backend=file",
  ];
  const podman = (...args: string[]): ReturnType<typeof run> => run("podman", [...podmanArgs, ...args]);
  const local = `localhost/${target.repository}`;
  const list = `${local}-list:${target.tag}`;
  await podman("manifest", "rm", list).catch(() => undefined);
  await podman("manifest", "create", list);
  for (const { arch, tar } of rootfs) {
    const image = `${local}:${target.tag}-${arch}`;
    await podman("import", `--arch=${arch}`, "--os=linux", ...changes.flatMap((c) => ["--change", c]), tar, image);
    await podman("manifest", "add", list, `containers-storage:${image}`);
  }
  // Credentials in a file, not on a command line that `ps` shows.
  const authFile = join(dir, "auth.json");
  await writeFile(authFile, JSON.stringify({ auths: { [registry.host]: { auth: basicAuth(registry).slice(6) } } }), {
    mode: 0o600,
  });
  const ref = `${registry.host}/${target.repository}:${target.tag}`;
  await podman("manifest", "push", "--all", "--tls-verify=false", `--authfile=${authFile}`, list, `docker://${ref}`);
  const architectures = rootfs.map((r) => r.arch);
  if (!(await registryServesIndex(registry, target.repository, target.tag, architectures))) {
    throw new Error(`pushed ${ref} but the registry does not serve it as an image index of ${architectures.join(", ")}`);
  }
}
