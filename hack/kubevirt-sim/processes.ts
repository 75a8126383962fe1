// Killing a podman service for real: the service, its conmon/build children and their emulated (qemu) RUN steps.
import { readdirSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

interface ProcStat {
  pid: number;
  ppid: number;
  state: string;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { pid, state: rest[0] ?? "?", ppid: Number(rest[1]) };
}

/** A zombie has exited; its parent just has not reaped it yet. */
export function isAlive(pid: number): boolean {
  const stat = readStat(pid);
  return stat !== undefined && stat.state !== "Z" && stat.state !== "X";
}

export function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
  } catch {
    return undefined;
  }
}

/** Every process under `root`, read from /proc (none of them need be our children). */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat === undefined) continue;
    const siblings = children.get(stat.ppid) ?? [];
    siblings.push(stat.pid);
    children.set(stat.ppid, siblings);
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift() as number;
    for (const child of children.get(pid) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw new Error(`kill ${sig} ${pid}: ${String(err)}`);
  }
}

/**
 * SIGKILLs `pid`, its process group (it is a group leader: we spawn it detached) and every descendant found before
 * the kill (builds may start their own sessions), then waits until none of them is alive.
 */
export async function killTree(pid: number, timeoutMs = 10_000): Promise<void> {
  const tree = [pid, ...descendants(pid)];
  signal(-pid, "SIGKILL");
  for (const p of tree) signal(p, "SIGKILL");
  const deadline = Date.now() + timeoutMs;
  // Not all of them are our children, so there is no exit event to wait for: check /proc until they are gone.
  while (tree.some(isAlive)) {
    if (Date.now() > deadline) {
      throw new Error(`processes ${tree.filter(isAlive).join(", ")} still alive ${timeoutMs} ms after SIGKILL`);
    }
    await sleep(10);
  }
}
