import { createContextRepo } from "../test/support/context-repo.js";
import { cpuTimesOf, memoryOf } from "../test/support/proc-stats.js";
import { createTekton, prCondition, startTektonController, type PipelineRunObject } from "../test/support/tekton.js";
import { controllerUser, tektonUser } from "../hack/testenv/credentials.js";
import { buildParams, eachLimited, runNames, stage, type BenchContext } from "./context.js";
import { controllerRequests, type ApiRequests } from "./measure.js";

// (t) Side by side with Tekton Pipelines' own controller (issue #18): PipelineRuns of a one-task Pipeline whose task
// is a VMBuild (an instant build, as (b)), Tekton's controller turning each into a CustomRun and vmbuild building
// them over a pool of VMs. Per run, for each controller: CPU seconds (with its reaped child processes: vmbuild's git),
// API requests by verb and resource (the apiserver's audit of each one's identity) and peak RSS.

export interface ControllerCost {
  /** From the first PipelineRun created to the last one finished. */
  cpuSeconds: number;
  cpuSecondsPerRun: number;
  /** Of cpuSeconds, what its child processes used (git, for vmbuild). */
  childCpuSeconds: number;
  /** VmHWM since the process started. */
  peakRssBytes: number;
  requests: ApiRequests & { perRun: number };
}

export interface SideBySideResult {
  runs: number;
  vms: number;
  succeeded: number;
  totalMs: number;
  tekton: ControllerCost;
  vmbuild: ControllerCost;
  /** vmbuild's CPU per run / Tekton's CPU per run. */
  cpuRatio: number;
  /** vmbuild's requests per run / Tekton's. */
  requestRatio: number;
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Everything the PipelineRuns have in common; `run` names the image each pushes. */
function pipelineSpec(ctx: BenchContext, ns: string, repo: string): object {
  const params = buildParams(ctx, ns, repo, "$(params.run)");
  return {
    params: [{ name: "run", type: "string" }],
    tasks: [
      {
        name: "build",
        taskRef: { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild" },
        params: Object.entries(params).map(([name, value]) => ({ name, value })),
      },
    ],
    results: [{ name: "IMAGE_DIGEST", value: "$(tasks.build.results.IMAGE_DIGEST)" }],
  };
}

export async function sideBySide(ctx: BenchContext, runs = ctx.runs ?? (ctx.smoke ? 4 : 100), vms = ctx.smoke ? 2 : 10): Promise<SideBySideResult> {
  const { h } = ctx;
  const repo = "instant-t";
  await createContextRepo(h.repos, repo, { Dockerfile: `FROM ${h.env.baseImage}\nLABEL vmbuild.dev/bench=side-by-side\n` });
  const s = await stage(ctx, "tekton", vms, { "sim.vmbuild.dev/boot-delay-ms": "0" });
  // Tekton's controller may never get ready: the stage's vmbuild controller is stopped all the same.
  const tekton = await startTektonController(h.env).catch(async (err: unknown) => {
    await s.stop();
    throw err;
  });
  try {
    await createTekton(h.cluster, "Pipeline", s.ns, "build", pipelineSpec(ctx, s.ns, repo));
    const names = runNames("pr", runs);
    const before = { tekton: cpuTimesOf(tekton.pid), vmbuild: cpuTimesOf(s.controller.pid) };
    const started = Date.now();
    await eachLimited(names, 8, (name) =>
      createTekton(h.cluster, "PipelineRun", s.ns, name, {
        pipelineRef: { name: "build" },
        params: [{ name: "run", value: name }],
      }),
    );
    ctx.progress(`side by side: ${runs} PipelineRuns created in ${Date.now() - started} ms`);
    const finished = new Map<string, PipelineRunObject>();
    const deadline = Date.now() + 3_600_000;
    while (finished.size < runs) {
      if (Date.now() > deadline) throw new Error(`side by side: ${runs - finished.size} PipelineRuns did not finish within an hour`);
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      const list = (await h.cluster.custom.listNamespacedCustomObject({ group: "tekton.dev", version: "v1", namespace: s.ns, plural: "pipelineruns" })) as {
        items: PipelineRunObject[];
      };
      for (const pr of list.items) {
        const c = prCondition(pr);
        if (c && c.status !== "Unknown" && pr.metadata?.name) finished.set(pr.metadata.name, pr);
      }
      ctx.progress(`side by side: ${finished.size}/${runs} PipelineRuns finished`);
    }
    const ended = Date.now();
    // What follows a run's end (vmbuild's finalizer removal, Tekton's last status write) belongs to the run too.
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const measuredUntil = Date.now();
    const after = { tekton: cpuTimesOf(tekton.pid), vmbuild: cpuTimesOf(s.controller.pid) };
    type CpuTimes = ReturnType<typeof cpuTimesOf>;
    const cost = (pid: number, b: CpuTimes, a: CpuTimes, user: string): ControllerCost => {
      const requests = controllerRequests(started, measuredUntil, user);
      const childCpuSeconds = a.children - b.children;
      const cpuSeconds = a.own - b.own + childCpuSeconds;
      return {
        cpuSeconds: round(cpuSeconds, 2),
        cpuSecondsPerRun: round(cpuSeconds / runs, 4),
        childCpuSeconds: round(childCpuSeconds, 2),
        peakRssBytes: memoryOf(pid).peak,
        requests: { ...requests, perRun: round(requests.total / runs, 1) },
      };
    };
    const tektonCost = cost(tekton.pid, before.tekton, after.tekton, tektonUser);
    const vmbuildCost = cost(s.controller.pid, before.vmbuild, after.vmbuild, controllerUser);
    await h.everyVMScratched(s.ns);
    const succeeded = [...finished.values()].filter((pr) => prCondition(pr)?.reason === "Succeeded").length;
    return {
      runs,
      vms,
      succeeded,
      totalMs: ended - started,
      tekton: tektonCost,
      vmbuild: vmbuildCost,
      cpuRatio: round(vmbuildCost.cpuSecondsPerRun / tektonCost.cpuSecondsPerRun, 2),
      requestRatio: round(vmbuildCost.requests.perRun / tektonCost.requests.perRun, 2),
    };
  } finally {
    await tekton.stop();
    await s.stop();
  }
}
