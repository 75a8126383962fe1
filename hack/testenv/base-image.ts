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

/** True if the registry already serves the image as an index of every architecture (an older one had two). */
async function registryHasBaseImage(registry: RegistryInfo): Promise<boolean> {
  const res = await fetch(`http://${registry.host}/v2/${baseImageRepository}/manifests/latest`, {
    headers: { Authorization: basicAuth(registry), Accept: indexMediaTypes },
    signal: AbortSignal.timeout(5000),
  });
  if (res.status !== 200 || !indexMediaTypes.includes(res.headers.get("content-type") ?? "-")) return false;
  const index = (await res.json()) as { manifests?: { platform?: { architecture?: string } }[] };
  const served = new Set(index.manifests?.map((m) => m.platform?.architecture));
  return baseImageArchitectures.every((arch) => served.has(arch));
}

export async function ensureBaseImage(registry: RegistryInfo): Promise<string> {
  const ref = baseImageRef(registry);
  if (await registryHasBaseImage(registry)) return ref;
  const start = Date.now();
  progress(`building base image ${ref} (${baseImageArchitectures.join(", ")})`);
  // A private podman storage, thrown away once the image is pushed: nothing leaks into (or depends on) the
  // machine's own images. Under the temp dir, not the checkout: podman refuses a runroot over 50 characters.
  const dir = await mkdtemp(join(tmpdir(), "vmbuild-base-"));
  try {
    await buildAndPush(registry, ref, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  progress(`base image ${ref} pushed (${elapsed(start)})`);
  return ref;
}

async function buildAndPush(registry: RegistryInfo, ref: string, dir: string): Promise<void> {
  const podmanArgs = [
    `--root=${join(dir, "root")}`,
    `--runroot=${join(dir, "runroot")}`,
    "--storage-driver=vfs",
    "--events-backend=file",
  ];
  const podman = (...args: string[]): ReturnType<typeof run> => run("podman", [...podmanArgs, ...args]);

  const list = "localhost/vmbuild-busybox-list:latest";
  await podman("manifest", "rm", list).catch(() => undefined);
  await podman("manifest", "create", list);
  const debs = await debsFor("busybox-static", Object.values(debianArchitectures));
  for (const arch of baseImageArchitectures) {
    const debianArch = debianArchitectures[arch] ?? arch;
    const deb = debs.get(debianArch);
    if (!deb) throw new Error(`no busybox-static .deb for ${debianArch}`);
    const tar = await busyboxRootfsTar(deb, debianArch, dir);
    const image = `localhost/vmbuild-busybox:${arch}`;
    await podman("import", `--arch=${arch}`, "--os=linux", "--change", 'CMD ["/bin/sh"]', tar, image);
    await podman("manifest", "add", list, `containers-storage:${image}`);
  }
  // Credentials in a file, not on a command line that `ps` shows.
  const authFile = join(dir, "auth.json");
  await writeFile(authFile, JSON.stringify({ auths: { [registry.host]: { auth: basicAuth(registry).slice(6) } } }), {
    mode: 0o600,
  });
  await podman("manifest", "push", "--all", "--tls-verify=false", `--authfile=${authFile}`, list, `docker://${ref}`);
  if (!(await registryHasBaseImage(registry))) {
    throw new Error(`pushed ${ref} but the registry does not serve it as an image index`);
  }
}
