// A VMI's "disk": a directory holding its podman storage and config. Removing it is what makes the next boot fresh.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** Mount points at or below `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const mounts: string[] = [];
  for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
    // Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
    const point = line.split(" ")[4];
    if (point === undefined) continue;
    const decoded = point.replace(/\\([0-7]{3})/g, (_m: string, oct: string) => String.fromCharCode(parseInt(oct, 8)));
    if (decoded === dir || decoded.startsWith(`${dir}/`)) mounts.push(decoded);
  }
  return mounts.sort((a, b) => b.length - a.length);
}

/**
 * Removes a VMI's storage. podman runs in its own mount namespace, so its overlay mounts die with it; unmounting
 * anything still visible here is a safety net (e.g. a service started by hand without that namespace).
 */
export async function removeStorage(dir: string): Promise<void> {
  for (const point of mountsUnder(dir)) {
    try {
      await execFileAsync("umount", ["-l", point]);
    } catch (err) {
      throw new Error(`unmounting ${point} before removing ${dir}: ${String(err)}`);
    }
  }
  try {
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch (err) {
    throw new Error(`removing storage ${dir}: ${String(err)}`);
  }
}
