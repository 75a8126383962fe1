import { describe, expect, it } from "vitest";
import { readRecord, unscratchedVMIs } from "../../hack/kubevirt-sim/record.js";
import { leaseName } from "../../src/lease/holder.js";
import { succeeded } from "../support/cluster.js";
import { controllerSuite } from "../support/controller-suite.js";
import { createContextRepo } from "../support/context-repo.js";

// What a run depends on may vanish under it (a person, a cleanup tool): the run still reaches an end, and its VM
// is still scratched.

describe("a dependency deleted mid-run", () => {
  const s = controllerSuite("vanishing", async ({ cluster, ns, repos, env }) => {
    await cluster.pool(ns, "builders", 1);
    await createContextRepo(repos, "short", { Dockerfile: `FROM ${env.baseImage}\nRUN sleep 4\n` });
  });
  const params = () => ({
    pool: "builders",
    gitUrl: `${s.git.url}/short.git`,
    image: `${s.env.registry.host}/${s.ns}/short:1`,
    platforms: "linux/amd64",
    registrySecret: "registry",
    tlsVerify: "false",
  });

  it("its VM Lease: the run ends, and the next run takes the VM", async () => {
    await s.cluster.createRun(s.ns, "first", params());
    const building = await s.cluster.waitForReason(s.ns, "first", ["Building"], 60_000);
    const vm = (building.status?.extraFields as { slots: { vm: string }[] }).slots[0]?.vm ?? "";
    await s.cluster.coordination.deleteNamespacedLease({ name: leaseName(vm), namespace: s.ns });
    await s.cluster.createRun(s.ns, "second", params());
    // The first run's scratch frees the VM for the second; the VM's events then go to the second run's lease.
    const second = await s.cluster.waitForRun(s.ns, "second", 90_000);
    expect(succeeded(second)?.reason).toBe("Succeeded");
    const first = await s.cluster.waitForRun(s.ns, "first", 30_000);
    expect(succeeded(first)?.reason).toBe("Succeeded");
    expect(unscratchedVMIs(readRecord(s.env.simStateDir).filter((e) => e.namespace === s.ns))).toEqual([]);
    expect(await s.cluster.leases(s.ns)).toEqual([]);
  });
});
