// Detached long-running processes with PID files, and stopping them again by PID (never by name).
import { spawn } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

export interface StartSpec {
  cmd: string;
  args: readonly string[];
  cwd: string;
  logFile: string;
  pidFile: string;
  env?: NodeJS.ProcessEnv;
}

/** Starts `cmd` in its own session (so it outlives us and its children share its process group); returns its PID. */
export function startDetached(spec: StartSpec): number {
  const out = openSync(spec.logFile, "a");
  try {
    const child = spawn(spec.cmd, spec.args, {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      detached: true,
      stdio: ["ignore", out, out],
    });
    if (child.pid === undefined) throw new Error(`cannot start ${spec.cmd}: no PID (is it installed?)`);
    child.unref();
    writeFileSync(spec.pidFile, `${child.pid}\n`);
    return child.pid;
  } finally {
    closeSync(out);
  }
}

export function readPid(pidFile: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(pidFile, "utf8").trim(), 10);
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

interface ProcStat {
  state: string;
  pgrp: number;
}

function procStat(pid: number): ProcStat | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    const fields = raw.slice(raw.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0] ?? "?", pgrp: Number(fields[2]) };
  } catch {
    return undefined;
  }
}

/** True if the process exists and is not a zombie (a zombie is dead, just not yet reaped). */
export function isRunning(pid: number): boolean {
  const stat = procStat(pid);
  return stat !== undefined && stat.state !== "Z" && stat.state !== "X";
}

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
  } catch {
    return "";
  }
}

/** Live processes whose process group is `pgid`. */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const stat = procStat(pid);
    if (stat && stat.pgrp === pgid && stat.state !== "Z" && stat.state !== "X") members.push(pid);
  }
  return members;
}

function signal(pid: number, sig: NodeJS.Signals, wholeGroup: boolean): void {
  try {
    process.kill(wholeGroup ? -pid : pid, sig);
  } catch {
    // already gone
  }
}

/**
 * SIGTERM, then SIGKILL after `graceMs`. If the process leads its own group (we started it detached), the whole
 * group is signalled so that children it did not detach go too.
 */
export async function stopProcess(pid: number, graceMs = 5000): Promise<void> {
  const leader = procStat(pid)?.pgrp === pid;
  const alive = (): boolean => (leader ? groupMembers(pid).length > 0 : isRunning(pid));
  if (!alive()) return;
  signal(pid, "SIGTERM", leader);
  const deadline = Date.now() + graceMs;
  while (alive() && Date.now() < deadline) await sleep(100);
  if (!alive()) return;
  signal(pid, "SIGKILL", leader);
  const killDeadline = Date.now() + 5000;
  while (alive() && Date.now() < killDeadline) await sleep(100);
  if (alive()) throw new Error(`process ${pid} (${cmdline(pid)}) survived SIGKILL`);
}

/** Wall-clock start time of a process, from /proc (clock ticks since boot; Linux uses 100 ticks per second). */
function startTimeMs(pid: number): number | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/stat`, "utf8");
    const ticks = Number(raw.slice(raw.lastIndexOf(")") + 2).split(" ")[19]);
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync("/proc/stat", "utf8"))?.[1]);
    return Number.isFinite(ticks) && Number.isFinite(btime) ? btime * 1000 + ticks * 10 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Stops the process a PID file names, unless the PID has been reused since: a process that started after the file
 * was written cannot be the one it records (guards against stale files, e.g. after a reboot).
 */
export async function stopFromPidFile(pidFile: string, graceMs = 5000): Promise<number | undefined> {
  const pid = readPid(pidFile);
  if (pid === undefined || !isRunning(pid)) return undefined;
  const started = startTimeMs(pid);
  const written = statSync(pidFile).mtimeMs;
  if (started !== undefined && started > written + 2000) return undefined;
  await stopProcess(pid, graceMs);
  return pid;
}
