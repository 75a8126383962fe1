import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mergePatch } from "../../src/kube/client.js";
import type { Testenv } from "../../hack/testenv/index.js";
import { readRecord, unscratchedVMIs } from "../../hack/kubevirt-sim/record.js";
import { holderIdentity } from "../../src/lease/holder.js";
import { poll } from "../../hack/testenv/wait.js";
import { Cluster, succeeded, type CustomRunObject } from "../support/cluster.js";
import { startController } from "../support/controller.js";
import type { GitHttpServer } from "../support/git-http-server.js";
import { openHarness, type Harness } from "../support/harness.js";
import { createContextRepo } from "../support/context-repo.js";
import { overlapping, runsWithoutTheirLease, watchLeases, type LeaseInterval } from "../support/lease-watch.js";

// Leasing under load: two replicas racing without leader election never lease one VM twice, and a busy
// namespace does not starve another.

describe("leasing under load", () => {
  let h: Harness;
  let env: Testenv;
  let cluster: Cluster;
  let git: GitHttpServer;

  beforeAll(async () => {
    h = await openHarness("leasing");
    ({ env, cluster, git } = h);
    await createContextRepo(h.repos, "tiny", { Dockerfile: `FROM ${env.baseImage}\n` });
  });

  afterAll(async () => {
    await h?.close();
  });

  const params = (pool: string, image: string) => ({
    pool,
    gitUrl: `${git.url}/tiny.git`,
    image: `${env.registry.host}/leasing/${image}:1`,
    registrySecret: "registry",
    pullSecret: "registry",
    tlsVerify: "false",
  });

  /** Every run's status names a VM whose lease it held; no VM was ever leased to two holders at once. */
  const noDoubleLeases = (runs: CustomRunObject[], leases: LeaseInterval[]) => {
    expect(overlapping(leases)).toEqual([]);
    expect(runsWithoutTheirLease(runs, leases)).toEqual([]);
  };

  const leasesReleased = (ns: string, timeoutMs: number, what: string) =>
    poll(async () => ((await cluster.leases(ns)).length === 0 ? true : undefined), { timeoutMs, intervalMs: 200, what });

  /**
   * `settleMs`: how long the VMs leased after their run ended (by a replica deciding on an older copy of it) may take
   * to be scratched and their leases released, by the replicas still running, before the record is read.
   */
  const raceOver = async (name: string, runs: number, extraEnv: NodeJS.ProcessEnv, settleMs = 0) => {
    const pair = [
      await startController(env, { name: `${name}-a`, extraEnv }),
      await startController(env, { name: `${name}-b`, extraEnv }),
    ];
    try {
      const ns = await cluster.namespace(name);
      await cluster.pool(ns, "builders", 3);
      const watch = await watchLeases(env.adminKubeconfig, ns);
      const names = Array.from({ length: runs }, (_, i) => `run-${String(i).padStart(2, "0")}`);
      await Promise.all(names.map((n) => cluster.createRun(ns, n, params("builders", `${ns}-${n}`))));
      const done = await Promise.all(names.map((n) => cluster.waitForRun(ns, n, 400_000)));
      if (settleMs > 0) await leasesReleased(ns, settleMs, "every lease released after the runs ended");
      const record = readRecord(env.simStateDir).filter((e) => e.namespace === ns);
      watch.stop();
      return { ns, done, record, leases: watch.intervals() };
    } finally {
      await Promise.all(pair.map((c) => c.stop()));
    }
  };

  it("two replicas with leader election over 50 runs on a 3-VM pool: one schedules, both build, all succeed, zero double leases", { timeout: 600_000 }, async () => {
    const { ns, done, record, leases } = await raceOver("race", 50, {});
    // Each run that did not succeed, with what its condition says.
    const notSucceeded = done
      .filter((r) => succeeded(r)?.reason !== "Succeeded")
      .map((r) => `${r.metadata?.name}: ${succeeded(r)?.reason}: ${succeeded(r)?.message}`);
    expect(notSucceeded).toEqual([]);
    expect(done).toHaveLength(50);
    noDoubleLeases(done, leases);
    expect(record.filter((e) => e.event === "vmi-created")).toHaveLength(50);
    expect(unscratchedVMIs(record)).toEqual([]);
    expect(await cluster.leases(ns)).toEqual([]);
  });

  it("the safety net: two replicas that both act (no leader election) still never lease one VM to two runs", { timeout: 600_000 }, async () => {
    // The sweeper (at most hourly here) is not what scratches a VM leased for a run that had already ended: the run
    // gives it back itself, in seconds.
    const { ns, done, record, leases } = await raceOver(
      "unled",
      20,
      { VMBUILD_LEADER_ELECTION: "false", VMBUILD_SWEEP_SECONDS: "3600" },
      20_000,
    );
    // Both replicas drive the same runs, so some may fail; none may share a VM, and every VM is scratched.
    expect(done.every((r) => ["True", "False"].includes(succeeded(r)?.status ?? ""))).toBe(true);
    noDoubleLeases(done, leases);
    expect(unscratchedVMIs(record)).toEqual([]);
    expect(await cluster.leases(ns)).toEqual([]);
  });

  it("a VM leased for a run after it ended (by a replica behind) is scratched by the run itself, not left to the sweeper", { timeout: 120_000 }, async () => {
    const controller = await startController(env, { name: "behind", extraEnv: { VMBUILD_SWEEP_SECONDS: "3600" } });
    try {
      const ns = await cluster.namespace("behind");
      await cluster.pool(ns, "builders", 2);
      await cluster.createRun(ns, "done", params("builders", `${ns}-done`));
      const done = await cluster.waitForRun(ns, "done", 120_000);
      expect(succeeded(done)?.reason).toBe("Succeeded");
      const built = (done.status?.extraFields as { slots?: { vm?: string }[] } | undefined)?.slots?.[0]?.vm;
      const stray = built === "builders-0" ? "builders-1" : "builders-0";
      // What a replica deciding on a copy of the run from before it ended does: lease a VM for it, then start it.
      const holder = holderIdentity({ namespace: ns, name: "done", uid: done.metadata?.uid ?? "" }, 0);
      await cluster.createVMLease(ns, "builders", stray, holder);
      await cluster.custom.patchNamespacedCustomObject(
        { group: "kubevirt.io", version: "v1", plural: "virtualmachines", namespace: ns, name: stray, body: { spec: { runStrategy: "Always" } } },
        mergePatch,
      );
      await leasesReleased(ns, 30_000, "the stray VM's lease released");
      expect(unscratchedVMIs(readRecord(env.simStateDir).filter((e) => e.namespace === ns))).toEqual([]);
      expect(await cluster.vmis(ns)).toEqual([]);
      const vms = (await cluster.vms(ns)) as { metadata?: { name?: string }; spec?: { runStrategy?: string } }[];
      expect(vms.find((vm) => vm.metadata?.name === stray)?.spec?.runStrategy).toBe("Halted");
      const after = await cluster.getRun(ns, "done");
      expect(after.status).toEqual(done.status);
    } finally {
      await controller.stop();
    }
  });

  it("fairness: after namespace A queues 20 runs, namespace B's one run gets a VM within two lease turns", { timeout: 600_000 }, async () => {
    const controller = await startController(env, { name: "fair" });
    try {
      await fairness();
    } finally {
      await controller.stop();
    }
  });

  async function fairness(): Promise<void> {
    const pools = await cluster.namespace("pools");
    await cluster.pool(pools, "shared", 1, {});
    await cluster.custom.patchNamespacedCustomObject(
      {
        group: "pool.kubevirt.io",
        version: "v1beta1",
        plural: "virtualmachinepools",
        namespace: pools,
        name: "shared",
        body: { metadata: { annotations: { "vmbuild.dev/allowed-namespaces": "*" } } },
      },
      mergePatch,
    );
    const a = await cluster.namespace("team-a");
    const b = await cluster.namespace("team-b");
    const aNames = Array.from({ length: 20 }, (_, i) => `a-${String(i).padStart(2, "0")}`);
    for (const n of aNames) await cluster.createRun(a, n, params(`${pools}/shared`, `${a}-${n}`));
    await cluster.waitForReason(a, aNames[19] ?? "", ["WaitingForVM"], 30_000);
    const bCreated = Date.now();
    await cluster.createRun(b, "b-00", params(`${pools}/shared`, `${b}-b-00`));

    const bRun = await cluster.waitForRun(b, "b-00", 300_000);
    const aRuns = await Promise.all(aNames.map((n) => cluster.waitForRun(a, n, 300_000)));
    expect(succeeded(bRun)?.reason).toBe("Succeeded");
    const leasedAt = (r: CustomRunObject) => Date.parse(String((r.status?.extraFields ?? {}).leasedAt ?? ""));
    const bLeased = leasedAt(bRun);
    // Lease turns that went to A after B queued and before B got the VM.
    const turnsBeforeB = aRuns.filter((r) => leasedAt(r) > bCreated && leasedAt(r) < bLeased).length;
    expect(turnsBeforeB).toBeLessThanOrEqual(2);
    expect(aRuns.every((r) => succeeded(r)?.reason === "Succeeded")).toBe(true);
  }
});
