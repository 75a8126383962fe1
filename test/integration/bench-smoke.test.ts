import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HANDOFFS } from "../../bench/latency.js";
import type { Distribution } from "../../bench/measure.js";
import { runBench, SCENARIOS, writeReport, type Report } from "../../bench/report.js";
import { throughput } from "../../bench/throughput.js";
import { openHarness, type Harness } from "../support/harness.js";

// `npm run bench -- --smoke` for correctness only: every scenario at tiny sizes, then the report's shape and
// sanity (counts add up, no double lease, nothing left unscratched). Timings are not asserted: CI machines vary.

describe("bench smoke", () => {
  let h: Harness;
  let out: string;
  let report: Report;

  beforeAll(async () => {
    h = await openHarness("bench-smoke");
    out = await mkdtemp(join(tmpdir(), "vmbuild-bench-"));
    report = await runBench({ h, smoke: true, compiled: false, progress: () => undefined }, SCENARIOS);
  }, 900_000);

  afterAll(async () => {
    await h?.close();
    if (out) await rm(out, { recursive: true, force: true });
  });

  const ordered = (d: Distribution) => {
    expect(d.p50).toBeGreaterThanOrEqual(0);
    expect(d.p50).toBeLessThanOrEqual(d.p99);
    expect(d.p99).toBeLessThanOrEqual(d.max);
  };

  it("runs every scenario without an error", () => {
    expect(report.errors).toEqual([]);
  });

  it("(a) measures every hand-off of every run, none leased twice", () => {
    const a = report.latency;
    expect(a).toBeDefined();
    if (!a) return;
    expect(a.succeeded).toBe(a.runs);
    expect(a.measured).toBe(a.runs);
    for (const h of HANDOFFS) {
      expect(a.handoffs[h].count).toBe(a.runs);
      ordered(a.handoffs[h]);
    }
    ordered(a.endToEnd);
    expect(a.apiRequestsPerRun).toBeGreaterThan(0);
    expect(a.doubleLeases).toBe(0);
  });

  it("(b) all runs succeed over the small pool, every VM scratched, requests counted by kind", () => {
    const b = report.throughput;
    expect(b).toBeDefined();
    if (!b) return;
    expect(b.succeeded + b.failed).toBe(b.runs);
    expect(b.failed).toBe(0);
    expect(b.doubleLeases).toBe(0);
    expect(b.vmsStarted).toBe(b.runs);
    expect(b.vmsLeftUnscratched).toBe(0);
    expect(Object.values(b.apiRequests.byKind).reduce((x, y) => x + y, 0)).toBe(b.apiRequests.total);
    expect(b.apiRequests.perRun).toBeCloseTo(b.apiRequests.total / b.runs, 1);
    expect(b.peakRssBytes).toBeGreaterThan(0);
    expect(b.controllerCpuSeconds).toBeGreaterThan(0);
    expect(b.controllerGcSeconds.minor).toBeGreaterThan(0);
  });

  it("(b) with 2 replicas: all runs succeed, both replicas measured", { timeout: 300_000 }, async () => {
    const b = await throughput({ h, smoke: true, compiled: false, replicas: 2, progress: () => undefined });
    expect(b.replicas).toBe(2);
    expect(b.failed).toBe(0);
    expect(b.doubleLeases).toBe(0);
    expect(b.vmsLeftUnscratched).toBe(0);
    expect(b.controllerGcSeconds.minor).toBeGreaterThan(0);
  });

  it("(c) times each platform alone and each strategy against the machine's limit", () => {
    const c = report.strategies;
    expect(c).toBeDefined();
    if (!c) return;
    expect(Object.keys(c.alone).sort()).toEqual(["linux/amd64", "linux/arm64"]);
    for (const a of Object.values(c.alone)) expect(a.buildMs).toBeLessThanOrEqual(a.wallMs);
    const limit = c.limits["linux/amd64,linux/arm64"];
    expect(limit?.limitMs).toBe(Math.max(limit?.slowestMs ?? NaN, limit?.sumPerCoreMs ?? NaN));
    expect(c.runs.map((r) => r.strategy)).toEqual(["single", "fanout"]);
    expect(c.runs[0]).toMatchObject({ supported: true, reason: "Succeeded" });
    expect(c.runs[1]).toMatchObject({ supported: true, reason: "Succeeded" });
  });

  it("(d) times lease → build start from a cold and from a warm pool", () => {
    const d = report.warm;
    expect(d).toBeDefined();
    if (!d) return;
    // The warm pool's VM was seen booted before each warm run asked for it.
    expect(d.warmPoolsSupported).toBe(true);
    for (const mode of [d.cold, d.warm]) {
      expect(mode.succeeded).toBe(d.runsPerMode);
      expect(mode.leaseToBuild.count).toBe(d.runsPerMode);
      expect(mode.leaseToPodman.p50).toBeLessThanOrEqual(mode.leaseToBuild.p50);
    }
    // A cold start waits at least the simulated boot.
    expect(d.cold.leaseToPodman.p50).toBeGreaterThanOrEqual(d.bootDelayMs);
  });

  it("(e) streams the whole context and reports its rate and the controller's memory", () => {
    const e = report.context;
    expect(e).toBeDefined();
    if (!e) return;
    expect(e.reason).toBe("Succeeded");
    expect(e.sendMs).toBeGreaterThan(0);
    expect(e.sendMiBps).toBeGreaterThan(0);
    expect(e.sendMBps).toBeGreaterThan(0);
    expect(e.toFirstStepMs).toBeGreaterThan(0);
    expect(e.toFirstStepMiBps).toBeGreaterThan(0);
    expect(e.peakRssBytes).toBeGreaterThan(0);
  });

  it("(t) runs PipelineRuns through Tekton's controller and vmbuild side by side, each controller measured by its own identity", () => {
    const t = report.sideBySide;
    expect(t).toBeDefined();
    if (!t) return;
    expect(t.succeeded).toBe(t.runs);
    for (const c of [t.tekton, t.vmbuild]) {
      expect(c.cpuSeconds).toBeGreaterThan(0);
      expect(c.peakRssBytes).toBeGreaterThan(0);
      expect(Object.values(c.requests.byKind).reduce((x, y) => x + y, 0)).toBe(c.requests.total);
    }
    // Tekton's controller creates each CustomRun; vmbuild writes its status. Neither is counted as the other.
    expect(t.tekton.requests.byKind["create customruns"]).toBe(t.runs);
    expect(t.vmbuild.requests.byKind["create customruns"]).toBeUndefined();
    expect(t.vmbuild.requests.byKind["update customruns/status"]).toBeGreaterThanOrEqual(t.runs);
    expect(t.vmbuild.childCpuSeconds).toBeGreaterThan(0);
    expect(t.cpuRatio).toBeCloseTo(t.vmbuild.cpuSecondsPerRun / t.tekton.cpuSecondsPerRun, 1);
  });

  it("writes the JSON and markdown reports, the latest copied beside them, with a target row per check", async () => {
    expect(new Set(report.targets.map((t) => t.scenario))).toEqual(new Set(SCENARIOS));
    const paths = await writeReport(report, out);
    expect(JSON.parse(await readFile(paths.json, "utf8"))).toEqual(report);
    expect(await readFile(join(out, "latest.json"), "utf8")).toBe(await readFile(paths.json, "utf8"));
    const md = await readFile(join(out, "latest.md"), "utf8");
    expect(md).toContain("| | target | measured | met |");
    for (const t of report.targets) expect(md).toContain(t.target);
  });
});
