import type { KubernetesObject, ObjectCache } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { Phase } from "../../../src/tekton/run-state.js";
import {
  buildViewState,
  MAX_RECENT_RUNS,
  namespacesOf,
  vmState,
  type MayView,
  type ViewCaches,
  type ViewState,
} from "../../../src/server/view-state.js";
import type { VMView } from "../../../src/kubevirt/vm.js";

/** An object as the API serves it (and an informer caches it): timestamps are strings, whatever client-node's types say. */
interface Raw {
  kind: string;
  metadata: { namespace: string; name: string; [field: string]: unknown };
  [field: string]: unknown;
}

/** An informer cache stand-in over a fixed list of objects. */
class FixedCache implements ObjectCache<KubernetesObject> {
  private readonly objects: KubernetesObject[];
  constructor(objects: Raw[]) {
    this.objects = objects as unknown as KubernetesObject[];
  }
  get(name: string, namespace?: string): KubernetesObject | undefined {
    return this.objects.find((o) => o.metadata?.name === name && o.metadata.namespace === namespace);
  }
  list(namespace?: string): KubernetesObject[] {
    return this.objects.filter((o) => namespace === undefined || o.metadata?.namespace === namespace);
  }
}

const NOW = new Date("2026-03-01T10:10:00Z");
const at = (minute: number) => `2026-03-01T10:${String(minute).padStart(2, "0")}:00Z`;

const pool = (namespace: string, name: string): Raw => ({ kind: "VirtualMachinePool", metadata: { namespace, name } });
const vm = (namespace: string, poolName: string, name: string, runStrategy = "Halted"): Raw => ({
  kind: "VirtualMachine",
  metadata: { namespace, name, ownerReferences: [{ apiVersion: "pool.kubevirt.io/v1beta1", kind: "VirtualMachinePool", name: poolName, uid: "p" }] },
  spec: { runStrategy },
});
const vmi = (namespace: string, name: string, ready: boolean): Raw => ({
  kind: "VirtualMachineInstance",
  metadata: { namespace, name },
  status: { phase: ready ? "Running" : "Scheduling", conditions: [{ type: "Ready", status: ready ? "True" : "False" }] },
});
const lease = (namespace: string, vmName: string, holder: string): Raw => ({
  kind: "Lease",
  metadata: { namespace, name: `vmbuild-vm-${vmName}` },
  spec: { holderIdentity: holder },
});

interface RunOpts {
  created: number;
  phase?: Phase;
  queuedAt?: number;
  leasedAt?: number;
  vm?: string;
  condition?: { status: "True" | "False" | "Unknown"; reason: string; message?: string };
  completionTime?: string;
  kind?: string;
  params?: unknown;
}
const run = (namespace: string, name: string, o: RunOpts): Raw => ({
  kind: "CustomRun",
  metadata: { namespace, name, uid: `uid-${name}`, creationTimestamp: at(o.created) },
  spec: { customRef: { apiVersion: "vmbuild.dev/v1alpha1", kind: o.kind ?? "VMBuild" }, params: o.params ?? [] },
  status: {
    ...(o.condition ? { conditions: [{ type: "Succeeded", ...o.condition }] } : {}),
    ...(o.completionTime ? { completionTime: o.completionTime } : {}),
    ...(o.phase
      ? {
          extraFields: {
            phase: o.phase,
            attempt: 0,
            pool: "pools/builders",
            queuedAt: at(o.queuedAt ?? o.created),
            phaseSince: at(o.created),
            ...(o.vm ? { vm: o.vm } : {}),
            ...(o.leasedAt !== undefined ? { leasedAt: at(o.leasedAt) } : {}),
            tried: [],
          },
        }
      : {}),
  },
});

/**
 * Pool pools/builders: builders-0 leased to team-a/build-1 (Building, VMI ready), builders-1 leased to team-b/build-2
 * (Starting, VMI not ready), builders-2 running without a lease. Pool team-a/own: own-0 free. team-b was served
 * last, so the fair queue is team-a/q1, team-b/q3, team-a/q2.
 */
