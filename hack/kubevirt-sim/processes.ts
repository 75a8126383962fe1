// Killing a podman service for real: the service, its conmon/build children and their emulated (qemu) RUN steps.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
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

function descendants(root: number): number[] {
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

/** "127.0.0.10", 8888 as /proc/net/tcp writes a local address on a little-endian host: "0A00007F:22B8". */
function procNetAddress(ip: string, port: number): string {
  const hexIp = ip
    .split(".")
    .map((octet) => Number(octet).toString(16).padStart(2, "0"))
    .reverse()
    .join("");
  return `${hexIp}:${port.toString(16).padStart(4, "0")}`.toUpperCase();
}

/**
 * True when `pid` itself holds the listening socket on ip:port. Another sim on this machine may hand out the same
 * address: an answer on it proves nothing until the socket is known to be ours.
 */
export function listensOn(pid: number, ip: string, port: number): boolean {
  const want = procNetAddress(ip, port);
  let inode: string | undefined;
  try {
    for (const line of readFileSync(`/proc/${pid}/net/tcp`, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      // f[1] local address, f[3] state (0A = LISTEN), f[9] inode.
      if (f[1] === want && f[3] === "0A") inode = f[9];
    }
    if (inode === undefined) return false;
    const target = `socket:[${inode}]`;
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === target;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}
