import { afterAll, describe, expect, it } from "vitest";
import { readRecord, unscratchedVMIs } from "../../hack/kubevirt-sim/record.js";
import { jsonPatch, mergePatch } from "../../src/kube/client.js";
import { leaseName } from "../../src/lease/holder.js";
import { SCRATCH_RECHECK_MS } from "../../src/reconcile/decide/scratch.js";
import { succeeded, type Cluster, type CustomRunObject } from "../support/cluster.js";
import { controllerSuite, type ControllerSuite } from "../support/controller-suite.js";
import { createContextRepo } from "../support/context-repo.js";
import { waitUntil } from "../support/processes.js";

// What a run depends on may vanish under it (a person, a cleanup tool): the run still reaches an end, and every VM
// instance it started is still scratched, and no VM Lease is left behind.
//
// The matrix: each dependency (its VM Lease, VM, VMI, the VirtualMachinePool, the registry Secret) deleted in each
// phase (Queued, Starting, Building, Scratching). One controller per phase, one fresh namespace and pool per cell,
// the cells of a phase at once. Cells that do not apply:
// - Queued × Lease, VM, VMI: a queued run holds no Lease, VM or VMI (deleting a VM of its pool only changes what
//   it waits for, which queueTimeout bounds).
// - Scratching × VMI: scratching is what deletes the VMI; deleting it again changes nothing.
// The Secret is read once, when the build job starts (as soon as the VMs are leased, while they boot): deleted before
// that (Queued) the run fails InvalidSecret; deleted later the build goes on with what it read.
//
// Bound: BOUND_MS (40 s) from the deletion to the run's end. A run that goes on still has a boot (BOOT_DELAY_MS, 8 s)
// and a build (≤ 10 s) ahead; a run no event names looks again after SCRATCH_RECHECK_MS (10 s); readyTimeout and
// queueTimeout are short here (25 s, 30 s) so that a wrong turn (another VM tried, a wait for one) still ends within
// the bound, not after their defaults (10m, 30m). Measured: ≤ 12 s, the build's own 10 s included.

const BOOT_DELAY_MS = 8_000;
const READY_TIMEOUT = "25s";
const QUEUE_TIMEOUT = "30s";
const BOUND_MS = 40_000;
if (SCRATCH_RECHECK_MS * 2 > BOUND_MS) throw new Error("BOUND_MS must leave room for two scratch rechecks");

type Phase = "Queued" | "Starting" | "Building" | "Scratching";
type Dependency = "Lease" | "VM" | "VMI" | "pool" | "Secret";

interface Cell {
  dependency: Dependency;
  /** The run's final reason (any of these), and what its message must say. */
  ends: string[];
  message?: RegExp;
}

