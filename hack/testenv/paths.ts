// Where the testenv keeps things: runtime state in the repo (.testenv/, git-ignored), binaries and downloads in the
// user's cache so that `down` can wipe the state without throwing away minutes of build time.
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot: string = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const stateDir: string = join(repoRoot, ".testenv");
export const logsDir: string = join(stateDir, "logs");
export const pidsDir: string = join(stateDir, "pids");
export const envFile: string = join(stateDir, "env.json");

export function cacheDir(): string {
  const base = process.env["XDG_CACHE_HOME"] || join(homedir(), ".cache");
  return join(base, "vmbuild", "testenv");
}

/** Path relative to the repo root, for messages that point the user at a log. */
export function rel(path: string): string {
  return path.startsWith(repoRoot + "/") ? path.slice(repoRoot.length + 1) : path;
}
