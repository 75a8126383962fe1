import { createContextRepo } from "../test/support/context-repo.js";
import {
  buildParams,
  doubleLeases,
  eachLimited,
  imageRepository,
  runNames,
  stage,
  type BenchContext,
} from "./context.js";
import { controllerLogTimes, controllerRequests, digestChecks, distribution, type Distribution } from "./measure.js";
import { finalCondition, type NamespaceWatch, type RunTimeline } from "./observe.js";
import type { LeaseInterval } from "../test/support/lease-watch.js";

// (a) What the controller adds at each hand-off of a run, with a stand-in that boots at once (delay 0) and a
// build of nothing (FROM + LABEL). `inFlight` runs at a time over a pool of as many VMs, so no run ever queues.

export const HANDOFFS = [
  "created → VM start requested",
  "VM ready → build request sent",
  "build finished → VM stop requested",
  "VMI gone (scratched) → status Succeeded",
] as const;
export type Handoff = (typeof HANDOFFS)[number];

export interface LatencyResult {
  runs: number;
  inFlight: number;
  succeeded: number;
  /** Runs for which every hand-off could be read from the watches and the registry log. */
  measured: number;
  bootDelayMs: number;
  handoffs: Record<Handoff, Distribution>;
  /** VM stop requested → VMI gone: stopping, the stand-in killing podman and removing the disk, the delete. */
  scratch: Distribution;
  endToEnd: Distribution;
  apiRequestsPerRun: number;
  doubleLeases: number;
}

export async function latency(ctx: BenchContext, runs = ctx.runs ?? (ctx.smoke ? 3 : 200), inFlight = 2): Promise<LatencyResult> {
  const { h } = ctx;
  await createContextRepo(h.repos, "instant", { Dockerfile: `FROM ${h.env.baseImage}\nLABEL vmbuild.dev/bench=instant\n` });
  const bootDelayMs = ctx.bootDelayMs ?? 0;
  const s = await stage(ctx, "latency", inFlight, { "sim.vmbuild.dev/boot-delay-ms": String(bootDelayMs) });
  try {
    const names = runNames("lat", runs);
    const started = Date.now();
    let done = 0;
    // A new run only when one has finished (its VM already released): no run waits for a VM.
    await eachLimited(names, inFlight, async (name) => {
      await h.cluster.createRun(s.ns, name, buildParams(ctx, s.ns, "instant", name));
      await s.watch.waitForRuns([name], 300_000);
      done += 1;
      if (done % 20 === 0) ctx.progress(`latency: ${done}/${runs} runs`);
    });
    const finished = Date.now();
    const timelines = names.map((n) => s.watch.runs.get(n)).filter((t): t is RunTimeline => t !== undefined);
    const checks = digestChecks(new Set(names.map((n) => imageRepository(s.ns, n))));
    // A status message would miss the builds done before a reconcile writes "Building".
    const requests = controllerLogTimes(s.controller.outputPath, "build request sent");
    const intervals = s.leases.intervals();
    const per = timelines.map((t) => handoffsOf(t, s.ns, s.watch, intervals, checks, requests));
    const complete = per.filter((p): p is Measured => p !== undefined);
    const column = (k: keyof Measured) => distribution(complete.map((p) => p[k]));
    return {
      runs,
      inFlight,
      bootDelayMs,
      succeeded: timelines.filter((t) => finalCondition(t.last)?.reason === "Succeeded").length,
      measured: complete.length,
      handoffs: {
        "created → VM start requested": column("start"),
        "VM ready → build request sent": column("build"),
        "build finished → VM stop requested": column("stop"),
        "VMI gone (scratched) → status Succeeded": column("finish"),
      },
      scratch: column("scratch"),
      endToEnd: column("total"),
      apiRequestsPerRun: controllerRequests(started, finished).total / runs,
      doubleLeases: doubleLeases(intervals),
    };
  } finally {
    await s.stop();
  }
}

interface Measured {
  start: number;
  build: number;
  stop: number;
  scratch: number;
  finish: number;
  total: number;
}

/** One run's hand-offs, or undefined when one of its moments was not seen (reported as `measured` < `runs`). */
function handoffsOf(
  t: RunTimeline,
  ns: string,
  watch: NamespaceWatch,
  intervals: readonly LeaseInterval[],
  checks: Map<string, number>,
  requests: Map<string, number>,
): Measured | undefined {
  const lease = intervals.find((l) => l.holder.startsWith(`${ns}/${t.name}/${t.uid}/`));
  const done = t.transitions.find((x) => x.status !== "Unknown");
  if (!lease || done?.reason !== "Succeeded") return undefined;
  // Watches of different kinds may deliver a few ms out of order: look from just before the lease.
  const since = lease.from - 100;
  const strategies = (watch.vmStrategies.get(lease.vm) ?? []).filter((e) => e.at >= since);
  const startRequested = strategies.find((e) => e.runStrategy === "Always")?.at;
  const stopRequested = strategies.find((e) => e.runStrategy !== "Always" && e.at > (startRequested ?? Infinity))?.at;
  const vmi = watch.vmis.find((v) => v.vm === lease.vm && v.created >= since);
  const buildSent = requests.get(`${ns}/${t.name}`);
  const buildFinished = checks.get(imageRepository(ns, t.name));
  const ready = vmi?.ready;
  const gone = vmi?.deleted;
  if (!startRequested || !stopRequested || !buildSent || !buildFinished || !ready || !gone) return undefined;
  return {
    start: startRequested - t.created,
    build: buildSent - ready,
    stop: stopRequested - buildFinished,
    scratch: gone - stopRequested,
    finish: done.at - gone,
    total: done.at - t.created,
  };
}
