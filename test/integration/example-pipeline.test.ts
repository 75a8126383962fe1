import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { result, succeeded } from "../support/cluster.js";
import { startController, type ControllerProcess } from "../support/controller.js";
import { openHarness, type Harness } from "../support/harness.js";
import { createContextRepo } from "../support/context-repo.js";

// The article's Pipeline as rewritten in deploy/examples: its one VMBuild task, turned into the CustomRun Tekton
// would create for it (params substituted, name <pipelinerun>-<task>, the task's timeout), runs to green here.

interface PipelineDoc {
  kind: string;
  spec: {
    params: { name: string; default?: string }[];
    tasks: { name: string; taskRef?: { apiVersion: string; kind: string }; params: { name: string; value: string }[]; timeout?: string }[];
  };
}

describe("deploy/examples/pipeline.yaml's VMBuild task", () => {
  let h: Harness;
  let controller: ControllerProcess;

  beforeAll(async () => {
    h = await openHarness("example");
    controller = await startController(h.env, { name: "example" });
  });

  afterAll(async () => {
    await controller?.stop();
    await h?.close();
  });

  /** The example Pipeline's VMBuild task turned into its CustomRun's params, for a PipelineRun giving `given`. */
  async function exampleTask(given: Record<string, string>) {
    const docs = parseAllDocuments(await readFile(new URL("../../deploy/examples/pipeline.yaml", import.meta.url), "utf8"));
    const pipeline = docs.map((d) => d.toJS() as PipelineDoc).find((d) => d.kind === "Pipeline");
    const task = pipeline?.spec.tasks.find((t) => t.taskRef?.kind === "VMBuild");
    if (!pipeline || !task?.taskRef) throw new Error("no VMBuild task in the example Pipeline");
    const values = new Map(pipeline.spec.params.map((p) => [p.name, given[p.name] ?? p.default ?? ""]));
    const params = Object.fromEntries(
      task.params.map((p) => [p.name, p.value.replace(/\$\(params\.([A-Za-z0-9_-]+)\)/g, (_m, n: string) => values.get(n) ?? "")]),
    );
    const ref = { customRef: { apiVersion: task.taskRef.apiVersion, kind: task.taskRef.kind }, ...(task.timeout ? { timeout: task.timeout } : {}) };
    return { name: task.name, params, ref };
  }

  it("runs as the CustomRun Tekton creates from it, to Succeeded with IMAGE_URL and IMAGE_DIGEST", async () => {
    const { env, cluster, git, repos } = h;
    const ns = await cluster.namespace("example");
    await cluster.pool(ns, "buildsys", 2);
    await createContextRepo(repos, "app", { Dockerfile: `FROM ${env.baseImage}\nRUN uname -m\n` });
    // What a PipelineRun would pass here, pointed at this machine's git server and registry. The article's base
    // image is public; this machine's is behind the test registry's login.
    const runParams: Record<string, string> = {
      gitUrl: `${git.url}/app.git`,
      image: `${env.registry.host}/${ns}/app:latest`,
      registrySecret: "registry",
      pullSecret: "registry",
      tlsVerify: "false",
    };
    const task = await exampleTask(runParams);
    const name = `multi-arch-image-build-run-${task.name}`;
    await cluster.createRun(ns, name, task.params, task.ref);
    const run = await cluster.waitForRun(ns, name, 300_000);
    expect(succeeded(run)?.reason, succeeded(run)?.message).toBe("Succeeded");
    expect(result(run, "IMAGE_URL")).toBe(runParams.image);
    expect(result(run, "IMAGE_DIGEST")).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(result(run, "PLATFORM_DIGESTS")?.split(",").map((p) => p.split("=")[0])).toEqual(["linux/amd64", "linux/arm64"]);
    await h.everyVMScratched(ns);
  });

  it("passes its optional params through at their default of \"\": pullSecret empty pulls nothing with a login", async () => {
    const { env, cluster, git, repos } = h;
    const ns = await cluster.namespace("example-defaults");
    await cluster.pool(ns, "buildsys", 1);
    // Nothing to pull: a login for pulling is neither needed nor given.
    await createContextRepo(repos, "scratch", { Dockerfile: "FROM scratch\nCOPY Dockerfile /\n" });
    const task = await exampleTask({
      gitUrl: `${git.url}/scratch.git`,
      image: `${env.registry.host}/${ns}/scratch:latest`,
      registrySecret: "registry",
      tlsVerify: "false",
    });
    expect(task.params).toMatchObject({ pullSecret: "", gitRevision: "" });
    await cluster.createRun(ns, "defaults", task.params, task.ref);
    const run = await cluster.waitForRun(ns, "defaults", 300_000);
    expect(succeeded(run)?.reason, succeeded(run)?.message).toBe("Succeeded");
    expect(result(run, "PLATFORM_DIGESTS")?.split(",").map((p) => p.split("=")[0])).toEqual(["linux/amd64", "linux/arm64"]);
    await h.everyVMScratched(ns);
  });
});
