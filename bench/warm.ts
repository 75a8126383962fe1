import { createContextRepo } from "../test/support/context-repo.js";
import { waitUntil } from "../test/support/processes.js";
import { buildParams, runNames, stage, type BenchContext, type Stage } from "./context.js";
import { distribution, type Distribution } from "./measure.js";
import { finalCondition } from "./observe.js";

// (d) Lease → build start with a slow (simulated) boot, from a cold pool (every VM Halted) and from a warm one
// (`vmbuild.dev/warm-min` VMs kept booted and unleased).

export interface WarmResult {
  bootDelayMs: number;
  runsPerMode: number;
  /** Whether the warm pool's VMs were seen booted before any run asked for them. */
  warmPoolsSupported: boolean;
  cold: PoolMode;
  warm: PoolMode;
}

export interface PoolMode {
  succeeded: number;
  /** Lease created → podman answered (the job left "connecting"). */
  leaseToPodman: Distribution;
  /** Lease created → build request sent ("Building … on VM"). */
  leaseToBuild: Distribution;
}

export async function warm(ctx: BenchContext): Promise<WarmResult> {
  const { h } = ctx;
  const bootDelayMs = ctx.smoke ? 1_000 : 20_000;
  const runsPerMode = ctx.smoke ? 1 : 5;
  await createContextRepo(h.repos, "instant-d", { Dockerfile: `FROM ${h.env.baseImage}\nLABEL vmbuild.dev/bench=warm\n` });
  const boot = { "sim.vmbuild.dev/boot-delay-ms": String(bootDelayMs) };

  const cold = await stage(ctx, "cold", 2, boot);
  const coldMode = await measure(ctx, cold, runsPerMode, async () => undefined).finally(() => cold.stop());

  const warmStage = await stage(ctx, "warm", 2, boot, {
    "vmbuild.dev/warm-min": "1",
    "vmbuild.dev/warm-max": "2",
    "vmbuild.dev/warm-idle": "10m",
  });
  let warmPoolsSupported = true;
  // A warm VM is one with a ready instance and no run's lease: wait for one before each run, as a pool at rest has.
  const warmVMReady = async () => {
    if (!warmPoolsSupported) return;
    // Warm VMs are held by the keeper (holder vmbuild/warm): "leased" here means held by a run.
    const leased = new Set(
      warmStage.leases.intervals().filter((l) => l.to === undefined && l.holder !== "vmbuild/warm").map((l) => l.vm),
    );
    await waitUntil(
      async () => warmStage.watch.vmis.some((v) => v.ready !== undefined && v.deleted === undefined && !leased.has(v.vm)),
      bootDelayMs * 2 + 10_000,
      () => "no warm VM",
    ).catch(() => {
      warmPoolsSupported = false;
      ctx.progress("warm: no VM was booted ahead of a run; this controller has no warm pools (measured as cold)");
    });
  };
  const warmMode = await measure(ctx, warmStage, runsPerMode, warmVMReady).finally(() => warmStage.stop());
  return { bootDelayMs, runsPerMode, warmPoolsSupported, cold: coldMode, warm: warmMode };
}

async function measure(ctx: BenchContext, s: Stage, runs: number, before: () => Promise<void>): Promise<PoolMode> {
  const toPodman: number[] = [];
  const toBuild: number[] = [];
  let succeeded = 0;
  for (const name of runNames("run", runs)) {
    await before();
    await ctx.h.cluster.createRun(s.ns, name, buildParams(ctx, s.ns, "instant-d", name));
    const [run] = await s.watch.waitForRuns([name], 600_000);
    const t = s.watch.runs.get(name);
    const lease = s.leases.intervals().find((l) => l.holder.startsWith(`${s.ns}/${name}/${t?.uid}/`));
    const fetching = t?.transitions.find((x) => x.reason === "Building")?.at;
    const building = t?.transitions.find((x) => /^Building .+ on VM /.test(x.message))?.at;
    if (run && finalCondition(run)?.reason === "Succeeded") succeeded += 1;
    if (lease && fetching && building) {
      toPodman.push(fetching - lease.from);
      toBuild.push(building - lease.from);
    }
    ctx.progress(`${s.ns}: ${name} lease → build ${building && lease ? building - lease.from : "?"} ms`);
  }
  return { succeeded, leaseToPodman: distribution(toPodman), leaseToBuild: distribution(toBuild) };
}
