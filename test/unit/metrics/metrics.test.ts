import { describe, expect, it } from "vitest";
import type { KubernetesObject, ObjectCache } from "@kubernetes/client-node";
import { createMetrics } from "../../../src/metrics/metrics.js";
import type { RunState } from "../../../src/tekton/run-state.js";

const state = (phase: RunState["phase"], extra: Partial<RunState> = {}): RunState => ({
  phase,
  attempt: 0,
  slots: [{ platforms: ["linux/amd64"], pool: "pools/builders" }],
  queuedAt: "2026-01-01T00:00:00.000Z",
  phaseSince: "2026-01-01T00:00:00.000Z",
  tried: [],
  ...extra,
});

const runs = (states: [string, RunState][]): ObjectCache<KubernetesObject> => {
  const items = states.map(([ns, st]) => ({ metadata: { namespace: ns, name: "r" }, status: { extraFields: st } }));
  return { get: () => undefined, list: () => items };
};

describe("metrics", () => {
  it("observes queue wait, VM boot, build and push durations and outcomes per pool", async () => {
    const m = createMetrics(() => runs([]));
    const now = new Date("2026-01-01T00:01:00.000Z");
    const leased = state("Starting", { leasedAt: "2026-01-01T00:00:30.000Z" });
    m.record({ before: state("Queued"), after: leased, final: undefined, job: undefined, platforms: "linux/amd64", now });
    m.record({ before: leased, after: state("Building"), final: undefined, job: undefined, platforms: "linux/amd64", now });
    m.record({
      before: state("Building"),
      after: state("Scratching"),
      final: undefined,
      job: { state: "succeeded", results: [], summary: "", durations: { buildMs: 42_000, pushMs: 3_000 } },
      platforms: "linux/amd64",
      now,
    });
    m.record({
      before: state("Scratching"),
      after: state("Done"),
      final: { type: "Succeeded", status: "False", reason: "BuildFailed" },
      job: undefined,
      platforms: "linux/amd64",
      now,
    });
    const text = await m.registry.metrics();
    expect(text).toContain('vmbuild_queue_wait_seconds_sum{pool="pools/builders"} 30');
    expect(text).toContain('vmbuild_vm_boot_seconds_sum{pool="pools/builders"} 30');
    expect(text).toContain('vmbuild_build_seconds_sum{pool="pools/builders",platforms="linux/amd64"} 42');
    expect(text).toContain('vmbuild_push_seconds_sum{pool="pools/builders",platforms="linux/amd64"} 3');
    expect(text).toContain('vmbuild_runs_failed_total{pool="pools/builders",reason="BuildFailed"} 1');
  });

  it("counts a run adopted after its replica was lost once, when the adopter writes the re-run", async () => {
    const m = createMetrics(() => runs([]));
    const now = new Date("2026-01-01T00:01:00.000Z");
    const adopted = state("Scratching", { owner: "b", recoveries: 1 });
    m.record({ before: state("Building", { owner: "a" }), after: adopted, final: undefined, job: undefined, platforms: "", now });
    m.record({ before: adopted, after: state("Queued", { recoveries: 1 }), final: undefined, job: undefined, platforms: "", now });
    expect(await m.registry.metrics()).toContain('vmbuild_run_recoveries_total{pool="pools/builders"} 1');
  });

  it("counts running and queued runs per namespace from the cache at scrape time", async () => {
    const m = createMetrics(() => runs([["a", state("Building")], ["a", state("Queued")], ["b", state("Queued")]]));
    const text = await m.registry.metrics();
    expect(text).toContain('vmbuild_runs_running{namespace="a"} 1');
    expect(text).toContain('vmbuild_runs_queued{namespace="a"} 1');
    expect(text).toContain('vmbuild_runs_queued{namespace="b"} 1');
  });

  it("counts scratch failures and leaked VMs", async () => {
    const m = createMetrics(() => runs([]));
    m.scratchFailed("pools/builders");
    m.leakedVMs("pools/builders", 2);
    const text = await m.registry.metrics();
    expect(text).toContain('vmbuild_scratch_failures_total{pool="pools/builders"} 1');
    expect(text).toContain('vmbuild_leaked_vms_total{pool="pools/builders"} 2');
  });
});

describe("process metrics", () => {
  it("carry the vmbuild_ prefix once, as process_* and nodejs_* under it", async () => {
    const text = await createMetrics(() => runs([])).registry.metrics();
    const names = [...text.matchAll(/^# TYPE (\S+)/gm)].map(([, name]) => name ?? "");
    expect(names).toContain("vmbuild_process_cpu_seconds_total");
    expect(names).toContain("vmbuild_nodejs_heap_size_used_bytes");
    expect(names.filter((n) => !n.startsWith("vmbuild_") || n.includes("process_process"))).toEqual([]);
  });
});
