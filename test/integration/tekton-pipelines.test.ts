import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { result, succeeded, type CustomRunObject } from "../support/cluster.js";
import { createContextRepo } from "../support/context-repo.js";
import { controllerSuite } from "../support/controller-suite.js";
import { inspectRaw } from "../support/skopeo.js";
import {
  createTekton,
  customRunsOf,
  patchPipelineRun,
  prCondition,
  startTektonController,
  waitForPipelineRun,
  type PipelineRunObject,
  type TektonController,
} from "../support/tekton.js";

// Tekton Pipelines' own controller (v1.15.1, from its Go module) drives vmbuild: PipelineRuns become CustomRuns,
// their results flow into pipeline results and later tasks, and cancel, timeouts, retries, finally, when and matrix
// work as Tekton documents them for custom tasks. TaskRun pods cannot run here (no kubelet), so every task is a
// VMBuild. Every scenario ends with every VM it started scratched: no VMI, no Lease left.

const VMBUILD = { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild" };
type Param = { name: string; value: string | string[] };

describe("Tekton's controller runs PipelineRuns of VMBuild tasks", () => {
  const s = controllerSuite("tekton", async ({ cluster, ns, repos, env }) => {
    await cluster.pool(ns, "buildsys", 3);
    const from = `FROM ${env.baseImage}\n`;
    await createContextRepo(repos, "app", { Dockerfile: `${from}RUN uname -m\n` });
    await createContextRepo(repos, "derived", { Dockerfile: `ARG BASE\nFROM $BASE\nRUN true\n` });
    await createContextRepo(repos, "slow", { Dockerfile: `${from}RUN sleep 120\n` });
    await createContextRepo(repos, "failing", { Dockerfile: `${from}RUN echo going to fail && false\n` });
    await createContextRepo(repos, "report", { Dockerfile: `${from}ARG FAILED_LOG\nRUN echo "the failed build's log: $FAILED_LOG"\n` });
  });
  let tekton: TektonController;
  // Builds Tekton's controller first if it is not cached (measured: 5.5 min cold on 2 cores, once per version).
  beforeAll(async () => {
    tekton = await startTektonController(s.env);
  }, 30 * 60_000);
  afterAll(async () => {
    await tekton?.stop();
  });

  /** What every task of these Pipelines passes: the pool, where the source is, the registry logins. */
  const common = (repo: string): Param[] => [
    { name: "pool", value: "buildsys" },
    { name: "gitUrl", value: `${s.git.url}/${repo}.git` },
    { name: "registrySecret", value: "registry" },
    { name: "pullSecret", value: "registry" },
    { name: "tlsVerify", value: "false" },
  ];
  const image = (name: string) => `${s.env.registry.host}/${s.ns}/${name}`;
  const task = (name: string, repo: string, params: Param[], extra: object = {}) => ({
    name,
    taskRef: VMBUILD,
    params: [...common(repo), ...params],
    ...extra,
  });
  const param = (run: CustomRunObject, name: string) =>
    (run.spec.params as Param[] | undefined)?.find((p) => p.name === name)?.value;
  const onlyRun = async (pr: string, taskName: string): Promise<CustomRunObject> => {
    const runs = await customRunsOf(s.cluster, s.ns, pr, taskName);
    expect(runs.map((r) => r.metadata?.name)).toHaveLength(1);
    return runs[0] as CustomRunObject;
  };
  /** No VMI, no Lease left in the namespace, and the stand-in saw each VMI it created scratched. */
  const everyVMScratched = async () => {
    await s.h.everyVMScratched(s.ns);
    expect(await s.cluster.vmis(s.ns)).toEqual([]);
  };
  it("deploy/examples' Pipeline and PipelineRun: IMAGE_URL and IMAGE_DIGEST reach the pipeline results", async () => {
    const { cluster, ns, env } = s;
    const docs = (name: string) =>
      readFile(new URL(`../../deploy/examples/${name}`, import.meta.url), "utf8").then((t) =>
        parseAllDocuments(t).map((d) => d.toJS() as { kind: string; metadata: { name?: string }; spec: Record<string, unknown> }),
      );
    const pipeline = (await docs("pipeline.yaml")).find((d) => d.kind === "Pipeline");
    const example = (await docs("pipelinerun.yaml")).find((d) => d.kind === "PipelineRun");
    if (!pipeline?.metadata.name || !example) throw new Error("deploy/examples has no Pipeline or PipelineRun");
    await createTekton(cluster, "Pipeline", ns, pipeline.metadata.name, pipeline.spec);
    // The example run, pointed at this machine's git server and registry (the pool keeps its default, buildsys).
    // The article's base image is public; this machine's is behind the test registry's login.
    const ours: Record<string, string> = {
      gitUrl: `${s.git.url}/app.git`,
      image: `${image("example")}:latest`,
      registrySecret: "registry",
      pullSecret: "registry",
      tlsVerify: "false",
    };
    const given = (example.spec.params as Param[]).filter((p) => !(p.name in ours));
    await createTekton(cluster, "PipelineRun", ns, "example", {
      ...example.spec,
      params: [...given, ...Object.entries(ours).map(([name, value]) => ({ name, value }))],
    });

    const pr = await waitForPipelineRun(cluster, ns, "example", 300_000);
    expect(prCondition(pr), JSON.stringify(pr.status)).toMatchObject({ status: "True", reason: "Succeeded" });
    const run = await onlyRun("example", "build");
    expect(succeeded(run)).toMatchObject({ status: "True", reason: "Succeeded" });
    expect(run.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "PipelineRun", name: "example", controller: true });
    expect(run.spec.timeout).toBe("50m0s");
    expect(pr.status?.childReferences).toEqual([expect.objectContaining({ kind: "CustomRun", name: run.metadata?.name, pipelineTaskName: "build" })]);

    const served = await inspectRaw(env, ours.image as string);
    const digest = `sha256:${createHash("sha256").update(served).digest("hex")}`;
    expect(result(run, "IMAGE_DIGEST")).toBe(digest);
    expect(pr.status?.results).toEqual([
      { name: "IMAGE_URL", value: ours.image },
      { name: "IMAGE_DIGEST", value: digest },
    ]);
    await everyVMScratched();
  });

  it("a later task builds FROM the first one's IMAGE_DIGEST; a `when` on a result runs it, another skips its task", async () => {
    const { cluster, ns } = s;
    const base = `${image("base")}:1`;
    await createTekton(cluster, "Pipeline", ns, "chain", {
      tasks: [
        task("build", "app", [{ name: "image", value: base }, { name: "platforms", value: "linux/amd64,linux/arm64" }]),
        task(
          "derive",
          "derived",
          [
            { name: "image", value: `${image("derived")}:1` },
            { name: "platforms", value: "linux/amd64,linux/arm64" },
            { name: "buildArgs", value: [`BASE=${image("base")}@$(tasks.build.results.IMAGE_DIGEST)`] },
          ],
          { when: [{ input: "$(tasks.build.results.IMAGE_DIGEST)", operator: "notin", values: [""] }] },
        ),
        task("never", "app", [{ name: "image", value: `${image("never")}:1` }], {
          when: [{ input: "$(tasks.build.results.PLATFORM_DIGESTS)", operator: "in", values: ["none"] }],
        }),
      ],
      results: [
        { name: "BASE_DIGEST", value: "$(tasks.build.results.IMAGE_DIGEST)" },
        { name: "DERIVED_DIGEST", value: "$(tasks.derive.results.IMAGE_DIGEST)" },
      ],
    });
    await createTekton(cluster, "PipelineRun", ns, "chain", { pipelineRef: { name: "chain" } });

    const pr = await waitForPipelineRun(cluster, ns, "chain", 300_000);
    // Tekton's reason for a success with a skipped task.
    expect(prCondition(pr), JSON.stringify(pr.status)).toMatchObject({
      status: "True",
      reason: "Completed",
      message: "Tasks Completed: 2 (Failed: 0, Cancelled 0), Skipped: 1",
    });
    const build = await onlyRun("chain", "build");
    const derive = await onlyRun("chain", "derive");
    const baseDigest = result(build, "IMAGE_DIGEST");
    expect(baseDigest).toMatch(/^sha256:[a-f0-9]{64}$/);
    // Tekton substituted the result into the param; the build pulled its FROM by that digest and succeeded.
    expect(param(derive, "buildArgs")).toEqual([`BASE=${image("base")}@${baseDigest}`]);
    expect(succeeded(derive)).toMatchObject({ status: "True", reason: "Succeeded" });
    const log = await readFile(join(s.controller.logDir, ns, derive.metadata?.name ?? "", `${derive.metadata?.uid}-0.log`), "utf8");
    expect(log).toContain(`[linux/arm64] STEP 1/2: FROM ${image("base")}@${baseDigest}`);
    expect(pr.status?.results).toEqual([
      { name: "BASE_DIGEST", value: baseDigest },
      { name: "DERIVED_DIGEST", value: result(derive, "IMAGE_DIGEST") },
    ]);
    // The false `when` skipped its task: no CustomRun for it.
    expect(pr.status?.skippedTasks).toEqual([expect.objectContaining({ name: "never", reason: "When Expressions evaluated to false" })]);
    expect(await customRunsOf(cluster, ns, "chain", "never")).toEqual([]);
    expect(s.h.vmisCreated(ns)).toBe(3); // example, build, derive
    await everyVMScratched();
  });

  it("a matrix fans one task out into a CustomRun per combination, each building its own platform", async () => {
    const { cluster, ns, env } = s;
    const combos = ["amd64", "arm64"].map((arch) => ({
      name: arch,
      params: [
        { name: "platforms", value: `linux/${arch}` },
        { name: "image", value: `${image("matrix")}:${arch}` },
      ],
    }));
    await createTekton(cluster, "Pipeline", ns, "matrix", { tasks: [task("build", "app", [], { matrix: { include: combos } })] });
    await createTekton(cluster, "PipelineRun", ns, "matrix", { pipelineRef: { name: "matrix" } });

    const pr = await waitForPipelineRun(cluster, ns, "matrix", 300_000);
    expect(prCondition(pr), JSON.stringify(pr.status)).toMatchObject({ status: "True", reason: "Succeeded" });
    const runs = await customRunsOf(cluster, ns, "matrix", "build");
    expect(runs.map((r) => succeeded(r)?.reason)).toEqual(["Succeeded", "Succeeded"]);
    expect(runs.map((r) => param(r, "platforms")).sort()).toEqual(["linux/amd64", "linux/arm64"]);
    for (const run of runs) {
      const arch = (param(run, "platforms") as string).split("/")[1];
      expect(param(run, "image")).toBe(`${image("matrix")}:${arch}`);
      const index = JSON.parse(await inspectRaw(env, `${image("matrix")}:${arch}`)) as { manifests: { platform: { architecture: string } }[] };
      expect(index.manifests.map((m) => m.platform.architecture)).toEqual([arch]);
    }
    await everyVMScratched();
  });

  it("cancelling the PipelineRun cancels its CustomRun mid-build, and the VM is scratched", async () => {
    const { cluster, ns } = s;
    await createTekton(cluster, "Pipeline", ns, "cancel", { tasks: [task("build", "slow", [{ name: "image", value: `${image("cancel")}:1` }])] });
    await createTekton(cluster, "PipelineRun", ns, "cancel", { pipelineRef: { name: "cancel" } });
    // Tekton names the run <pipelinerun>-<task>; cancelled once its build runs the long step.
    await cluster.waitForReason(ns, "cancel-build", ["Building"], 60_000, /RUN sleep 120/);

    await patchPipelineRun(cluster, ns, "cancel", { spec: { status: "Cancelled" } });
    const pr = await waitForPipelineRun(cluster, ns, "cancel", 60_000);
    expect(prCondition(pr)).toMatchObject({ status: "False", reason: "Cancelled" });
    // Tekton marks the PipelineRun Cancelled once it has patched its CustomRuns, without waiting for them: the
    // run ends when vmbuild has scratched its VM.
    const run = await cluster.waitForRun(ns, "cancel-build", 60_000);
    expect(run.spec.status).toBe("RunCancelled");
    expect(succeeded(run)).toMatchObject({ status: "False", reason: "CustomRunCancelled", message: run.spec.statusMessage });
    await everyVMScratched();
  });

  it("timeouts: a task's timeout ends its CustomRun CustomRunTimedOut; the pipeline's timeouts.tasks cancels it", async () => {
    const { cluster, ns } = s;
    await createTekton(cluster, "Pipeline", ns, "task-timeout", {
      tasks: [task("build", "slow", [{ name: "image", value: `${image("task-timeout")}:1` }], { timeout: "8s" })],
    });
    await createTekton(cluster, "Pipeline", ns, "tasks-timeout", { tasks: [task("build", "slow", [{ name: "image", value: `${image("tasks-timeout")}:1` }])] });
    // Both at once: each holds one VM of the pool.
    await createTekton(cluster, "PipelineRun", ns, "task-timeout", { pipelineRef: { name: "task-timeout" } });
    await createTekton(cluster, "PipelineRun", ns, "tasks-timeout", { pipelineRef: { name: "tasks-timeout" }, timeouts: { pipeline: "1h", tasks: "8s" } });

    const [own, tasks] = await Promise.all(["task-timeout", "tasks-timeout"].map((n) => waitForPipelineRun(cluster, ns, n, 120_000)));
    const ownRun = await onlyRun("task-timeout", "build");
    expect(ownRun.spec.timeout).toBe("8s");
    expect(succeeded(ownRun)).toMatchObject({ status: "False", reason: "CustomRunTimedOut" });
    expect(prCondition(own as PipelineRunObject)).toMatchObject({ status: "False", reason: "Failed" });

    const cancelled = await cluster.waitForRun(ns, "tasks-timeout-build", 60_000); // as for a cancel, see above
    expect(cancelled.spec.status).toBe("RunCancelled");
    // Tekton cancels the run, saying why; vmbuild passes its message on.
    expect(succeeded(cancelled)).toMatchObject({
      status: "False",
      reason: "CustomRunCancelled",
      message: "CustomRun cancelled as the PipelineRun it belongs to has timed out.",
    });
    expect(prCondition(tasks as PipelineRunObject)).toMatchObject({
      status: "False",
      reason: "PipelineRunTimeout",
      message: 'PipelineRun "tasks-timeout" failed due to tasks failed to finish within "8s"',
    });
    await everyVMScratched();
  });

  it("retries: 1 runs a failing build twice (retriesStatus); `finally` then runs and reads its LOG_URL", async () => {
    const { cluster, ns } = s;
    const before = s.h.vmisCreated(ns);
    await createTekton(cluster, "Pipeline", ns, "retry", {
      tasks: [task("build", "failing", [{ name: "image", value: `${image("failing")}:1` }], { retries: 1 })],
      finally: [
        task(
          "report",
          "report",
          [
            { name: "image", value: `${image("report")}:1` },
            { name: "buildArgs", value: ["FAILED_LOG=$(tasks.build.results.LOG_URL)"] },
          ],
          { when: [{ input: "$(tasks.build.status)", operator: "in", values: ["Failed"] }] },
        ),
      ],
    });
    await createTekton(cluster, "PipelineRun", ns, "retry", { pipelineRef: { name: "retry" } });

    const pr = await waitForPipelineRun(cluster, ns, "retry", 300_000);
    expect(prCondition(pr)).toMatchObject({ status: "False", reason: "Failed" });
    const build = await onlyRun("retry", "build");
    expect(build.spec.retries).toBe(1);
    expect(succeeded(build)).toMatchObject({ status: "False", reason: "BuildFailed" });
    expect(build.status?.retriesStatus).toHaveLength(1);
    const logUrl = result(build, "LOG_URL");
    expect(logUrl).toMatch(new RegExp(`^${s.controller.url}/logs/${ns}/retry-build`));

    const report = await onlyRun("retry", "report");
    expect(param(report, "buildArgs")).toEqual([`FAILED_LOG=${logUrl}`]);
    expect(succeeded(report)).toMatchObject({ status: "True", reason: "Succeeded" });
    const log = await readFile(join(s.controller.logDir, ns, report.metadata?.name ?? "", `${report.metadata?.uid}-0.log`), "utf8");
    expect(log).toContain(`the failed build's log: ${logUrl}`);
    expect(s.h.vmisCreated(ns) - before).toBe(3); // two attempts, then the finally task
    await everyVMScratched();
  });
});
