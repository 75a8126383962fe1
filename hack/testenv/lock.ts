// One `up` or `down` at a time per checkout: a test run's globalSetup and a developer's shell must not interleave
// (one's cleanup would stop the other's processes). The lock lives in the cache, because `down` deletes .testenv/.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { progress } from "./log.js";
import { cacheDir, repoRoot } from "./paths.js";
import { isRunning } from "./processes.js";

function lockPath(): string {
  const id = createHash("sha256").update(repoRoot).digest("hex").slice(0, 16);
  return join(cacheDir(), "locks", `${id}.lock`);
}

function holder(path: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(path, "utf8"), 10);
    return Number.isInteger(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

function tryAcquire(path: string): boolean {
  try {
    writeFileSync(path, `${process.pid}\n`, { flag: "wx" });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    const pid = holder(path);
    // A holder that died (killed test run, Ctrl-C during a build) leaves its file behind: take it over.
    if (pid === undefined || pid === process.pid || !isRunning(pid)) {
      // Re-read just before removing: another waiter may have taken the stale lock over a moment ago.
      if (holder(path) !== pid) return false;
      rmSync(path, { force: true });
      return tryAcquire(path);
    }
    return false;
  }
}

/** Runs `fn` holding the lock; waits (up to `timeoutMs`, a cold build takes many minutes) for another holder. */
export async function withLock<T>(what: string, fn: () => Promise<T>, timeoutMs = 30 * 60_000): Promise<T> {
  const path = lockPath();
  mkdirSync(join(path, ".."), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  let announced = false;
  while (!tryAcquire(path)) {
    if (!announced) {
      progress(`waiting for another testenv up/down (pid ${holder(path) ?? "?"}) to finish before ${what}`);
      announced = true;
    }
    if (Date.now() > deadline) {
      throw new Error(`another testenv up/down (pid ${holder(path) ?? "?"}) held ${path} for ${timeoutMs / 60_000} min`);
    }
    await sleep(500);
  }
  try {
    return await fn();
  } finally {
    if (holder(path) === process.pid) rmSync(path, { force: true });
  }
}
