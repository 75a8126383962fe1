// Which files `up` applies, in order: the project's namespace and RBAC, its CRDs, then the stand-in CRDs.
// Kept free of client-node so that a repeated `up` can check for edits without paying for its import.
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { repoRoot } from "./paths.js";

/** Every .yaml/.yml file of a directory, sorted; none if the directory does not exist. */
export async function yamlFilesIn(dir: string): Promise<string[]> {
  try {
    const names = await readdir(dir);
    return names.filter((n) => /\.ya?ml$/.test(n)).sort().map((n) => join(dir, n));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

export async function manifestFiles(): Promise<string[]> {
  return [
    join(repoRoot, "deploy/namespace.yaml"),
    join(repoRoot, "deploy/rbac.yaml"),
    join(repoRoot, "deploy/rbac-users.yaml"),
    ...(await yamlFilesIn(join(repoRoot, "deploy/crds"))),
    ...(await yamlFilesIn(join(repoRoot, "hack/testenv/crds"))),
  ];
}

/** True if a manifest was added or edited after `since` (ISO time of the last apply). */
export async function manifestsChangedSince(since: string): Promise<boolean> {
  const time = Date.parse(since);
  for (const file of await manifestFiles()) {
    if ((await stat(file)).mtimeMs > time) return true;
  }
  return false;
}
