import { readFileSync } from "node:fs";

// What a process has used so far, read from /proc: for tests and benchmarks that bound the controller.

/** Resident set of a process (VmRSS) and its peak since it started (VmHWM), in bytes. */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kib("VmRSS"), peak: kib("VmHWM") };
}

/** CPU time (user + system) a process has used so far, in seconds, from /proc/PID/stat. */
export function cpuSecondsOf(pid: number): number {
  return cpuTimesOf(pid).own;
}

/**
 * CPU time (user + system) in seconds, from one read of /proc/PID/stat: the process's own, and that of its child
 * processes it has waited for.
 */
export function cpuTimesOf(pid: number): { own: number; children: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // After the command name, which may hold spaces and parentheses; utime, stime, cutime and cstime are fields 14-17.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // In clock ticks: USER_HZ, 100 on every Linux architecture Node runs on.
  return {
    own: (Number(fields[11]) + Number(fields[12])) / 100,
    children: (Number(fields[13]) + Number(fields[14])) / 100,
  };
}
