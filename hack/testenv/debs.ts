// Debian packages for any architecture, downloaded once into the cache (`apt-get download`, no install) through an
// apt state of their own: the host's dpkg architectures and apt lists stay as they are.
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { aptGetAfterUpdate, privateApt, type AptSources } from "./apt.js";
import { progress } from "./log.js";
import { cacheDir } from "./paths.js";

/**
 * apt-get options for the private apt state in `dir`/apt with an empty dpkg status: nothing installed, so nothing of
 * the host's dpkg is read (apt adds the native architecture).
 */
async function aptForEmptySystem(
  dir: string,
  sources: AptSources | undefined,
  settings: Readonly<Record<string, string | readonly string[]>>,
): Promise<string[]> {
  const state = join(dir, "apt");
  const status = join(state, "status");
  const apt = await privateApt(state, sources, { "Dir::State::status": status, ...settings });
  await writeFile(status, "");
  return apt;
}

async function cachedDeb(debs: string, pkg: string, arch: string): Promise<string | undefined> {
  const names = await readdir(debs).catch(() => [] as string[]);
  const found = names.filter((n) => n.startsWith(`${pkg}_`) && n.endsWith(`_${arch}.deb`)).sort().pop();
  return found ? join(debs, found) : undefined;
}

/**
 * Path of `<pkg>_<version>_<arch>.deb` for each of `architectures` (Debian's names), from `dir`/debs or downloaded
 * there, with the private apt state in `dir`/apt reading `sources` (default: the host's).
 */
export async function debsFor(
  pkg: string,
  architectures: readonly string[],
  { dir = cacheDir(), sources }: { dir?: string; sources?: AptSources } = {},
): Promise<Map<string, string>> {
  const debs = join(dir, "debs");
  const found = new Map<string, string>();
  for (const arch of architectures) {
    const deb = await cachedDeb(debs, pkg, arch);
    if (deb) found.set(arch, deb);
  }
  const missing = architectures.filter((arch) => !found.has(arch));
  if (missing.length === 0) return found;

  await mkdir(debs, { recursive: true });
  const apt = await aptForEmptySystem(dir, sources, { "APT::Architectures": missing });
  const wanted = missing.map((arch) => `${pkg}:${arch}`);
  progress(`apt-get download ${wanted.join(" ")}`);
  await aptGetAfterUpdate(apt, ["download", ...wanted], debs);
  for (const arch of missing) {
    const deb = await cachedDeb(debs, pkg, arch);
    if (!deb) throw new Error(`apt-get download ${pkg}:${arch} left no .deb in ${debs}`);
    found.set(arch, deb);
  }
  return found;
}

/**
 * The .deb files of `packages` for one architecture (Debian's name) and of everything they depend on, as apt
 * resolves them for an empty system (no recommends): a root filesystem's worth. Downloaded once into `dir`/debs.
 */
export async function debClosure(
  packages: readonly string[],
  arch: string,
  { dir = cacheDir(), sources }: { dir?: string; sources?: AptSources } = {},
): Promise<string[]> {
  const archives = join(dir, "debs", `closure-${arch}`);
  const marker = join(archives, "packages");
  const wanted = [...packages].sort().join(" ");
  const listDebs = async (): Promise<string[]> =>
    (await readdir(archives)).filter((n) => n.endsWith(".deb")).map((n) => join(archives, n));
  if ((await readFile(marker, "utf8").catch(() => "")) === wanted) return listDebs();

  await rm(archives, { recursive: true, force: true });
  await mkdir(join(archives, "partial"), { recursive: true });
  const apt = await aptForEmptySystem(dir, sources, {
    "Dir::Cache::archives": archives,
    "APT::Architecture": arch,
    "APT::Architectures": [arch],
  });
  progress(`apt-get install --download-only ${wanted} (${arch})`);
  await aptGetAfterUpdate(apt, ["install", "--download-only", "-y", "-q", "--no-install-recommends", ...packages]);
  await writeFile(marker, wanted);
  return listDebs();
}
