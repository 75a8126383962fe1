import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { KubernetesObject, ObjectCache } from "@kubernetes/client-node";
import { readRunState, statePools, type RunState } from "../tekton/run-state.js";
import type { Condition } from "../tekton/customrun.js";
import type { JobView } from "../jobs/jobs.js";

// Prometheus metrics per pool and platform, fed by the reconciler's transitions (each replica counts the runs it
// executed); the gauges are read off the run cache at scrape time, so they can never drift from what the API
// says, and every replica reports the same: aggregate them with max, not sum.

// Seconds: a VM boot is tens of seconds, a build minutes to an hour.
const BUCKETS = [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

export interface Metrics {
  registry: Registry;
  record(transition: Transition): void;
  scratchFailed(pool: string): void;
  leakedVMs(pool: string, count: number): void;
}

export interface Transition {
  before: RunState | undefined;
  after: RunState | undefined;
  /** The condition written, when the run finished. */
  final: Condition | undefined;
  job: JobView | undefined;
  platforms: string;
  now: Date;
}

export function createMetrics(runs: () => ObjectCache<KubernetesObject>): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "vmbuild_" });
  const histogram = (name: string, help: string, labelNames: string[]) =>
    new Histogram({ name, help, labelNames, buckets: BUCKETS, registers: [registry] });
  const queueWait = histogram("vmbuild_queue_wait_seconds", "Time a run waited for a free VM.", ["pool"]);
  const vmBoot = histogram("vmbuild_vm_boot_seconds", "Time from leasing a VM to its podman answering (and the source fetched, which overlaps the boot).", ["pool"]);
  const build = histogram("vmbuild_build_seconds", "Build duration, from podman answering to the push, per platform set.", ["pool", "platforms"]);
  const push = histogram("vmbuild_push_seconds", "Push duration of the manifest list and its images.", ["pool", "platforms"]);
  const failures = new Counter({
    name: "vmbuild_runs_failed_total",
    help: "Runs that ended False, by reason.",
    labelNames: ["pool", "reason"],
    registers: [registry],
  });
  const succeeded = new Counter({
    name: "vmbuild_runs_succeeded_total",
    help: "Runs that ended True.",
    labelNames: ["pool"],
    registers: [registry],
  });
  const scratchFailures = new Counter({
    name: "vmbuild_scratch_failures_total",
    help: "Failed attempts to stop a VM or delete its instance (retried).",
    labelNames: ["pool"],
    registers: [registry],
  });
  const leaked = new Counter({
    name: "vmbuild_leaked_vms_total",
    help: "VMs the sweeper found leased with no live run behind them.",
    labelNames: ["pool"],
    registers: [registry],
  });
  const recoveries = new Counter({
    name: "vmbuild_run_recoveries_total",
    help: "Runs adopted after the replica executing them was lost: their VM scratched, the attempt run again.",
    labelNames: ["pool"],
    registers: [registry],
  });
  const perNamespace = (name: string, help: string, phases: RunState["phase"][]) =>
    new Gauge({
      name,
      help,
      labelNames: ["namespace"],
      registers: [registry],
      collect() {
        this.reset();
        for (const raw of runs().list()) {
          const state = readRunState((raw as { status?: { extraFields?: unknown } }).status?.extraFields);
          if (state && phases.includes(state.phase)) this.inc({ namespace: raw.metadata?.namespace ?? "" });
        }
      },
    });
  perNamespace("vmbuild_runs_running", "Runs holding a VM (starting, building, scratching).", ["Starting", "Building", "Scratching"]);
  perNamespace("vmbuild_runs_queued", "Runs waiting for a free VM.", ["Queued"]);

  const seconds = (from: string | undefined, to: string | Date | undefined) =>
    from && to ? Math.max(0, (new Date(to).getTime() - Date.parse(from)) / 1000) : undefined;

  return {
    registry,
    record({ before, after, final, job, platforms, now }) {
      // A fan-out run over several pools is counted under all of them, comma-separated.
      const st = after ?? before;
      const pool = st ? statePools(st).join(",") : "";
      if (before?.phase === "Queued" && after?.leasedAt && after.leasedAt !== before.leasedAt) {
        observe(queueWait, { pool }, seconds(before.queuedAt, after.leasedAt));
      }
      if (before?.phase === "Starting" && after?.phase === "Building") {
        observe(vmBoot, { pool }, seconds(before.leasedAt, now));
      }
      // A job may finish before a reconcile sees it build: from Starting straight to Scratching.
      const building = (st: RunState | undefined) => st?.phase === "Starting" || st?.phase === "Building";
      if (building(before) && !building(after) && job?.state === "succeeded" && job.durations) {
        build.observe({ pool, platforms }, job.durations.buildMs / 1000);
        push.observe({ pool, platforms }, job.durations.pushMs / 1000);
      }
      if ((after?.recoveries ?? 0) > (before?.recoveries ?? 0)) recoveries.inc({ pool });
      if (final?.status === "False") failures.inc({ pool, reason: final.reason ?? "" });
      if (final?.status === "True") succeeded.inc({ pool });
    },
    scratchFailed: (pool) => scratchFailures.inc({ pool }),
    leakedVMs: (pool, count) => leaked.inc({ pool }, count),
  };
}

function observe(h: Histogram<"pool">, labels: { pool: string }, value: number | undefined): void {
  if (value !== undefined) h.observe(labels, value);
}
