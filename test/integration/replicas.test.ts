import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Testenv } from "../../hack/testenv/index.js";
import { readRecord, unscratchedVMIs } from "../../hack/kubevirt-sim/record.js";
import { Cluster, succeeded, type CustomRunObject } from "../support/cluster.js";
import { startController, type ControllerProcess } from "../support/controller.js";
import { createContextRepo } from "../support/context-repo.js";
import { openHarness, type Harness } from "../support/harness.js";
import { overlapping, runsWithoutTheirLease, watchLeases } from "../support/lease-watch.js";
import { waitUntil } from "../support/processes.js";

// Every replica builds, and a build outlives the replica that runs it: two replicas share the runs; a rollout
// (each replica replaced in turn, SIGTERM then a new one, as a Deployment does) fails no build and spends no
// retry; a replica SIGKILLed in any phase of its run costs one transparent re-run on a fresh VM.

/** The default leases: shorter ones on this 2-core machine make renewals late under 20 builds. */
const REPLICA_ENV = { VMBUILD_SWEEP_SECONDS: "2", VMBUILD_LEADER_LEASE_SECONDS: "15", VMBUILD_OWNER_LEASE_SECONDS: "15" };
const REPLICA_LABEL = "vmbuild.dev/replica";

interface RunState {
  owner?: string;
  recoveries?: number;
}
const stateOf = (run: CustomRunObject) => (run.status?.extraFields ?? {}) as RunState;
/** Identities are `<HOSTNAME>-<pid>-<random>`: the process a run's owner names. */
const ownedBy = (run: CustomRunObject, p: ControllerProcess) => stateOf(run).owner?.startsWith(`vmbuild-${p.pid}-`) === true;

