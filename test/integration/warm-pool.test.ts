import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubernetesObject, V1Lease } from "@kubernetes/client-node";
import type { Testenv } from "../../hack/testenv/index.js";
import { readRecord, type RecordEntry } from "../../hack/kubevirt-sim/record.js";
import { Cluster, result, succeeded } from "../support/cluster.js";
import { startController, type ControllerProcess } from "../support/controller.js";
import type { GitHttpServer } from "../support/git-http-server.js";
import { openHarness, type Harness } from "../support/harness.js";
import { createContextRepo } from "../support/context-repo.js";
import { waitUntil } from "../support/processes.js";

// Warm pools: the keeper boots VMs ahead of demand under its own Lease holder; a run takes one by swapping the
// holder; after the scratch the VM boots again from a fresh disk and rejoins the warm set; above warm-min, VMs idle
// past warm-idle are stopped.

const BOOT_MS = 3000;

describe("a warm pool (warm-min 1, warm-max 2, warm-idle 20s) with 3 s boots", () => {
  let h: Harness;
  let env: Testenv;
  let cluster: Cluster;
  let controller: ControllerProcess;
  let git: GitHttpServer;
  let repos: string;
  let ns: string;

  beforeAll(async () => {
    h = await openHarness("warm");
    ({ env, cluster, git, repos } = h);
    controller = await startController(env, { name: "warm-test" });
    ns = await cluster.namespace("warm");
    await cluster.pool(ns, "builders", 3, { "sim.vmbuild.dev/boot-delay-ms": String(BOOT_MS) }, {
      annotations: { "vmbuild.dev/warm-min": "1", "vmbuild.dev/warm-max": "2", "vmbuild.dev/warm-idle": "20s" },
    });
  });

  afterAll(async () => {
    await controller?.stop();
    await h?.close();
  });

  /** Lease holders as last seen, for failure messages. */
  let seen = "";
  const warmVMs = async () => {
    const leases = (await cluster.leases(ns)) as V1Lease[];
    seen = JSON.stringify(leases.map((l) => `${vmOf(l)}: ${l.spec?.holderIdentity ?? ""}`));
    return leases.filter((l) => l.spec?.holderIdentity === "vmbuild/warm").map(vmOf);
  };
  const readyVMIs = async () =>
    (await cluster.vmis(ns))
      .filter((v) => (v as { status?: { conditions?: { type: string; status: string }[] } }).status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"))
      .map((v) => v.metadata?.name ?? "");
  const record = (vm: string): RecordEntry[] => readRecord(env.simStateDir).filter((e) => e.namespace === ns && e.vm === vm);

  it("boots warm-min VMs ahead of demand, and a run takes a booted one", async () => {
    await waitUntil(async () => {
      const warm = await warmVMs();
      return warm.length === 1 && (await readyVMIs()).includes(warm[0] ?? "");
    }, 60_000, () => `no warm VM got ready; leases: ${seen}`);
    const [warm] = await warmVMs();

    await createContextRepo(repos, "app", { Dockerfile: `FROM ${env.baseImage}\nRUN echo built\n` });
    await cluster.createRun(ns, "warm-run", {
      pool: "builders",
      gitUrl: `${git.url}/app.git`,
      image: `${env.registry.host}/${ns}/app:1`,
      platforms: "linux/amd64",
      registrySecret: "registry",
      tlsVerify: "false",
    });
    const run = await cluster.waitForRun(ns, "warm-run", 120_000);
    expect(succeeded(run)).toMatchObject({ status: "True", reason: "Succeeded" });
    expect(result(run, "BUILD_VM")).toBe(`${ns}/${warm}`);
    // The VM was booted and ready before the run leased it: the run never waited for a boot.
    const leasedAt = (run.status?.extraFields as { leasedAt?: string }).leasedAt ?? "";
    const readyBefore = record(warm ?? "").filter((e) => e.event === "ready" && e.ts < leasedAt);
    expect(readyBefore.length).toBe(1);
  });

  it("boots the scratched VM again from a fresh disk, and it rejoins the warm set", async () => {
    const used = (await cluster.getRun(ns, "warm-run")).status?.results?.find((r) => r.name === "BUILD_VM")?.value.split("/")[1] ?? "";
    await waitUntil(async () => (await warmVMs()).includes(used) && (await readyVMIs()).includes(used), 60_000, () =>
      `VM ${used} did not rejoin the warm set; leases: ${seen}`,
    );
    const events = record(used);
    const scratched = events.findIndex((e) => e.event === "scratched");
    expect(scratched).toBeGreaterThan(-1);
    const disks = events.filter((e) => e.event === "podman-started").map((e) => e.storageDir);
    expect(disks.length).toBeGreaterThanOrEqual(2);
    // A new instance with its own storage: nothing of the build survives into the next one.
    expect(new Set(disks).size).toBe(disks.length);
    expect(events.slice(scratched).some((e) => e.event === "ready")).toBe(true);
  });

  it("stops warm VMs above warm-min once they idle past warm-idle", async () => {
    await waitUntil(async () => (await warmVMs()).length === 2, 30_000, () => `expected 2 warm VMs; leases: ${seen}`);
    let vmis = 0;
    await waitUntil(
      async () => {
        vmis = (await cluster.vmis(ns)).length;
        return (await warmVMs()).length === 1 && (await cluster.leases(ns)).length === 1 && vmis === 1;
      },
      45_000,
      () => `expected the surplus warm VM retired; leases: ${seen}, VMIs: ${vmis}`,
    );
  });
});

function vmOf(lease: KubernetesObject | V1Lease): string {
  return lease.metadata?.labels?.["vmbuild.dev/vm"] ?? "";
}
