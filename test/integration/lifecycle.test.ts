import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mergePatch } from "../../src/kube/client.js";
import type { Testenv } from "../../hack/testenv/index.js";
import { readRecord, unscratchedVMIs } from "../../hack/kubevirt-sim/record.js";
import { Cluster, succeeded } from "../support/cluster.js";
import { startController, type ControllerProcess } from "../support/controller.js";
import type { GitHttpServer } from "../support/git-http-server.js";
import { openHarness, type Harness } from "../support/harness.js";
import { createContextRepo } from "../support/context-repo.js";
import { waitUntil } from "../support/processes.js";

// Every way a run can end, and the one promise behind them all: the VM is scratched and no lease is left.

const FAST_SWEEP = { VMBUILD_SWEEP_SECONDS: "1", VMBUILD_LEADER_LEASE_SECONDS: "3", VMBUILD_OWNER_LEASE_SECONDS: "3" };

describe("run lifecycle: cancel, timeout, deletion, restart — the VM is always scratched", () => {
  let h: Harness;
  let env: Testenv;
  let cluster: Cluster;
  let controller: ControllerProcess;
  let git: GitHttpServer;
  let repos: string;
  let params: (repo: string, extra?: Record<string, string>) => Record<string, string>;

  beforeAll(async () => {
    h = await openHarness("lifecycle");
    ({ env, cluster, git, repos } = h);
    await createContextRepo(repos, "slow", { Dockerfile: `FROM ${env.baseImage}\nRUN sleep 60\n` });
    await createContextRepo(repos, "short", { Dockerfile: `FROM ${env.baseImage}\nRUN sleep 6\n` });
    await createContextRepo(repos, "quick", { Dockerfile: `FROM ${env.baseImage}\nRUN true\n` });
    params = (repo, extra = {}) => ({
      pool: "builders",
      gitUrl: `${git.url}/${repo}.git`,
      image: `${env.registry.host}/lifecycle/${repo}:1`,
      registrySecret: "registry",
      pullSecret: "registry",
      tlsVerify: "false",
      ...extra,
    });
    controller = await startController(env, { name: "lifecycle", extraEnv: FAST_SWEEP });
  });

  afterAll(async () => {
    await controller?.stop();
    await h?.close();
  });

  it("cancel while queued ends CustomRunCancelled without starting a VM; cancel while building scratches", async () => {
    const ns = await cluster.namespace("cancel");
    await cluster.pool(ns, "builders", 1);
    await cluster.createRun(ns, "first", params("slow"));
    await cluster.waitForReason(ns, "first", ["Building"], 60_000);
    await cluster.createRun(ns, "second", params("quick"));
    const queued = await cluster.waitForReason(ns, "second", ["WaitingForVM"]);
    expect(succeeded(queued)?.message).toBe(`Waiting for a free VM of pool ${ns}/builders.`);

    await cluster.patchRun(ns, "second", { spec: { status: "RunCancelled", statusMessage: "cancelled while queued" } });
    const second = await cluster.waitForRun(ns, "second", 30_000);
    expect(succeeded(second)).toMatchObject({ status: "False", reason: "CustomRunCancelled", message: "cancelled while queued" });
    expect(h.vmisCreated(ns)).toBe(1);

    await cluster.patchRun(ns, "first", { spec: { status: "RunCancelled", statusMessage: "PipelineRun cancelled" } });
    const first = await cluster.waitForRun(ns, "first", 30_000);
    expect(succeeded(first)).toMatchObject({ status: "False", reason: "CustomRunCancelled", message: "PipelineRun cancelled" });
    expect(first.status?.completionTime).toBeTruthy();
    await h.everyVMScratched(ns);
  });

  it("cancel while the VM is starting scratches it", async () => {
    const ns = await cluster.namespace("cancel-start");
    await cluster.pool(ns, "builders", 1, { "sim.vmbuild.dev/boot-delay-ms": "60000" });
    await cluster.createRun(ns, "run", params("quick"));
    await cluster.waitForReason(ns, "run", ["StartingVM"]);
    await waitUntil(async () => h.vmisCreated(ns) === 1, 10_000, () => "no VMI created");
    await cluster.patchRun(ns, "run", { spec: { status: "RunCancelled", statusMessage: "stop" } });
    const run = await cluster.waitForRun(ns, "run", 30_000);
    expect(succeeded(run)).toMatchObject({ reason: "CustomRunCancelled", message: "stop" });
    await h.everyVMScratched(ns);
  });

  it("a run past its timeout ends CustomRunTimedOut and its VM is scratched", async () => {
    const ns = await cluster.namespace("timeout");
    await cluster.pool(ns, "builders", 1);
    await cluster.createRun(ns, "run", params("slow"), { timeout: "8s" });
    const run = await cluster.waitForRun(ns, "run", 60_000);
    expect(succeeded(run)).toMatchObject({ status: "False", reason: "CustomRunTimedOut" });
    expect(succeeded(run)?.message).toMatch(/failed to finish within "8s"/);
    await h.everyVMScratched(ns);
  });

  it("timeouts while queued and while the VM starts end CustomRunTimedOut, the started VM scratched", async () => {
    const ns = await cluster.namespace("timeout-early");
    await cluster.pool(ns, "builders", 1, { "sim.vmbuild.dev/boot-delay-ms": "60000" });
    await cluster.createRun(ns, "starting", params("quick"), { timeout: "4s" });
    await cluster.waitForReason(ns, "starting", ["StartingVM"]);
    await cluster.createRun(ns, "queued", params("quick"), { timeout: "3s" });
    const [starting, queued] = await Promise.all([
      cluster.waitForRun(ns, "starting", 30_000),
      cluster.waitForRun(ns, "queued", 30_000),
    ]);
    expect(succeeded(starting)).toMatchObject({ status: "False", reason: "CustomRunTimedOut" });
    expect(succeeded(queued)).toMatchObject({ status: "False", reason: "CustomRunTimedOut" });
    expect(h.vmisCreated(ns)).toBe(1);
    await h.everyVMScratched(ns);
  });

  it("a VM that never gets ready is scratched, one other VM is tried, then VMNotReady names both", async () => {
    const ns = await cluster.namespace("notready");
    await cluster.pool(ns, "builders", 3, { "sim.vmbuild.dev/never-ready": "true" });
    await cluster.createRun(ns, "run", params("quick", { readyTimeout: "3s" }));
    const run = await cluster.waitForRun(ns, "run", 60_000);
    expect(succeeded(run)).toMatchObject({ status: "False", reason: "VMNotReady" });
    expect(succeeded(run)?.message).toMatch(/builders-0 .*builders-1/);
    expect(h.vmisCreated(ns)).toBe(2);
    await h.everyVMScratched(ns);
  });

  it("a run that waits longer than queueTimeout fails with QueueTimeout", async () => {
    const ns = await cluster.namespace("queue");
    await cluster.pool(ns, "builders", 1);
    await cluster.createRun(ns, "busy", params("slow"));
    await cluster.waitForReason(ns, "busy", ["Building"], 60_000);
    await cluster.createRun(ns, "waiting", params("quick", { queueTimeout: "3s" }));
    const run = await cluster.waitForRun(ns, "waiting", 30_000);
    expect(succeeded(run)).toMatchObject({ status: "False", reason: "QueueTimeout" });
    expect(succeeded(run)?.message).toMatch(/No VM of pool .*builders became free within 3s/);
    await cluster.deleteRun(ns, "busy");
    await cluster.waitForRunGone(ns, "busy", 30_000);
    await h.everyVMScratched(ns);
  });

  it("deleting a run mid-build: the finalizer holds it until the VM is scratched", async () => {
    const ns = await cluster.namespace("delete");
    await cluster.pool(ns, "builders", 1);
    await cluster.createRun(ns, "run", params("slow"));
    await cluster.waitForReason(ns, "run", ["Building"], 60_000);
    await cluster.deleteRun(ns, "run");
    await cluster.waitForRunGone(ns, "run", 30_000);
    expect(unscratchedVMIs(readRecord(env.simStateDir).filter((e) => e.namespace === ns))).toEqual([]);
    expect(await cluster.leases(ns)).toEqual([]);
  });

  it("invalid params fail at once with InvalidParams naming the field, and no VM is touched", async () => {
    const ns = await cluster.namespace("invalid");
    await cluster.pool(ns, "builders", 1);
    await cluster.createRun(ns, "run", { ...params("quick"), platforms: "linux/amd64,linux/arm 64", colour: "blue" });
    const run = await cluster.waitForRun(ns, "run", 30_000);
    expect(succeeded(run)).toMatchObject({ status: "False", reason: "InvalidParams" });
    expect(succeeded(run)?.message).toMatch(/unknown param "colour"/);
    expect(h.vmisCreated(ns)).toBe(0);
  });

  it("a spec.timeout that is no duration fails at once, naming the field, instead of taking the default", async () => {
    const ns = await cluster.namespace("bad-timeout");
    await cluster.pool(ns, "builders", 1);
    await cluster.createRun(ns, "run", params("quick"), { timeout: "1d" });
    const run = await cluster.waitForRun(ns, "run", 30_000);
    expect(succeeded(run)).toMatchObject({ status: "False", reason: "InvalidParams" });
    expect(succeeded(run)?.message).toMatch(/spec is malformed: spec\.timeout: expected a duration/);
    expect(h.vmisCreated(ns)).toBe(0);
    // Tekton's webhook refuses such a run; without it, Tekton's own controller cannot list any CustomRun while
    // this one exists (Go's "unknown unit" error), which later suites that start that controller would meet.
    await cluster.deleteRun(ns, "run");
    await cluster.waitForRunGone(ns, "run", 30_000);
  });

  describe("controller crash", () => {
    it("SIGKILL mid-build: the replica that starts next runs the attempt again on a fresh VM, the first one scratched", async () => {
      const ns = await cluster.namespace("crash");
      await cluster.pool(ns, "builders", 1);
      await cluster.createRun(ns, "run", params("short"));
      const building = await cluster.waitForReason(ns, "run", ["Building"], 60_000);
      const lost = (building.status?.extraFields as { owner?: string } | undefined)?.owner;
      expect(lost).toBeTruthy();
      process.kill(controller.pid, "SIGKILL");
      await controller.exited;
      controller = await startController(env, { name: "lifecycle", extraEnv: FAST_SWEEP });
      const run = await cluster.waitForRun(ns, "run", 90_000);
      expect(succeeded(run)).toMatchObject({ status: "True", reason: "Succeeded" });
      expect(run.status?.extraFields).toMatchObject({ recoveries: 1, attempt: 0 });
      expect(run.status?.retriesStatus ?? []).toEqual([]);
      const events = (await cluster.core.listNamespacedEvent({ namespace: ns })).items;
      const recovering = events.find((e) => e.reason === "Recovering");
      expect(recovering).toMatchObject({ type: "Warning" });
      expect(recovering?.message).toContain(`replica ${lost}`);
      expect(h.vmisCreated(ns)).toBe(2);
      await h.everyVMScratched(ns);
    });

    it("SIGKILL while one run waits in the queue and another's VM boots: both carry on after the restart", async () => {
      const ns = await cluster.namespace("crash-early");
      await cluster.pool(ns, "builders", 1, { "sim.vmbuild.dev/boot-delay-ms": "3000" });
      await cluster.createRun(ns, "booting", params("quick"));
      await cluster.waitForReason(ns, "booting", ["StartingVM"]);
      await cluster.createRun(ns, "waiting", params("quick"));
      await cluster.waitForReason(ns, "waiting", ["WaitingForVM"]);
      process.kill(controller.pid, "SIGKILL");
      await controller.exited;
      controller = await startController(env, { name: "lifecycle", extraEnv: FAST_SWEEP });
      const [booting, waiting] = await Promise.all([
        cluster.waitForRun(ns, "booting", 60_000),
        cluster.waitForRun(ns, "waiting", 60_000),
      ]);
      expect(succeeded(booting)?.reason).toBe("Succeeded");
      expect(succeeded(waiting)?.reason).toBe("Succeeded");
      // The lost replica may have begun the build on the booting run's VM: it is scratched, not trusted.
      expect(booting.status?.extraFields).toMatchObject({ recoveries: 1 });
      expect(h.vmisCreated(ns)).toBe(3);
      await h.everyVMScratched(ns);
    });

    it("SIGKILL mid-build with retries left: the run again does not use them", async () => {
      const ns = await cluster.namespace("retry");
      await cluster.pool(ns, "builders", 1);
      await cluster.createRun(ns, "run", params("short"), { retries: 1 });
      await cluster.waitForReason(ns, "run", ["Building"], 60_000);
      process.kill(controller.pid, "SIGKILL");
      await controller.exited;
      controller = await startController(env, { name: "lifecycle", extraEnv: FAST_SWEEP });
      const run = await cluster.waitForRun(ns, "run", 90_000);
      expect(succeeded(run)).toMatchObject({ status: "True", reason: "Succeeded" });
      expect(run.status?.retriesStatus ?? []).toEqual([]);
      expect(run.status?.extraFields).toMatchObject({ recoveries: 1, attempt: 0 });
      expect(h.vmisCreated(ns)).toBe(2);
      await h.everyVMScratched(ns);
    });

    it("a run deleted while the controller is down still ends with its VM scratched", async () => {
      const ns = await cluster.namespace("down");
      await cluster.pool(ns, "builders", 1);
      await cluster.createRun(ns, "run", params("slow"));
      await cluster.waitForReason(ns, "run", ["Building"], 60_000);
      process.kill(controller.pid, "SIGKILL");
      await controller.exited;
      await cluster.deleteRun(ns, "run");
      controller = await startController(env, { name: "lifecycle", extraEnv: FAST_SWEEP });
      await cluster.waitForRunGone(ns, "run", 60_000);
      await h.everyVMScratched(ns);
    });

    it("the sweeper scratches a running VM whose lease no live run stands behind", async () => {
      const ns = await cluster.namespace("sweep");
      await cluster.pool(ns, "builders", 1);
      await cluster.custom.patchNamespacedCustomObject(
        {
          group: "kubevirt.io",
          version: "v1",
          plural: "virtualmachines",
          namespace: ns,
          name: "builders-0",
          body: { spec: { runStrategy: "Always" } },
        },
        mergePatch,
      );
      await cluster.createVMLease(ns, "builders", "builders-0", `${ns}/ghost/00000000-0000-0000-0000-000000000000/0`);
      await waitUntil(async () => h.vmisCreated(ns) === 1, 10_000, () => "VM did not start");
      await h.everyVMScratched(ns);
      const vm = (await cluster.vms(ns))[0] as { spec?: { runStrategy?: string } };
      expect(vm.spec?.runStrategy).toBe("Halted");
    });
  });
});
