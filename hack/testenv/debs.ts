// Debian packages for foreign architectures, downloaded once into the cache (`apt-get download`, no install).
import { readdir, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { aptUpdate } from "./apt.js";
import { run } from "./exec.js";
import { progress } from "./log.js";
import { cacheDir } from "./paths.js";

export const debCacheDir: string = join(cacheDir(), "debs");

async function cachedDeb(pkg: string, arch: string): Promise<string | undefined> {
  const names = await readdir(debCacheDir).catch(() => [] as string[]);
  const found = names.filter((n) => n.startsWith(`${pkg}_`) && n.endsWith(`_${arch}.deb`)).sort().pop();
  return found ? join(debCacheDir, found) : undefined;
}

async function ensureForeignArch(arch: string): Promise<boolean> {
  const { stdout: native } = await run("dpkg", ["--print-architecture"]);
  if (native.trim() === arch) return false;
  const { stdout } = await run("dpkg", ["--print-foreign-architectures"]);
  if (stdout.split(/\s+/).includes(arch)) return false;
  progress(`dpkg --add-architecture ${arch}`);
  await run("dpkg", ["--add-architecture", arch]);
  return true;
}

/**
 * An index of one of the foreign architectures may be mid-sync on the mirror (seen: ppc64el's security index) and
 * fail the whole update while the package we need is listed fine: the download that follows says if it is not.
 */
async function tolerantUpdate(): Promise<void> {
  await aptUpdate(true).catch((err: unknown) => progress(`apt-get update failed, trying the download anyway: ${String(err).slice(0, 300)}`));
}

/** Path of `<pkg>_<version>_<arch>.deb` in the cache, downloading it if needed. */
export async function debFor(pkg: string, arch: string): Promise<string> {
  const cached = await cachedDeb(pkg, arch);
  if (cached) return cached;
  await mkdir(debCacheDir, { recursive: true });
  const added = await ensureForeignArch(arch);
  if (added) await tolerantUpdate();
  progress(`apt-get download ${pkg}:${arch}`);
  try {
    await run("apt-get", ["download", `${pkg}:${arch}`], { cwd: debCacheDir });
  } catch {
    // Package lists may predate the architecture (or be missing entirely in a slim image): refresh and retry.
    await tolerantUpdate();
    await run("apt-get", ["download", `${pkg}:${arch}`], { cwd: debCacheDir });
  }
  const downloaded = await cachedDeb(pkg, arch);
  if (!downloaded) throw new Error(`apt-get download ${pkg}:${arch} left no .deb in ${debCacheDir}`);
  return downloaded;
}
