import { copyFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { contextStream, type ContextStreamResult } from "./context-stream.js";
import type { BenchContext } from "./context.js";
import { HANDOFFS, latency, type LatencyResult } from "./latency.js";
import { machine, MiB, type Machine } from "./measure.js";
import { sideBySide, type SideBySideResult } from "./side-by-side.js";
import { strategies, type StrategiesResult } from "./strategies.js";
import { throughput, type ThroughputResult } from "./throughput.js";
import { warm, type WarmResult } from "./warm.js";

// The scenarios by letter (issue #6 item 4; t, side by side with Tekton's controller, issue #18), the targets they
// are held to, and the report files.

export const SCENARIOS = ["a", "b", "c", "d", "e", "t"] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface Target {
  scenario: Scenario;
  target: string;
  measured: string;
  met: boolean;
}

export interface Report {
  startedAt: string;
  finishedAt: string;
  smoke: boolean;
  machine: Machine;
  latency?: LatencyResult;
  throughput?: ThroughputResult;
  strategies?: StrategiesResult;
  warm?: WarmResult;
  context?: ContextStreamResult;
  sideBySide?: SideBySideResult;
  /** Scenarios that threw: the others still ran and are reported. */
  errors: { scenario: Scenario; message: string }[];
  targets: Target[];
}

/** Runs `scenarios` in order; `onProgress` gets the report so far after each one (a long run keeps what it has). */
export async function runBench(
  ctx: BenchContext,
  scenarios: readonly Scenario[],
  onProgress: (r: Report) => Promise<void> = async () => undefined,
): Promise<Report> {
  const startedAt = new Date().toISOString();
  const report: Report = { startedAt, finishedAt: startedAt, smoke: ctx.smoke, machine: machine(), errors: [], targets: [] };
  for (const s of scenarios) {
    ctx.progress(`scenario ${s}`);
    try {
      if (s === "a") report.latency = await latency(ctx);
      if (s === "b") report.throughput = await throughput(ctx);
      if (s === "c") report.strategies = await strategies(ctx);
      if (s === "d") report.warm = await warm(ctx);
      if (s === "e") report.context = await contextStream(ctx);
      if (s === "t") report.sideBySide = await sideBySide(ctx);
    } catch (err) {
      report.errors.push({ scenario: s, message: err instanceof Error ? err.message : String(err) });
      ctx.progress(`scenario ${s} failed: ${String(err)}`);
    }
    report.finishedAt = new Date().toISOString();
    report.targets = targets(report);
    await onProgress(report);
  }
  return report;
}

const mib = (bytes: number) => `${Math.round(bytes / MiB)} MiB`;
const s1 = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export function targets(r: Report): Target[] {
  const out: Target[] = [];
  if (r.latency) {
    for (const h of HANDOFFS) {
      const d = r.latency.handoffs[h];
      // The target is set for a stand-in that boots at once; another boot delay is reported, never met.
      const delay = r.latency.bootDelayMs;
      const target = `${h}: p99 < 200 ms${delay === 0 ? "" : ` (boot delay ${delay} ms, not the target's 0)`}`;
      out.push({ scenario: "a", target, measured: `p99 ${d.p99} ms (p50 ${d.p50} ms)`, met: delay === 0 && d.count > 0 && d.p99 < 200 });
    }
  }
  if (r.throughput) {
    const t = r.throughput;
    out.push({ scenario: "b", target: `${t.runs} runs under 60 s`, measured: s1(t.totalMs), met: t.totalMs < 60_000 });
    out.push({ scenario: "b", target: "peak controller RSS < 150 MB", measured: mib(t.peakRssBytes), met: t.peakRssBytes < 150e6 });
    out.push({ scenario: "b", target: "≤ 25 API requests per run", measured: String(t.apiRequests.perRun), met: t.apiRequests.perRun <= 25 });
    out.push({ scenario: "b", target: "zero double leases", measured: String(t.doubleLeases), met: t.doubleLeases === 0 });
  }
  for (const run of r.strategies?.runs ?? []) {
    out.push({
      scenario: "c",
      target: `${run.strategy}, ${run.platforms.length} platforms: within 1.1× the machine's limit`,
      measured: run.ratioToLimit === undefined ? `${run.reason} (${run.supported ? "failed" : "not supported by this controller"})` : `${run.ratioToLimit}×`,
      met: run.ratioToLimit !== undefined && run.ratioToLimit <= 1.1,
    });
  }
  if (r.warm) {
    const w = r.warm.warm.leaseToBuild;
    const note = r.warm.warmPoolsSupported ? "" : " (no warm pools in this controller: a cold start)";
    const met = r.warm.warmPoolsSupported && w.count > 0 && w.p50 < 2000;
    out.push({ scenario: "d", target: "warm lease → build start p50 < 2 s", measured: `${s1(w.p50)}${note}`, met });
  }
  if (r.context) {
    const c = r.context;
    out.push({
      scenario: "e",
      target: "context stream ≥ 200 MB/s (build request → tar fully sent)",
      measured: `${c.sendMBps ?? "?"} MB/s (${c.sendMiBps ?? "?"} MiB/s); to podman's first STEP ${c.toFirstStepMiBps ?? "?"} MiB/s`,
      met: (c.sendMBps ?? 0) >= 200,
    });
    out.push({ scenario: "e", target: "controller RSS growth < 50 MB", measured: mib(c.rssGrowthBytes), met: c.rssGrowthBytes < 50e6 });
  }
  if (r.sideBySide) {
    const t = r.sideBySide;
    out.push({
      scenario: "t",
      target: "vmbuild's CPU per run ≤ Tekton's controller's per PipelineRun",
      measured: `${t.cpuRatio}× (${t.vmbuild.cpuSecondsPerRun} s against ${t.tekton.cpuSecondsPerRun} s)`,
      met: t.cpuRatio <= 1,
    });
    out.push({ scenario: "t", target: "≤ 12 API requests per run", measured: String(t.vmbuild.requests.perRun), met: t.vmbuild.requests.perRun <= 12 });
    out.push({ scenario: "t", target: "every PipelineRun Succeeded", measured: `${t.succeeded}/${t.runs}`, met: t.succeeded === t.runs });
  }
  return out;
}

export function markdown(r: Report): string {
  const lines: string[] = [];
  const m = r.machine;
  lines.push(`# vmbuild bench ${r.startedAt}${r.smoke ? " (smoke sizes)" : ""}`, "");
  lines.push(`Machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB, load average ${m.loadAverage} at start, Node ${m.node}.`, "");
  lines.push("| | target | measured | met |", "|---|---|---|---|");
  for (const t of r.targets) lines.push(`| ${t.scenario} | ${t.target} | ${t.measured} | ${t.met ? "yes" : "**no**"} |`);
  for (const e of r.errors) lines.push("", `Scenario ${e.scenario} failed: ${e.message}`);
  if (r.latency) {
    const l = r.latency;
    lines.push("", `## (a) hand-off latency: ${l.runs} runs, ${l.inFlight} at a time, stand-in boot delay ${l.bootDelayMs} ms, ${l.measured} fully measured`, "");
    lines.push("| hand-off | p50 ms | p99 ms | max ms |", "|---|---|---|---|");
    for (const h of HANDOFFS) lines.push(`| ${h} | ${l.handoffs[h].p50} | ${l.handoffs[h].p99} | ${l.handoffs[h].max} |`);
    lines.push(`| (VM stop requested → VMI gone: stand-in scratch) | ${l.scratch.p50} | ${l.scratch.p99} | ${l.scratch.max} |`);
    lines.push(`| (created → Succeeded) | ${l.endToEnd.p50} | ${l.endToEnd.p99} | ${l.endToEnd.max} |`);
    lines.push("", `Succeeded ${l.succeeded}/${l.runs}; ${l.apiRequestsPerRun.toFixed(1)} API requests per run; ${l.doubleLeases} double leases.`);
  }
  if (r.throughput) {
    const t = r.throughput;
    lines.push("", `## (b) throughput: ${t.runs} runs over ${t.vms} VMs, ${t.replicas ?? 1} controller replica(s)`, "");
    const gc = Object.entries(t.controllerGcSeconds).map(([kind, secs]) => `${kind} ${secs} s`).join(", ");
    lines.push(`${t.succeeded} succeeded, ${t.failed} failed in ${s1(t.totalMs)} (${t.runsPerMinute} runs/min); peak RSS ${mib(t.peakRssBytes)}; controller CPU ${t.controllerCpuSeconds.toFixed(1)} s (GC: ${gc});`);
    lines.push(`${t.apiRequests.total} API requests (${t.apiRequests.perRun} per run); ${t.doubleLeases} double leases; ${t.vmsStarted} VMs started, ${t.vmsLeftUnscratched} left unscratched.`, "");
    lines.push("| request | count |", "|---|---|");
    for (const [k, v] of Object.entries(t.apiRequests.byKind)) lines.push(`| ${k} | ${v} |`);
    lines.push("", "| condition changes by reason | per run |", "|---|---|");
    for (const [k, v] of Object.entries(t.conditionChangesPerRun)) lines.push(`| ${k} | ${v} |`);
  }
  if (r.strategies) {
    const c = r.strategies;
    lines.push("", `## (c) fanout vs single: RUN loop of ${c.loopIterations} iterations, ${c.cores} cores`, "");
    lines.push("| platform alone | wall | build |", "|---|---|---|");
    for (const [p, a] of Object.entries(c.alone)) lines.push(`| ${p} | ${s1(a.wallMs)} | ${a.buildMs === undefined ? "?" : s1(a.buildMs)} |`);
    lines.push("", `Per-run overhead (wall − build, median alone): ${s1(c.overheadMs)}.`, "");
    lines.push("| strategy | platforms | result | wall | build | limit (max(slowest, sum/cores)) | wall / (limit + overhead) |", "|---|---|---|---|---|---|---|");
    for (const run of c.runs) {
      const limit = c.limits[run.platforms.join(",")];
      lines.push(
        `| ${run.strategy} | ${run.platforms.length} | ${run.supported ? run.reason : "not supported"} | ${s1(run.wallMs)} | ${run.buildMs === undefined ? "–" : s1(run.buildMs)} | ${limit ? `${s1(limit.limitMs)} (${s1(limit.slowestMs)}, ${s1(limit.sumPerCoreMs)})` : "?"} | ${run.ratioToLimit ?? "–"} |`,
      );
    }
  }
  if (r.warm) {
    const w = r.warm;
    lines.push("", `## (d) warm vs cold: boot delay ${s1(w.bootDelayMs)}, ${w.runsPerMode} runs each${w.warmPoolsSupported ? "" : " (warm pools not in this controller)"}`, "");
    lines.push("| pool | succeeded | lease → podman p50 | lease → build p50 | lease → build max |", "|---|---|---|---|---|");
    for (const [k, mode] of [["cold", w.cold], ["warm", w.warm]] as const) {
      lines.push(`| ${k} | ${mode.succeeded} | ${s1(mode.leaseToPodman.p50)} | ${s1(mode.leaseToBuild.p50)} | ${s1(mode.leaseToBuild.max)} |`);
    }
  }
  if (r.context) {
    const c = r.context;
    lines.push("", `## (e) build context of ${mib(c.contextBytes)}`, "");
    lines.push(`${c.reason}; lease → build request (the git fetch) ${c.fetchMs === undefined ? "?" : s1(c.fetchMs)};`);
    lines.push(`build request → tar fully sent (controller's build log) ${c.sendMs === undefined ? "?" : s1(c.sendMs)} = ${c.sendMiBps ?? "?"} MiB/s = ${c.sendMBps ?? "?"} MB/s;`);
    lines.push(`build request → podman's first STEP (sent, written and unpacked by podman) ${c.toFirstStepMs === undefined ? "?" : s1(c.toFirstStepMs)} = ${c.toFirstStepMiBps ?? "?"} MiB/s;`);
    lines.push(`controller peak RSS grew ${mib(c.rssGrowthBytes)} to ${mib(c.peakRssBytes)}.`);
  }
  if (r.sideBySide) {
    const t = r.sideBySide;
    lines.push("", `## (t) side by side with Tekton's controller: ${t.runs} PipelineRuns over ${t.vms} VMs`, "");
    lines.push(`${t.succeeded}/${t.runs} Succeeded in ${s1(t.totalMs)}.`, "");
    lines.push("| per run | Tekton's controller (per PipelineRun) | vmbuild (per CustomRun) | vmbuild / Tekton |", "|---|---|---|---|");
    lines.push(`| CPU seconds (with child processes) | ${t.tekton.cpuSecondsPerRun} | ${t.vmbuild.cpuSecondsPerRun} (children ${round3(t.vmbuild.childCpuSeconds / t.runs)}) | ${t.cpuRatio}× |`);
    lines.push(`| API requests | ${t.tekton.requests.perRun} | ${t.vmbuild.requests.perRun} | ${t.requestRatio}× |`);
    lines.push(`| peak RSS | ${mib(t.tekton.peakRssBytes)} | ${mib(t.vmbuild.peakRssBytes)} | ${(t.vmbuild.peakRssBytes / t.tekton.peakRssBytes).toFixed(1)}× |`);
    for (const [who, c] of [["Tekton's controller", t.tekton], ["vmbuild", t.vmbuild]] as const) {
      lines.push("", `| ${who}: request | per run |`, "|---|---|");
      for (const [k, v] of Object.entries(c.requests.byKind)) lines.push(`| ${k} | ${round3(v / t.runs)} |`);
    }
  }
  return `${lines.join("\n")}\n`;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** Writes `<dir>/<timestamp>.json` and `.md` and copies them to `latest.*`; resolves with the two paths. */
export async function writeReport(r: Report, dir: string): Promise<{ json: string; md: string }> {
  await mkdir(dir, { recursive: true });
  const base = join(dir, r.startedAt.replace(/[:.]/g, "-"));
  const paths = { json: `${base}.json`, md: `${base}.md` };
  await writeFile(paths.json, `${JSON.stringify(r, null, 2)}\n`);
  await writeFile(paths.md, markdown(r));
  await copyFile(paths.json, join(dir, "latest.json"));
  await copyFile(paths.md, join(dir, "latest.md"));
  return paths;
}
