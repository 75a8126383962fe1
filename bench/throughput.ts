import { createContextRepo } from "../test/support/context-repo.js";
import { readRecord, unscratchedVMIs } from "../hack/kubevirt-sim/record.js";
import { buildParams, doubleLeases, eachLimited, runNames, stage, type BenchContext } from "./context.js";
import { controllerRequests, gcSecondsOf, type ApiRequests } from "./measure.js";
import { cpuSecondsOf, memoryOf } from "../test/support/proc-stats.js";
import { finalCondition } from "./observe.js";

// (b) Many runs over a small pool at once, each an instant build through real podman: how long the lot takes,
// the controller's peak memory, the API requests it makes per run, and that no VM was ever leased twice at once.

export interface ThroughputResult {
  runs: number;
  vms: number;
  succeeded: number;
  failed: number;
  /** First create sent → last run finished. */
  totalMs: number;
  runsPerMinute: number;
  /** Controller replicas (each executes the runs handed to it). */
  replicas: number;
  /** VmHWM of the controller process, started fresh for this scenario (with replicas: the largest). */
  peakRssBytes: number;
  /** CPU seconds the controller used from its start to the last run finished (with replicas: all of them). */
  controllerCpuSeconds: number;
  /** Of that, V8's garbage collection by kind (the controller's own metric). */
  controllerGcSeconds: Record<string, number>;
  apiRequests: ApiRequests & { perRun: number };
  doubleLeases: number;
  /** Condition changes the watch saw, per run, by reason: where the status writes go. */
  conditionChangesPerRun: Record<string, number>;
  /** VM instances the stand-in created (it may start one's podman twice), and of those, not scratched at the end. */
  vmsStarted: number;
  vmsLeftUnscratched: number;
}

export async function throughput(ctx: BenchContext, runs = ctx.runs ?? (ctx.smoke ? 6 : 500), vms = ctx.smoke ? 2 : 10): Promise<ThroughputResult> {
  const { h } = ctx;
  // One repository per replica count: a harness may run this scenario with 1 and with 2 replicas.
  const repo = `instant-b-r${ctx.replicas ?? 1}`;
  await createContextRepo(h.repos, repo, { Dockerfile: `FROM ${h.env.baseImage}\nLABEL vmbuild.dev/bench=throughput\n` });
  const s = await stage(ctx, "throughput", vms, { "sim.vmbuild.dev/boot-delay-ms": "0" });
  try {
    const names = runNames("tp", runs);
    const started = Date.now();
    // Created as fast as the API takes them (a PipelineRun fan-out), a few at a time.
    await eachLimited(names, 8, (name) => h.cluster.createRun(s.ns, name, buildParams(ctx, s.ns, repo, name)).then(() => undefined));
    ctx.progress(`throughput: ${runs} runs created in ${Date.now() - started} ms`);
    const timer = setInterval(() => {
      const done = names.filter((n) => finalCondition(s.watch.runs.get(n)?.last ?? { spec: {} })).length;
      const rss = s.controllers.map((c) => `${Math.round(memoryOf(c.pid).rss / 2 ** 20)} MiB`).join(", ");
      ctx.progress(`throughput: ${done}/${runs} runs finished, controller RSS ${rss}`);
    }, 15_000);
    const done = await s.watch.waitForRuns(names, 3_600_000).finally(() => clearInterval(timer));
    const finished = Date.now();
    const peakRssBytes = Math.max(...s.controllers.map((c) => memoryOf(c.pid).peak));
    const controllerCpuSeconds = s.controllers.reduce((sum, c) => sum + cpuSecondsOf(c.pid), 0);
    const controllerGcSeconds: Record<string, number> = {};
    for (const c of s.controllers) {
      for (const [kind, seconds] of Object.entries(await gcSecondsOf(c.metricsURL))) controllerGcSeconds[kind] = (controllerGcSeconds[kind] ?? 0) + seconds;
    }
    await h.everyVMScratched(s.ns);
    const requests = controllerRequests(started, finished);
    const record = readRecord(h.env.simStateDir).filter((e) => e.namespace === s.ns);
    const succeeded = done.filter((r) => finalCondition(r)?.reason === "Succeeded").length;
    return {
      runs,
      vms,
      replicas: s.controllers.length,
      succeeded,
      failed: runs - succeeded,
      totalMs: finished - started,
      runsPerMinute: Math.round((runs / ((finished - started) / 60_000)) * 10) / 10,
      peakRssBytes,
      controllerCpuSeconds,
      controllerGcSeconds,
      apiRequests: { ...requests, perRun: Math.round((requests.total / runs) * 10) / 10 },
      doubleLeases: doubleLeases(s.leases.intervals()),
      conditionChangesPerRun: changesByReason(names.map((n) => s.watch.runs.get(n)?.transitions ?? []), runs),
      vmsStarted: record.filter((e) => e.event === "vmi-created").length,
      vmsLeftUnscratched: unscratchedVMIs(record).length,
    };
  } finally {
    await s.stop();
  }
}

function changesByReason(timelines: readonly { reason: string }[][], runs: number): Record<string, number> {
  const counts = new Map<string, number>();
  for (const t of timelines) for (const { reason } of t) counts.set(reason, (counts.get(reason) ?? 0) + 1);
  return Object.fromEntries([...counts].sort(([, a], [, b]) => b - a).map(([reason, n]) => [reason, Math.round((n / runs) * 100) / 100]));
}
