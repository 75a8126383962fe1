import { availableParallelism } from "node:os";
import { createContextRepo } from "../test/support/context-repo.js";
import { buildParams, stage, type BenchContext } from "./context.js";
import { finalCondition, type RunTimeline } from "./observe.js";

// (c) `fanout` (one VM per platform, in parallel) against `single` (one VM builds every platform) for a
// CPU-heavy RUN step under real qemu, next to what this machine could do at best: each platform's build timed
// alone, then max(slowest platform, sum of platforms / cores).

export interface Timed {
  /** Run created → Succeeded. */
  wallMs: number;
  /** "Building … on VM" → "Pushing" (single only: fanout reports per VM). */
  buildMs: number | undefined;
}

export interface StrategyRun extends Timed {
  strategy: "single" | "fanout";
  platforms: string[];
  /** False when the controller rejected the strategy (an older controller without fanout). */
  supported: boolean;
  reason: string;
  /** wall / (the machine's limit + the per-run overhead measured alone). */
  ratioToLimit: number | undefined;
}

export interface StrategiesResult {
  loopIterations: number;
  cores: number;
  alone: Record<string, Timed>;
  /** Median wall − build of the runs alone: VM boot, fetch, push and scratch. */
  overheadMs: number;
  limits: Record<string, { limitMs: number; slowestMs: number; sumPerCoreMs: number }>;
  runs: StrategyRun[];
}

const ALL = ["linux/amd64", "linux/arm64", "linux/ppc64le", "linux/s390x"];

export async function strategies(ctx: BenchContext): Promise<StrategiesResult> {
  const { h } = ctx;
  // Shell arithmetic in busybox: about 2 s native here, 10–15× that under qemu-user.
  const loopIterations = ctx.smoke ? 2_000 : 400_000;
  const sets = ctx.smoke ? [ALL.slice(0, 2)] : [ALL.slice(0, 2), ALL];
  await createContextRepo(h.repos, "cpu", {
    Dockerfile: `FROM ${h.env.baseImage}\nRUN i=0; while [ $i -lt ${loopIterations} ]; do i=$((i+1)); done; echo $i > /loops\n`,
  });
  const platforms = [...new Set(sets.flat())];
  const s = await stage(ctx, "strategies", Math.max(...sets.map((x) => x.length)), { "sim.vmbuild.dev/boot-delay-ms": "0" });
  try {
    let n = 0;
    // One run at a time: nothing else of ours competes for the cores.
    const timedRun = async (params: Record<string, string | string[]>): Promise<RunTimeline> => {
      const name = `cpu-${n++}`;
      await h.cluster.createRun(s.ns, name, buildParams(ctx, s.ns, "cpu", name, params));
      await s.watch.waitForRuns([name], 1_200_000);
      await h.everyVMScratched(s.ns);
      const t = s.watch.runs.get(name);
      if (!t) throw new Error(`no timeline for ${name}`);
      return t;
    };
    const alone: Record<string, Timed> = {};
    for (const p of platforms) {
      const t = await timedRun({ platforms: [p] });
      if (finalCondition(t.last)?.reason !== "Succeeded") throw new Error(`${p} alone: ${JSON.stringify(finalCondition(t.last))}`);
      alone[p] = timed(t);
      ctx.progress(`strategies: ${p} alone ${alone[p]?.wallMs} ms`);
    }
    const cores = availableParallelism();
    const overheads = Object.values(alone).map((a) => a.wallMs - (a.buildMs ?? a.wallMs));
    const overheadMs = overheads.sort((a, b) => a - b)[Math.floor(overheads.length / 2)] ?? 0;
    const limits: StrategiesResult["limits"] = {};
    const runs: StrategyRun[] = [];
    for (const set of sets) {
      const builds = set.map((p) => alone[p]?.buildMs ?? 0);
      const slowestMs = Math.max(...builds);
      const sumPerCoreMs = Math.round(builds.reduce((a, b) => a + b, 0) / cores);
      const limit = { limitMs: Math.max(slowestMs, sumPerCoreMs), slowestMs, sumPerCoreMs };
      limits[set.join(",")] = limit;
      for (const strategy of ["single", "fanout"] as const) {
        const t = await timedRun({ platforms: set, ...(strategy === "fanout" ? { strategy } : {}) });
        const c = finalCondition(t.last);
        const supported = !(c?.reason === "InvalidParams" && /strategy/.test(c.message ?? ""));
        const time = timed(t);
        runs.push({
          strategy,
          platforms: set,
          supported,
          reason: c?.reason ?? "",
          ...time,
          ratioToLimit: supported && c?.reason === "Succeeded" ? round2(time.wallMs / (limit.limitMs + overheadMs)) : undefined,
        });
        ctx.progress(`strategies: ${strategy} ${set.length} platforms ${c?.reason} in ${time.wallMs} ms`);
      }
    }
    return { loopIterations, cores, alone, overheadMs, limits, runs };
  } finally {
    await s.stop();
  }
}

function timed(t: RunTimeline): Timed {
  const building = t.transitions.find((x) => /^Building .+ on VM /.test(x.message))?.at;
  const pushing = t.transitions.find((x) => x.reason === "Pushing")?.at;
  const done = t.transitions.find((x) => x.status !== "Unknown")?.at ?? Date.now();
  return { wallMs: done - t.created, buildMs: building && pushing ? pushing - building : undefined };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
