// Package tarballs from the npm registry, downloaded once into the cache and checked against their integrity
// (Subresource Integrity, as npm's lockfiles and packuments give it).
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cacheDir } from "./paths.js";

export const npmRegistry = "https://registry.npmjs.org";

/** The tarball's file name as the registry serves it: `name-1.2.3.tgz`, without the scope of `@scope/name`. */
export function tarballFileName(name: string, version: string): string {
  return `${name.slice(name.lastIndexOf("/") + 1)}-${version}.tgz`;
}

function matchesIntegrity(data: Buffer, integrity: string): boolean {
  return integrity.split(/\s+/).some((entry) => {
    const [algorithm = "", digest = ""] = entry.split(/-(.*)/s);
    if (!["sha512", "sha384", "sha256", "sha1"].includes(algorithm)) return false;
    return createHash(algorithm).update(data).digest("base64") === digest;
  });
}

/** What the registry says of one version: its tarball's integrity. */
async function registryIntegrity(name: string, version: string): Promise<string> {
  const res = await fetch(`${npmRegistry}/${name}/${version}`, { signal: AbortSignal.timeout(30_000) });
  if (!res.ok) throw new Error(`npm registry: ${name}@${version}: HTTP ${res.status}`);
  const manifest = (await res.json()) as { dist?: { integrity?: string } };
  const integrity = manifest.dist?.integrity;
  if (!integrity) throw new Error(`npm registry: ${name}@${version} has no dist.integrity`);
  return integrity;
}

/**
 * Path of the tarball of name@version in the cache, downloaded if missing. `integrity` (the lockfile's) is checked;
 * without one, the registry's own is asked for.
 */
export async function npmTarball(name: string, version: string, integrity?: string): Promise<string> {
  const dir = join(cacheDir(), "npm", name.replace("/", "+"));
  const path = join(dir, tarballFileName(name, version));
  const expected = integrity ?? (await registryIntegrity(name, version));
  const cached = await readFile(path).catch(() => undefined);
  if (cached && matchesIntegrity(cached, expected)) return path;

  const url = `${npmRegistry}/${name}/-/${tarballFileName(name, version)}`;
  const res = await fetch(url, { signal: AbortSignal.timeout(300_000) });
  if (!res.ok) throw new Error(`npm registry: GET ${url}: HTTP ${res.status}`);
  const data = Buffer.from(await res.arrayBuffer());
  if (!matchesIntegrity(data, expected)) throw new Error(`npm registry: ${url} does not match its integrity ${expected}`);
  await mkdir(dir, { recursive: true });
  // Written aside and renamed: a download cut short never passes for the tarball.
  await writeFile(`${path}.partial`, data);
  await rename(`${path}.partial`, path);
  return path;
}