describe("replicas: every replica builds, builds outlive their replica", () => {
  let h: Harness;
  let env: Testenv;
  let cluster: Cluster;
  const replicas: ControllerProcess[] = [];
  const live = new Set<ControllerProcess>();
  let count = 0;

  const start = async () => {
    const p = await startController(env, { name: `replicas-${count++}`, extraEnv: REPLICA_ENV });
    replicas.push(p);
    live.add(p);
    void p.exited.then(() => live.delete(p));
    // Given runs only once the leader has seen it renew its Lease (a Lease seen once may be a dead replica's).
    await waitUntil(
      async () => {
        const leases = await cluster.coordination.listNamespacedLease({ namespace: "vmbuild-system", labelSelector: REPLICA_LABEL });
        return leases.items.some((l) => l.spec?.holderIdentity?.startsWith(`vmbuild-${p.pid}-`));
      },
      20_000,
      () => `replica ${p.pid} wrote no Lease`,
    );
    await new Promise((resolve) => setTimeout(resolve, 6_000));
    return p;
  };
  const params = (ns: string, repo: string, name: string) => ({
    pool: "builders",
    gitUrl: `${h.git.url}/${repo}.git`,
    image: `${env.registry.host}/${ns}/${name}:1`,
    registrySecret: "registry",
    pullSecret: "registry",
    tlsVerify: "false",
  });

  beforeAll(async () => {
    h = await openHarness("replicas");
    ({ env, cluster } = h);
    for (const seconds of [20, 30, 40]) {
      await createContextRepo(h.repos, `sleep${seconds}`, { Dockerfile: `FROM ${env.baseImage}\nRUN sleep ${seconds}\n` });
    }
    await createContextRepo(h.repos, "quick", { Dockerfile: `FROM ${env.baseImage}\nRUN true\n` });
    await createContextRepo(h.repos, "big", { Dockerfile: `FROM ${env.baseImage}\nRUN head -c 100000000 /dev/urandom > /blob\n` });
  });

  afterAll(async () => {
    await Promise.all(replicas.map((p) => p.stop(5_000)));
    await h?.close();
  });

  it("spread over 2 replicas, then a rolling restart with 20 builds in flight: 20 Succeeded, no re-run, no retry", { timeout: 600_000 }, async () => {
    const a = await start();
    const b = await start();
    const ns = await cluster.namespace("rollout");
    await cluster.pool(ns, "builders", 20);
    const watch = await watchLeases(env.adminKubeconfig, ns);
    const names = Array.from({ length: 20 }, (_, i) => `run-${String(i).padStart(2, "0")}`);
    for (const [i, name] of names.entries()) await cluster.createRun(ns, name, params(ns, `sleep${[20, 30, 40][i % 3]}`, name), { retries: 1 });

    let runs: CustomRunObject[] = [];
    await waitUntil(
      async () => {
        runs = await cluster.listRuns(ns);
        return runs.filter((r) => succeeded(r)?.reason === "Building").length === 20;
      },
      180_000,
      () => `building: ${runs.filter((r) => succeeded(r)?.reason === "Building").length} of 20`,
    );
    const onA = runs.filter((r) => ownedBy(r, a)).length;
    const onB = runs.filter((r) => ownedBy(r, b)).length;
    process.stdout.write(`spread: replica a executes ${onA} of 20 builds, replica b ${onB}\n`);
    expect(onA + onB).toBe(20);
    expect(onA).toBeGreaterThanOrEqual(7);
    expect(onA).toBeLessThanOrEqual(13);

    // The rollout, as a Deployment (maxSurge 1, maxUnavailable 0) does it: a replacement, once ready, then SIGTERM
    // to an old pod, without waiting for its drain to end; then the same for the other.
    const drains: Promise<number>[] = [];
    for (const old of [a, b]) {
      await start();
      const inFlight = (await cluster.listRuns(ns)).filter((r) => ownedBy(r, old) && succeeded(r)?.status === "Unknown").length;
      expect(inFlight, `replica ${old.pid} has no build left to drain`).toBeGreaterThan(0);
      const termAt = Date.now();
      process.kill(old.pid, "SIGTERM");
      await waitUntil(async () => (await fetch(`${old.url}/readyz`).catch(() => undefined))?.status !== 200, 5_000, () => "still ready while draining");
      drains.push(
        Promise.race([
          old.exited.then(() => Date.now() - termAt),
          new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`replica ${old.pid} did not finish draining`)), 120_000)),
        ]),
      );
      process.stdout.write(`rollout: SIGTERM to a replica executing ${inFlight} builds\n`);
    }
    const took = await Promise.all(drains);
    process.stdout.write(`rollout: drains took ${took.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(", ")}\n`);
    for (const old of [a, b]) expect(old.output()).toMatch(/"drained; shutting down"/);

    const done = await Promise.all(names.map((n) => cluster.waitForRun(ns, n, 180_000)));
    watch.stop();
    expect(done.map((r) => succeeded(r)?.reason)).toEqual(names.map(() => "Succeeded"));
    expect(done.flatMap((r) => r.status?.retriesStatus ?? [])).toEqual([]);
    expect(done.filter((r) => stateOf(r).recoveries)).toEqual([]);
    expect(overlapping(watch.intervals())).toEqual([]);
    expect(runsWithoutTheirLease(done, watch.intervals())).toEqual([]);
    await h.everyVMScratched(ns);
    expect(unscratchedVMIs(readRecord(env.simStateDir).filter((e) => e.namespace === ns))).toEqual([]);
  });

  describe("SIGKILL of the replica executing the run, in each phase", () => {
    const cells: { phase: string; reasons: string[]; repo: string; boot?: string; recoveries: number }[] = [
      { phase: "starting", reasons: ["StartingVM"], repo: "quick", boot: "8000", recoveries: 1 },
      { phase: "building", reasons: ["Building"], repo: "sleep20", recoveries: 1 },
      { phase: "pushing", reasons: ["Pushing"], repo: "big", recoveries: 1 },
      // The outcome is recorded: the adopter finishes the scratch and writes it.
      { phase: "scratching", reasons: ["Scratching"], repo: "quick", recoveries: 0 },
    ];
    for (const cell of cells) {
      it(`${cell.phase}: Succeeded through ${cell.recoveries} transparent re-run(s), retries untouched, the VM scratched`, { timeout: 300_000 }, async () => {
        while (live.size < 2) await start();
        const ns = await cluster.namespace(`kill-${cell.phase}`);
        await cluster.pool(ns, "builders", 2, cell.boot ? { "sim.vmbuild.dev/boot-delay-ms": cell.boot } : {});
        await cluster.createRun(ns, "run", params(ns, cell.repo, "run"), { retries: 1 });
        const caught = await cluster.watchForReason(ns, "run", cell.reasons, 120_000);
        const owner = [...live].find((p) => ownedBy(caught, p));
        expect(owner, `owner ${stateOf(caught).owner} is not a live replica`).toBeDefined();
        process.kill(owner!.pid, "SIGKILL");
        await owner!.exited;
        const killedAt = Date.now();
        const run = await cluster.waitForRun(ns, "run", 180_000);
        process.stdout.write(`kill × ${cell.phase}: ${succeeded(run)?.reason} ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill\n`);
        expect(succeeded(run)).toMatchObject({ status: "True", reason: "Succeeded" });
        expect(run.status?.retriesStatus ?? []).toEqual([]);
        expect(stateOf(run).recoveries ?? 0).toBe(cell.recoveries);
        await h.everyVMScratched(ns);
        expect(await cluster.leases(ns)).toEqual([]);
      });
    }
  });
});
