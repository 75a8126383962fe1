import { describe, expect, it } from "vitest";
import type { KubernetesObject, V1Lease } from "@kubernetes/client-node";
import { readRecord, type RecordEntry } from "../../hack/kubevirt-sim/record.js";
import { result, succeeded } from "../support/cluster.js";
import { controllerSuite } from "../support/controller-suite.js";
import { createContextRepo } from "../support/context-repo.js";
import { waitUntil } from "../support/processes.js";

// Warm pools: the keeper boots VMs ahead of demand under its own Lease holder; a run takes one by swapping the
// holder; after the scratch the VM boots again from a fresh disk and rejoins the warm set; above warm-min, VMs idle
// past warm-idle are stopped.

const BOOT_MS = 3000;

describe("a warm pool (warm-min 1, warm-max 2, warm-idle 20s) with 3 s boots", () => {
  const s = controllerSuite("warm", async ({ cluster, ns }) => {
    await cluster.pool(ns, "builders", 3, { "sim.vmbuild.dev/boot-delay-ms": String(BOOT_MS) }, {
      annotations: { "vmbuild.dev/warm-min": "1", "vmbuild.dev/warm-max": "2", "vmbuild.dev/warm-idle": "20s" },
    });
  });

  /** Lease holders as last seen, for failure messages. */
  let seen = "";
  const warmVMs = async () => {
    const leases = (await s.cluster.leases(s.ns)) as V1Lease[];
    seen = JSON.stringify(leases.map((l) => `${vmOf(l)}: ${l.spec?.holderIdentity ?? ""}`));
    return leases.filter((l) => l.spec?.holderIdentity === "vmbuild/warm").map(vmOf);
  };
  const readyVMIs = async () =>
    (await s.cluster.vmis(s.ns))
      .filter((v) => (v as { status?: { conditions?: { type: string; status: string }[] } }).status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"))
      .map((v) => v.metadata?.name ?? "");
  const record = (vm: string): RecordEntry[] => readRecord(s.env.simStateDir).filter((e) => e.namespace === s.ns && e.vm === vm);

  it("boots warm-min VMs ahead of demand, and a run takes a booted one", async () => {
    await waitUntil(async () => {
      const warm = await warmVMs();
      return warm.length === 1 && (await readyVMIs()).includes(warm[0] ?? "");
    }, 60_000, () => `no warm VM got ready; leases: ${seen}`);
    const [warm] = await warmVMs();

    await createContextRepo(s.repos, "app", { Dockerfile: `FROM ${s.env.baseImage}\nRUN echo built\n` });
    await s.cluster.createRun(s.ns, "warm-run", {
      pool: "builders",
      gitUrl: `${s.git.url}/app.git`,
      image: `${s.env.registry.host}/${s.ns}/app:1`,
      platforms: "linux/amd64",
      registrySecret: "registry",
      pullSecret: "registry",
      tlsVerify: "false",
    });
    const run = await s.cluster.waitForRun(s.ns, "warm-run", 120_000);
    expect(succeeded(run)).toMatchObject({ status: "True", reason: "Succeeded" });
    expect(result(run, "BUILD_VM")).toBe(`${s.ns}/${warm}`);
    // The VM was booted and ready before the run leased it: the run never waited for a boot.
    const leasedAt = (run.status?.extraFields as { leasedAt?: string }).leasedAt ?? "";
    const readyBefore = record(warm ?? "").filter((e) => e.event === "ready" && e.ts < leasedAt);
    expect(readyBefore.length).toBe(1);
  });

  it("boots the scratched VM again from a fresh disk, and it rejoins the warm set", async () => {
    const used = (await s.cluster.getRun(s.ns, "warm-run")).status?.results?.find((r) => r.name === "BUILD_VM")?.value.split("/")[1] ?? "";
    await waitUntil(async () => (await warmVMs()).includes(used) && (await readyVMIs()).includes(used), 60_000, () =>
      `VM ${used} did not rejoin the warm set; leases: ${seen}`,
    );
    const events = record(used);
    const scratched = events.findIndex((e) => e.event === "scratched");
    expect(scratched).toBeGreaterThan(-1);
    // Per VM instance its disk (the stand-in may start one instance's podman twice, on the same disk).
    const disks = new Map(events.filter((e) => e.event === "podman-started").map((e) => [e.vmi, e.storageDir]));
    expect(disks.size).toBeGreaterThanOrEqual(2);
    // A new instance with its own storage: nothing of the build survives into the next one.
    expect(new Set(disks.values()).size).toBe(disks.size);
    expect(events.slice(scratched).some((e) => e.event === "ready")).toBe(true);
  });

  it("stops warm VMs above warm-min once they idle past warm-idle", async () => {
    await waitUntil(async () => (await warmVMs()).length === 2, 30_000, () => `expected 2 warm VMs; leases: ${seen}`);
    let vmis = 0;
    await waitUntil(
      async () => {
        vmis = (await s.cluster.vmis(s.ns)).length;
        return (await warmVMs()).length === 1 && (await s.cluster.leases(s.ns)).length === 1 && vmis === 1;
      },
      45_000,
      () => `expected the surplus warm VM retired; leases: ${seen}, VMIs: ${vmis}`,
    );
  });
});

function vmOf(lease: KubernetesObject | V1Lease): string {
  return lease.metadata?.labels?.["vmbuild.dev/vm"] ?? "";
}