function fixture(): ViewCaches {
  const running = vmi("pools", "builders-2", true);
  return {
    pools: new FixedCache([pool("team-a", "own"), pool("pools", "builders")]),
    vms: new FixedCache([
      vm("pools", "builders", "builders-0"),
      vm("pools", "builders", "builders-1", "Always"),
      vm("pools", "builders", "builders-2", "Always"),
      vm("team-a", "own", "own-0"),
      vm("pools", "other", "stray-0"),
    ]),
    vmis: new FixedCache([vmi("pools", "builders-0", true), vmi("pools", "builders-1", false), running]),
    leases: new FixedCache([
      lease("pools", "builders-0", "team-a/build-1/uid-build-1/0"),
      lease("pools", "builders-1", "team-b/build-2/uid-build-2/0"),
    ]),
    runs: new FixedCache([
      run("team-a", "build-1", { created: 1, phase: "Building", vm: "builders-0", leasedAt: 1, condition: { status: "Unknown", reason: "Building" } }),
      run("team-b", "build-2", { created: 2, phase: "Starting", vm: "builders-1", leasedAt: 2, condition: { status: "Unknown", reason: "StartingVM" } }),
      run("team-a", "q1", { created: 3, phase: "Queued", condition: { status: "Unknown", reason: "WaitingForVM" } }),
      run("team-a", "q2", { created: 4, phase: "Queued" }),
      run("team-b", "q3", { created: 5, phase: "Queued" }),
      run("team-a", "done-1", {
        created: 0,
        phase: "Done",
        condition: { status: "True", reason: "Succeeded", message: "pushed" },
        completionTime: at(1),
      }),
      run("team-a", "not-ours", { created: 6, kind: "Wait" }),
      // A malformed spec still shows, with its status.
      run("team-c", "bad-params", { created: 7, params: "oops", condition: { status: "False", reason: "InvalidParams" } }),
    ]),
  };
}

/** The parts of a ViewState a case asserts on, in a compact form. */
function summary(state: ViewState) {
  return {
    pools: state.pools.map((p) => `${p.namespace}/${p.name}`),
    vms: state.pools.flatMap((p) =>
      p.vms.map((v) => `${v.name}=${v.state}${v.holder ? ` by ${v.holder.namespace}/${v.holder.name} (${v.holder.phase ?? "?"})` : ""}`),
    ),
    queue: state.pools.flatMap((p) => p.queue.map((q) => `${q.position}:${q.namespace}/${q.name}`)),
    runs: state.runs.map((r) => `${r.namespace}/${r.name}`),
  };
}

const only =
  (...namespaces: string[]): MayView =>
  (ns) =>
    namespaces.includes(ns);

describe("vmState", () => {
  const vmView = (v: Partial<VMView>): VMView => ({ name: "builders-0", wantsRunning: false, ...v });
  const ready = { phase: "Running", ready: true, deleting: false };
  const booting = { phase: "Scheduling", ready: false, deleting: false };
  const holder = "team-a/build-1/uid/0";
  it.each<[string, Partial<VMView>, Phase | undefined, string]>([
    ["halted, no lease", {}, undefined, "free"],
    ["leased, not started yet", { leaseHolder: holder }, "Starting", "booting"],
    ["leased, VMI not ready", { leaseHolder: holder, wantsRunning: true, vmi: booting }, "Starting", "booting"],
    ["leased, ready, holder still starting", { leaseHolder: holder, wantsRunning: true, vmi: ready }, "Starting", "leased"],
    ["leased, ready, holder building", { leaseHolder: holder, wantsRunning: true, vmi: ready }, "Building", "building"],
    ["leased, ready, holder gone", { leaseHolder: holder, wantsRunning: true, vmi: ready }, undefined, "leased"],
    ["leased, holder scratching", { leaseHolder: holder, wantsRunning: true, vmi: ready }, "Scratching", "scratching"],
    ["leased, stopped, holder scratching", { leaseHolder: holder }, "Scratching", "scratching"],
    ["VMI being deleted, no lease", { vmi: { ...ready, deleting: true } }, undefined, "scratching"],
    ["asked to run, no lease", { wantsRunning: true }, undefined, "running-unleased"],
    ["VMI left over, no lease", { vmi: ready }, undefined, "running-unleased"],
    ["warm, booting", { leaseHolder: "vmbuild/warm", wantsRunning: true, vmi: booting }, undefined, "warming"],
    ["warm, ready", { leaseHolder: "vmbuild/warm", wantsRunning: true, vmi: { ...ready, address: "10.0.0.1" } }, undefined, "warm"],
    ["warm, retiring", { leaseHolder: "vmbuild/retiring", wantsRunning: true, vmi: ready }, undefined, "scratching"],
  ])("%s → %s", (_what, v, phase, expected) => {
    expect(vmState(vmView(v), phase)).toBe(expected);
  });
});

