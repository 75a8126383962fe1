import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Testenv } from "../../hack/testenv/index.js";
import { readRecord, scratchedVMs, startedVMs } from "../../hack/kubevirt-sim/record.js";
import { Cluster, result, succeeded } from "../support/cluster.js";
import { startController, type ControllerProcess } from "../support/controller.js";
import type { GitHttpServer } from "../support/git-http-server.js";
import { openHarness, type Harness } from "../support/harness.js";
import { inspectRaw } from "../support/skopeo.js";
import { createContextRepo } from "../support/context-repo.js";
import { waitUntil } from "../support/processes.js";


describe("a two-platform build through the CustomRun, end to end", () => {
  let h: Harness;
  let env: Testenv;
  let cluster: Cluster;
  let controller: ControllerProcess;
  let git: GitHttpServer;
  let repos: string;
  let ns: string;

  beforeAll(async () => {
    h = await openHarness("build");
    ({ env, cluster, git, repos } = h);
    // The controller here is the bundle the image runs (dist/main.js, with the image's node flags), so these
    // end-to-end builds also check what `npm run build` makes.
    await promisify(execFile)("npm", ["run", "build"], { cwd: new URL("../..", import.meta.url).pathname });
    controller = await startController(env, { name: "build-test", compiled: true });
    ns = await cluster.namespace("build");
    await cluster.pool(ns, "builders", 2);
  });

  afterAll(async () => {
    await controller?.stop();
    await h?.close();
  });

  it("builds linux/amd64 and linux/arm64, pushes one index, reports the served digest and scratches the VM", async () => {
    await createContextRepo(repos, "ok", {
      Dockerfile: `FROM ${env.baseImage}\nRUN uname -m > /arch\nRUN cat /arch\n`,
    });
    const image = `${env.registry.host}/${ns}/ok:1`;
    await cluster.createRun(ns, "ok", {
      pool: "builders",
      gitUrl: `${git.url}/ok.git`,
      image,
      platforms: ["linux/amd64", "linux/arm64"],
      registrySecret: "registry",
      pullSecret: "registry",
      tlsVerify: "false",
    });
    const run = await cluster.waitForRun(ns, "ok", 300_000);
    expect(succeeded(run)).toMatchObject({ status: "True", reason: "Succeeded" });
    expect(run.status?.startTime).toBeTruthy();
    expect(run.status?.completionTime).toBeTruthy();

    const stdout = await inspectRaw(env, image);
    const index = JSON.parse(stdout) as { mediaType: string; manifests: { platform: { architecture: string } }[] };
    expect(index.manifests.map((m) => m.platform.architecture).sort()).toEqual(["amd64", "arm64"]);
    // The digest of the index bytes the registry serves is what users pull by.
    expect(result(run, "IMAGE_DIGEST")).toBe(`sha256:${createHash("sha256").update(stdout).digest("hex")}`);
    expect(result(run, "IMAGE_URL")).toBe(image);

    const log = await readFile(join(controller.logDir, ns, "ok", `${run.metadata?.uid}-0.log`), "utf8");
    expect(log.split("\n")).toContain("aarch64");
    expect(log.split("\n")).toContain("x86_64");
    // podman's warning about the platform args it sets itself is noise in every build.
    expect(log).not.toMatch(/build args were not consumed/);
    expect(log).toMatch(/^context: [\d.]+ KiB sent to VM \S+ in \d+ ms \(\d+ MiB\/s\)$/m);

    const record = readRecord(env.simStateDir).filter((e) => e.namespace === ns);
    expect(startedVMs(record).length).toBeGreaterThan(0);
    expect(scratchedVMs(record).length).toBe(startedVMs(record).length);
    expect(await cluster.leases(ns)).toEqual([]);
    // The controller serves its web view too: the page, and the state for a token that may see the namespace.
    expect((await fetch(`${controller.url}/`)).headers.get("content-type")).toMatch(/text\/html/);
    const state = await fetch(`${controller.url}/api/state`, { headers: { authorization: `Bearer ${env.tokens.admin}` } });
    expect(JSON.stringify(await state.json())).toContain(`${ns}`);
    const metrics = await (await fetch(`${controller.metricsURL}/metrics`)).text();
    // Metrics are on a port of their own, not beside the logs and the web view.
    expect((await fetch(`${controller.url}/metrics`)).status).toBe(404);
    expect(metrics).toMatch(new RegExp(`vmbuild_runs_succeeded_total\\{pool="${ns}/builders"\\} [1-9]`));
    expect(metrics).toMatch(new RegExp(`vmbuild_build_seconds_count\\{pool="${ns}/builders",platforms="linux/amd64,linux/arm64"\\} 1`));
    // The finalizer goes right after the final status: once it is gone, the run is fully let go.
    await waitUntil(async () => ((await cluster.getRun(ns, "ok")).metadata?.finalizers ?? []).length === 0, 10_000, () => "finalizer kept");
  });

  it("takes its settings from a VMBuild by name, params overriding it, or from an embedded spec", async () => {
    await createContextRepo(repos, "settings", {
      "app/Containerfile": `FROM ${env.baseImage}\nARG GREETING\nRUN echo "$GREETING from $(uname -m)"\n`,
    });
    const spec = {
      pool: "builders",
      gitUrl: `${git.url}/settings.git`,
      contextDir: "app",
      dockerfile: "Containerfile",
      image: `${env.registry.host}/${ns}/from-vmbuild:1`,
      platforms: ["linux/arm64"],
      buildArgs: { GREETING: "hello" },
      registrySecret: "registry",
      pullSecret: "registry",
      tlsVerify: false,
    };
    await cluster.custom.createNamespacedCustomObject({
      group: "vmbuild.dev",
      version: "v1alpha1",
      plural: "vmbuilds",
      namespace: ns,
      body: { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild", metadata: { name: "app" }, spec },
    });
    const overridden = `${env.registry.host}/${ns}/overridden:2`;
    await cluster.createRun(ns, "by-name", { image: overridden }, { customRef: { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild", name: "app" } });
    await cluster.createRun(ns, "embedded", {}, {
      customRef: undefined,
      customSpec: { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild", spec: { ...spec, image: `${env.registry.host}/${ns}/embedded:1` } },
    });
    const [byName, embedded] = await Promise.all([
      cluster.waitForRun(ns, "by-name", 300_000),
      cluster.waitForRun(ns, "embedded", 300_000),
    ]);
    expect(succeeded(byName)?.reason).toBe("Succeeded");
    expect(result(byName, "IMAGE_URL")).toBe(overridden);
    expect(succeeded(embedded)?.reason).toBe("Succeeded");
    const log = await readFile(join(controller.logDir, ns, "by-name", `${byName.metadata?.uid}-0.log`), "utf8");
    expect(log.split("\n")).toContain("hello from aarch64");
  });

  it('takes a VMBuild whose string fields are all "" (a templated manifest): each is a field not given, the params fill it', async () => {
    await createContextRepo(repos, "blank", { Dockerfile: `FROM ${env.baseImage}\n` });
    const blank = ["pool", "strategy", "image", "gitUrl", "gitRevision", "contextDir", "dockerfile", "registrySecret", "pullSecret"];
    await cluster.custom.createNamespacedCustomObject({
      group: "vmbuild.dev",
      version: "v1alpha1",
      plural: "vmbuilds",
      namespace: ns,
      body: { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild", metadata: { name: "blank" }, spec: Object.fromEntries(blank.map((f) => [f, ""])) },
    });
    const image = `${env.registry.host}/${ns}/blank:1`;
    await cluster.createRun(
      ns,
      "blank",
      { pool: "builders", gitUrl: `${git.url}/blank.git`, image, registrySecret: "registry", pullSecret: "registry", tlsVerify: "false" },
      { customRef: { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild", name: "blank" } },
    );
    const run = await cluster.waitForRun(ns, "blank", 300_000);
    expect(succeeded(run), succeeded(run)?.message).toMatchObject({ status: "True", reason: "Succeeded" });
    expect(result(run, "IMAGE_URL")).toBe(image);
  });

  it("builds what its VMBuild and params said when the run was admitted, though both are edited and the VMBuild deleted mid-build", async () => {
    await createContextRepo(repos, "kept", { Dockerfile: `FROM ${env.baseImage}\nRUN sleep 6\n` });
    const vmbuilds = { group: "vmbuild.dev", version: "v1alpha1", plural: "vmbuilds", namespace: ns };
    const image = `${env.registry.host}/${ns}/kept:1`;
    const spec = { pool: "builders", gitUrl: `${git.url}/kept.git`, image: `${image}-spec`, registrySecret: "registry", pullSecret: "registry", tlsVerify: false };
    await cluster.custom.createNamespacedCustomObject({
      ...vmbuilds,
      body: { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild", metadata: { name: "kept" }, spec },
    });
    await cluster.createRun(ns, "kept", { image }, { customRef: { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild", name: "kept" } });
    await cluster.waitForReason(ns, "kept", ["Building"], 120_000);
    // No webhook here, as without Tekton's: nothing refuses an edit of a started CustomRun's params.
    const edited = [
      { name: "image", value: `${env.registry.host}/${ns}/edited-param:1` },
      { name: "buildTimeout", value: "1s" },
    ];
    await cluster.patchRun(ns, "kept", { spec: { params: edited } });
    // And then into params no run could start with: a run under way goes on with the ones it kept.
    await cluster.patchRun(ns, "kept", { spec: { params: [{ name: "image", value: 7 }] } });
    await cluster.custom.patchNamespacedCustomObject({
      ...vmbuilds,
      name: "kept",
      body: [{ op: "replace", path: "/spec/image", value: `${env.registry.host}/${ns}/edited:1` }],
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    await cluster.custom.deleteNamespacedCustomObject({ ...vmbuilds, name: "kept" });
    const run = await cluster.waitForRun(ns, "kept", 300_000);
    expect(succeeded(run), succeeded(run)?.message).toMatchObject({ status: "True", reason: "Succeeded" });
    expect(result(run, "IMAGE_URL")).toBe(image);
    await h.everyVMScratched(ns);
  });

  it("fails a broken build with podman's error line in the message, and still scratches the VM", async () => {
    await createContextRepo(repos, "broken", {
      Dockerfile: `FROM ${env.baseImage}\nRUN echo about to fail && exit 3\n`,
    });
    await cluster.createRun(ns, "broken", {
      pool: "builders",
      gitUrl: `${git.url}/broken.git`,
      image: `${env.registry.host}/${ns}/broken:1`,
      platforms: "linux/amd64,linux/arm64",
      registrySecret: "registry",
      pullSecret: "registry",
      tlsVerify: "false",
    });
    const run = await cluster.waitForRun(ns, "broken", 300_000);
    const c = succeeded(run);
    expect(c).toMatchObject({ status: "False", reason: "BuildFailed" });
    expect(c?.message).toMatch(/exit status 3|exit code 3|exited with 3/i);
    expect(c?.message).toMatch(/about to fail/);
    // podman says the error once per platform, and each RUN step's exit again: the message says it once.
    expect(c?.message?.match(/exit status 3/g)).toHaveLength(1);
    expect(c?.message).not.toMatch(/subprocess exited/);
    // A failed run still reports what a `finally` task may read.
    expect(result(run, "LOG_URL")).toMatch(new RegExp(`/logs/${ns}/broken/0$`));
    expect(result(run, "CHAINS-GIT_COMMIT")).toMatch(/^[0-9a-f]{40}$/);
    expect(result(run, "BUILD_VM")).toMatch(new RegExp(`^${ns}/builders-\\d+$`));
    const record = readRecord(env.simStateDir).filter((e) => e.namespace === ns);
    expect(scratchedVMs(record).length).toBe(startedVMs(record).length);
    expect(await cluster.leases(ns)).toEqual([]);
  });

  it("fails a build whose error line is 60 KB (a long RUN step) with its message cut in the middle, keeping what failed and the log's URL", async () => {
    await createContextRepo(repos, "long-step", {
      Dockerfile: `FROM ${env.baseImage}\nRUN echo ${"x".repeat(60_000)} >/dev/null && exit 3\n`,
    });
    await cluster.createRun(ns, "long-step", {
      pool: "builders",
      gitUrl: `${git.url}/long-step.git`,
      image: `${env.registry.host}/${ns}/long-step:1`,
      registrySecret: "registry",
      pullSecret: "registry",
      tlsVerify: "false",
    });
    const run = await cluster.waitForRun(ns, "long-step", 300_000);
    const c = succeeded(run);
    expect(c, c?.message?.slice(0, 300)).toMatchObject({ status: "False", reason: "BuildFailed" });
    expect(c?.message?.length).toBeLessThanOrEqual(4096);
    expect(c?.message).toMatch(/exit status 3/);
    expect(c?.message).toMatch(new RegExp(`\nFull log: \\S+/logs/${ns}/long-step/0$`));
    await h.everyVMScratched(ns);
  });
});