const BUILD_CUT_OFF =
  /^(VM builders-0('s instance (is being deleted|was deleted)| was deleted) during the build: )?podman \S+ \S+ at ssh:\/\/root@[\d.]+\/run\/podman\/podman\.sock: /;

/** Every cell that applies, with how the run ends. */
const MATRIX: Record<Phase, Cell[]> = {
  Queued: [
    { dependency: "pool", ends: ["PoolNotFound"], message: /VirtualMachinePool .*builders not found/ },
    { dependency: "Secret", ends: ["InvalidSecret"], message: /Secret .*registry/ },
  ],
  Starting: [
    // No Lease: the run still owns the VM by its status (no one else leases a running VM) and goes on.
    { dependency: "Lease", ends: ["Succeeded"] },
    // Not a VM that failed to boot: the run queues again and takes the pool's new VM of that name.
    { dependency: "VM", ends: ["Succeeded"] },
    // The VM starts a new instance, which boots in time.
    { dependency: "VMI", ends: ["Succeeded"] },
    { dependency: "pool", ends: ["PoolNotFound"], message: /builders not found/ },
    // The job reads the Secret as it starts, while the VM boots: deleted before that read, InvalidSecret.
    { dependency: "Secret", ends: ["Succeeded", "InvalidSecret"] },
  ],
  Building: [
    { dependency: "Lease", ends: ["Succeeded"] },
    // The build's podman dies with its instance. The message names the deletion first when the informer has
    // shown it by the time the job's failure is decided on (the stand-in kills podman as it sees the deletion).
    { dependency: "VM", ends: ["BuildFailed"], message: BUILD_CUT_OFF },
    { dependency: "VMI", ends: ["BuildFailed"], message: BUILD_CUT_OFF },
    { dependency: "pool", ends: ["PoolNotFound"], message: /builders not found/ },
    { dependency: "Secret", ends: ["Succeeded"] },
  ],
  // Held there by a finalizer of the test on the VMI (its teardown takes as long as the test wants); the run was
  // cancelled, so it ends CustomRunCancelled whatever vanishes.
  Scratching: [
    { dependency: "Lease", ends: ["CustomRunCancelled"] },
    { dependency: "VM", ends: ["CustomRunCancelled"] },
    { dependency: "pool", ends: ["CustomRunCancelled"] },
    { dependency: "Secret", ends: ["CustomRunCancelled"] },
  ],
};

/** The run's reason while in each phase. */
const PHASE_REASONS: Record<Phase, string[]> = {
  Queued: ["WaitingForVM"],
  Starting: ["StartingVM"],
  Building: ["Building", "Pushing"],
  Scratching: ["Scratching"],
};

const HOLD = "vanishing.test.vmbuild.dev/hold";
const KUBEVIRT = { group: "kubevirt.io", version: "v1" };
const POOLS = { group: "pool.kubevirt.io", version: "v1beta1", plural: "virtualmachinepools" };

/** What each cell took, printed at the end of the file: the matrix. */
const timings: string[] = [];
afterAll(() => {
  if (timings.length > 0) console.log(`vanishing matrix (phase × dependency: end, ms from deletion to end):\n${timings.sort().join("\n")}`);
});

function repos(s: ControllerSuite): Promise<unknown> {
  return Promise.all([
    createContextRepo(s.repos, "quick", { Dockerfile: `FROM ${s.env.baseImage}\nRUN true\n` }),
    createContextRepo(s.repos, "build", { Dockerfile: `FROM ${s.env.baseImage}\nRUN sleep 10\n` }),
    createContextRepo(s.repos, "slow", { Dockerfile: `FROM ${s.env.baseImage}\nRUN sleep 60\n` }),
  ]);
}

function params(s: ControllerSuite, ns: string, repo: string): Record<string, string> {
  return {
    pool: "builders",
    gitUrl: `${s.git.url}/${repo}.git`,
    image: `${s.env.registry.host}/${ns}/${repo}:1`,
    platforms: "linux/amd64",
    registrySecret: "registry",
    pullSecret: "registry",
    tlsVerify: "false",
    readyTimeout: READY_TIMEOUT,
    queueTimeout: QUEUE_TIMEOUT,
  };
}

function slotVM(run: CustomRunObject): string {
  return (run.status?.extraFields as { slots?: { vm?: string }[] } | undefined)?.slots?.[0]?.vm ?? "";
}

/** Adds (or removes) the test's finalizer on the VMI, keeping the stand-in's own. */
async function holdVMI(cluster: Cluster, ns: string, vm: string, hold: boolean): Promise<void> {
  await waitUntil(
    async () => {
      const vmi = (await cluster.custom.getNamespacedCustomObject({ ...KUBEVIRT, plural: "virtualmachineinstances", namespace: ns, name: vm })) as {
        metadata: { resourceVersion: string; finalizers?: string[] };
      };
      const others = (vmi.metadata.finalizers ?? []).filter((f) => f !== HOLD);
      await cluster.custom.patchNamespacedCustomObject(
        {
          ...KUBEVIRT,
          plural: "virtualmachineinstances",
          namespace: ns,
          name: vm,
          body: [
            { op: "test", path: "/metadata/resourceVersion", value: vmi.metadata.resourceVersion },
            { op: "replace", path: "/metadata/finalizers", value: hold ? [...others, HOLD] : others },
          ],
        },
        jsonPatch,
      );
      return true;
    },
    10_000,
    () => `could not ${hold ? "hold" : "release"} VMI ${ns}/${vm}`,
  );
}

async function deleteDependency(s: ControllerSuite, ns: string, vm: string, dependency: Dependency): Promise<void> {
  const { cluster } = s;
  switch (dependency) {
    case "Lease":
      await cluster.coordination.deleteNamespacedLease({ name: leaseName(vm), namespace: ns });
      return;
    case "VM":
      await cluster.custom.deleteNamespacedCustomObject({ ...KUBEVIRT, plural: "virtualmachines", namespace: ns, name: vm });
      return;
    case "VMI":
      await cluster.custom.deleteNamespacedCustomObject({ ...KUBEVIRT, plural: "virtualmachineinstances", namespace: ns, name: vm });
      return;
    case "pool":
      await cluster.custom.deleteNamespacedCustomObject({ ...POOLS, namespace: ns, name: "builders" });
      return;
    case "Secret":
      await cluster.core.deleteNamespacedSecret({ name: "registry", namespace: ns });
      return;
  }
}

/** Drives a run of a fresh namespace into `phase`; resolves with the namespace and the VM the run holds, if any. */
async function driveInto(s: ControllerSuite, phase: Phase): Promise<{ ns: string; vm: string }> {
  const { cluster } = s;
  const ns = await cluster.namespace(`vanish-${phase.toLowerCase()}`);
  switch (phase) {
    case "Queued": {
      // A pool with no VMs: the run waits for one.
      await cluster.pool(ns, "builders", 0);
      await cluster.createRun(ns, "run", params(s, ns, "quick"));
      await cluster.waitForReason(ns, "run", ["WaitingForVM"], 30_000);
      return { ns, vm: "" };
    }
    case "Starting": {
      await cluster.pool(ns, "builders", 1, { "sim.vmbuild.dev/boot-delay-ms": String(BOOT_DELAY_MS) });
      await cluster.createRun(ns, "run", params(s, ns, "quick"));
      const run = await cluster.waitForReason(ns, "run", ["StartingVM"], 30_000);
      await waitUntil(async () => s.h.vmisCreated(ns) === 1, 10_000, () => "no VMI created");
      return { ns, vm: slotVM(run) };
    }
    case "Building": {
      await cluster.pool(ns, "builders", 1);
      await cluster.createRun(ns, "run", params(s, ns, "build"));
      const run = await cluster.waitForReason(ns, "run", ["Building"], 60_000);
      return { ns, vm: slotVM(run) };
    }
    case "Scratching": {
      await cluster.pool(ns, "builders", 1);
      await cluster.createRun(ns, "run", params(s, ns, "slow"));
      const run = await cluster.waitForReason(ns, "run", ["Building"], 60_000);
      const vm = slotVM(run);
      await holdVMI(cluster, ns, vm, true);
      await cluster.patchRun(ns, "run", { spec: { status: "RunCancelled", statusMessage: "cancelled" } });
      await cluster.waitForReason(ns, "run", ["Scratching"], 30_000);
      // The stand-in killed its podman; only the test's finalizer keeps the VMI.
      await waitUntil(async () => unscratchedVMIs(records(s, ns)).length === 0, 30_000, () => "podman not killed");
      return { ns, vm };
    }
  }
}

function records(s: ControllerSuite, ns: string) {
  return readRecord(s.env.simStateDir).filter((e) => e.namespace === ns);
}

/** Registers the cells of `phase`, run at once against the block's controller. */
function phaseCells(phase: Phase, s: ControllerSuite): void {
  for (const cell of MATRIX[phase]) {
    it.concurrent(`${cell.dependency} deleted while ${phase}: the run ends ${cell.ends.join(" or ")}`, async ({ expect }) => {
      const { ns, vm } = await driveInto(s, phase);
      // Still in that phase as the dependency goes (Scratching: held there by the test's finalizer).
      expect(PHASE_REASONS[phase]).toContain(succeeded(await s.cluster.getRun(ns, "run"))?.reason);
      await deleteDependency(s, ns, vm, cell.dependency);
      const deletedAt = Date.now();
      if (phase === "Queued" && cell.dependency === "Secret") {
        // The run reads the Secret once it has a VM: give it one.
        await s.cluster.custom.patchNamespacedCustomObject(
          { ...POOLS, namespace: ns, name: "builders", body: { spec: { replicas: 1 } } },
          mergePatch,
        );
      }
      if (phase === "Scratching") await holdVMI(s.cluster, ns, vm, false);
      const run = await s.cluster.waitForRun(ns, "run", BOUND_MS - (Date.now() - deletedAt));
      const took = Date.now() - deletedAt;
      const end = succeeded(run);
      timings.push(`${phase} × ${cell.dependency}: ${end?.reason} in ${took} ms (${(end?.message ?? "").split("\n")[0]?.slice(0, 120)})`);
      expect(cell.ends).toContain(end?.reason);
      if (cell.message) expect(end?.message).toMatch(cell.message);
      // The run scratched what it started before it ended, and let go of its Lease.
      const startedBefore = (e: { ts: string }) => Date.parse(e.ts) <= deletedAt;
      expect(unscratchedVMIs(records(s, ns)).filter(startedBefore)).toEqual([]);
      expect(await s.cluster.leases(ns)).toEqual([]);
      // An instance deleted under a running VM is replaced by KubeVirt until it sees the stop: that one goes too.
      await waitUntil(async () => unscratchedVMIs(records(s, ns)).length === 0, 15_000, () =>
        `left running: ${JSON.stringify(unscratchedVMIs(records(s, ns)))}`,
      );
    });
  }
}

describe("a dependency deleted mid-run", () => {
  const s = controllerSuite("vanishing", async ({ cluster, ns, repos, env }) => {
    await cluster.pool(ns, "builders", 1);
    await createContextRepo(repos, "short", { Dockerfile: `FROM ${env.baseImage}\nRUN sleep 4\n` });
  });
  const shortParams = () => ({
    pool: "builders",
    gitUrl: `${s.git.url}/short.git`,
    image: `${s.env.registry.host}/${s.ns}/short:1`,
    platforms: "linux/amd64",
    registrySecret: "registry",
    pullSecret: "registry",
    tlsVerify: "false",
  });

  it("its VM Lease: the run ends, and the next run takes the VM", async () => {
    await s.cluster.createRun(s.ns, "first", shortParams());
    const building = await s.cluster.waitForReason(s.ns, "first", ["Building"], 60_000);
    const vm = slotVM(building);
    await s.cluster.coordination.deleteNamespacedLease({ name: leaseName(vm), namespace: s.ns });
    await s.cluster.createRun(s.ns, "second", shortParams());
    // The first run's scratch frees the VM for the second; the VM's events then go to the second run's lease.
    const second = await s.cluster.waitForRun(s.ns, "second", 90_000);
    expect(succeeded(second)?.reason).toBe("Succeeded");
    const first = await s.cluster.waitForRun(s.ns, "first", 30_000);
    expect(succeeded(first)?.reason).toBe("Succeeded");
    expect(unscratchedVMIs(readRecord(s.env.simStateDir).filter((e) => e.namespace === s.ns))).toEqual([]);
    expect(await s.cluster.leases(s.ns)).toEqual([]);
  });
});

for (const phase of ["Queued", "Starting", "Building", "Scratching"] as const) {
  describe(`each dependency deleted while ${phase}`, () => {
    const s = controllerSuite(`vanish-${phase.toLowerCase()}`, (suite) => repos(suite).then(() => undefined));
    phaseCells(phase, s);
  });
}