describe("buildViewState", () => {
  const allVMs = [
    "builders-0=building",
    "builders-1=booting",
    "builders-2=running-unleased",
  ];
  it.each<[string, MayView, ReturnType<typeof summary>]>([
    [
      "a viewer of every namespace",
      () => true,
      {
        pools: ["pools/builders", "team-a/own"],
        vms: [
          "builders-0=building by team-a/build-1 (Building)",
          "builders-1=booting by team-b/build-2 (Starting)",
          "builders-2=running-unleased",
          "own-0=free",
        ],
        queue: ["1:team-a/q1", "2:team-b/q3", "3:team-a/q2"],
        runs: ["team-c/bad-params", "team-b/q3", "team-a/q2", "team-a/q1", "team-b/build-2", "team-a/build-1", "team-a/done-1"],
      },
    ],
    [
      "team-a: the shared pool serves its runs; team-b's holder and queued run are left out",
      only("team-a"),
      {
        pools: ["pools/builders", "team-a/own"],
        vms: ["builders-0=building by team-a/build-1 (Building)", "builders-1=booting", "builders-2=running-unleased", "own-0=free"],
        queue: ["1:team-a/q1", "3:team-a/q2"],
        runs: ["team-a/q2", "team-a/q1", "team-a/build-1", "team-a/done-1"],
      },
    ],
    [
      "team-b",
      only("team-b"),
      {
        pools: ["pools/builders"],
        vms: ["builders-0=building", "builders-1=booting by team-b/build-2 (Starting)", "builders-2=running-unleased"],
        queue: ["2:team-b/q3"],
        runs: ["team-b/q3", "team-b/build-2"],
      },
    ],
    ["the pool's namespace only: its VMs, no runs", only("pools"), { pools: ["pools/builders"], vms: allVMs, queue: [], runs: [] }],
    ["team-c: its run, and no pool serves it", only("team-c"), { pools: [], vms: [], queue: [], runs: ["team-c/bad-params"] }],
    ["nobody", () => false, { pools: [], vms: [], queue: [], runs: [] }],
  ])("%s", (_who, mayView, expected) => {
    expect(summary(buildViewState(fixture(), NOW, mayView))).toEqual(expected);
  });

  it("describes each run by its condition and extraFields, and each queued run by its wait", () => {
    const state = buildViewState(fixture(), NOW, () => true);
    expect(state.generatedAt).toBe(NOW.toISOString());
    const byName = (name: string) => state.runs.find((r) => r.name === name);
    expect(byName("build-1")).toEqual({
      namespace: "team-a",
      name: "build-1",
      uid: "uid-build-1",
      status: "Unknown",
      reason: "Building",
      phase: "Building",
      pool: "pools/builders",
      vm: "builders-0",
      attempt: 0,
      createdAt: at(1),
    });
    expect(byName("done-1")).toMatchObject({ status: "True", reason: "Succeeded", message: "pushed", completionTime: at(1) });
    // No condition yet: Unknown, without a reason.
    expect(byName("q2")).toMatchObject({ status: "Unknown", phase: "Queued" });
    expect(byName("q2")?.reason).toBeUndefined();
    expect(state.pools[0]?.queue[0]).toEqual({
      namespace: "team-a",
      name: "q1",
      position: 1,
      queuedAt: at(3),
      waitingSeconds: 7 * 60,
    });
  });

  it("does not name a re-created run as the holder's phase", () => {
    const caches = fixture();
    caches.leases = new FixedCache([lease("pools", "builders-0", "team-a/build-1/an-older-uid/0")]);
    const builders0 = buildViewState(caches, NOW, () => true).pools[0]?.vms[0];
    expect(builders0).toEqual({ name: "builders-0", state: "leased", holder: { namespace: "team-a", name: "build-1", attempt: 0 } });
  });

  it(`lists at most ${MAX_RECENT_RUNS} runs, newest first`, () => {
    const runs = Array.from({ length: MAX_RECENT_RUNS + 20 }, (_, i) =>
      run("team-a", `r-${String(i).padStart(3, "0")}`, { created: 0 }),
    ).map((r, i) => ({ ...r, metadata: { ...r.metadata, creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString() } }));
    const state = buildViewState({ ...fixture(), runs: new FixedCache(runs) }, NOW, () => true);
    expect(state.runs).toHaveLength(MAX_RECENT_RUNS);
    expect(state.runs[0]?.name).toBe("r-119");
    expect(state.runs.at(-1)?.name).toBe("r-020");
  });
});

describe("namespacesOf", () => {
  it("names the namespaces of pools and of our runs, once each", () => {
    expect(namespacesOf(fixture())).toEqual(["pools", "team-a", "team-b", "team-c"]);
  });
});
