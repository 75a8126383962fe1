import { existsSync, readFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, totalmem } from "node:os";
import { controllerAuditLog } from "../hack/testenv/apiserver.js";
import { controllerUser } from "../hack/testenv/credentials.js";
import { registryLog } from "../hack/testenv/registry.js";

// Readings taken from outside the controller: its process's memory, the apiserver's audit of its requests, the
// registry's log of its requests, and the machine itself.

export interface Distribution {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles of `values` (ms); zeros for an empty list. */
export function distribution(values: readonly number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
  return { count: sorted.length, p50: rank(50), p99: rank(99), max: sorted.at(-1) ?? 0 };
}

/** Seconds the controller's V8 spent in garbage collection so far, by kind (minor, major, ...), from its /metrics. */
export async function gcSecondsOf(metricsURL: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${metricsURL}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^vmbuild_nodejs_gc_duration_seconds_sum\{kind="(\w+)"\} (\S+)$/gm)) {
    out[m[1] as string] = Math.round(Number(m[2]) * 100) / 100;
  }
  return out;
}

export interface ApiRequests {
  total: number;
  /** "verb resource[/subresource]", with the response code unless 2xx → count. */
  byKind: Record<string, number>;
}

/**
 * The requests of `user` (by default vmbuild's controller) the apiserver received in [from, to] (ms since the
 * epoch), from its audit log.
 */
export function controllerRequests(from: number, to: number, user = controllerUser): ApiRequests {
  if (!existsSync(controllerAuditLog)) throw new Error(`no audit log at ${controllerAuditLog}: restart the testenv (npm run testenv -- down; up)`);
  const byKind: Record<string, number> = {};
  let total = 0;
  for (const line of readFileSync(controllerAuditLog, "utf8").split("\n")) {
    if (line === "") continue;
    const event = JSON.parse(line) as {
      verb: string;
      user?: { username?: string };
      requestReceivedTimestamp: string;
      objectRef?: { resource?: string; subresource?: string };
      responseStatus?: { code?: number };
    };
    const at = Date.parse(event.requestReceivedTimestamp);
    if (at < from || at > to || event.user?.username !== user) continue;
    const resource = [event.objectRef?.resource, event.objectRef?.subresource].filter(Boolean).join("/");
    const code = event.responseStatus?.code ?? 0;
    const kind = `${event.verb} ${resource}${code >= 200 && code < 300 ? "" : ` ${code}`}`;
    byKind[kind] = (byKind[kind] ?? 0) + 1;
    total += 1;
  }
  return { total, byKind: Object.fromEntries(Object.entries(byKind).sort(([, a], [, b]) => b - a)) };
}

/**
 * When the registry completed the last request for `repository`'s manifests from a client other than podman:
 * the controller's digest check, the last step of a build job. Times in ms since the epoch, by repository.
 */
export function digestChecks(repositories: ReadonlySet<string>): Map<string, number> {
  const found = new Map<string, number>();
  if (!existsSync(registryLog)) return found;
  for (const line of readFileSync(registryLog, "utf8").split("\n")) {
    if (!line.includes('msg="response completed"')) continue;
    const time = /^time="([^"]+)"/.exec(line)?.[1];
    const method = /http\.request\.method=(\S+)/.exec(line)?.[1];
    const repository = /http\.request\.uri="?\/v2\/(\S+?)\/manifests\//.exec(line)?.[1];
    const agent = /http\.request\.useragent=("[^"]*"|\S*)/.exec(line)?.[1] ?? "";
    if (!time || !repository || !repositories.has(repository) || !(method === "GET" || method === "HEAD")) continue;
    // podman and skopeo identify as containers/…; the controller's undici client sends no user agent.
    if (agent.includes("containers/")) continue;
    // Go prints nanoseconds; Date.parse takes milliseconds.
    found.set(repository, Date.parse(time.replace(/(\.\d{3})\d*/, "$1")));
  }
  return found;
}

export interface Machine {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  /** 1-minute load average when the bench started: other testenvs on a shared machine show up here. */
  loadAverage: number;
  node: string;
}

export function machine(): Machine {
  return {
    cores: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    loadAverage: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    node: process.version,
  };
}

export const MiB = 1024 ** 2;

/**
 * When the controller logged `message`, by run key (`NAMESPACE/NAME`), the first time per run: pino's `time`, this
 * machine's clock, from the controller's output file.
 */
export function controllerLogTimes(controllerOutput: string, message: string): Map<string, number> {
  const times = new Map<string, number>();
  for (const line of readFileSync(controllerOutput, "utf8").split("\n")) {
    if (!line.includes(`"msg":"${message}"`)) continue;
    const entry = JSON.parse(line) as { run?: string; time?: number };
    if (entry.run && entry.time && !times.has(entry.run)) times.set(entry.run, entry.time);
  }
  return times;
}
