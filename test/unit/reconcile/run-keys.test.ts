import type { KubernetesObject, ObjectCache } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { QueueEntry } from "../../../src/cache/pool-queues.js";
import { LEASE_LABEL_POOL, LEASE_LABEL_VM, leaseName } from "../../../src/lease/holder.js";
import { WARM_HOLDER } from "../../../src/pools/warm.js";
import {
  allKeys,
  keysOfLease,
  keysOfPool,
  keysOfRun,
  keysOfVM,
  keysOfVMBuild,
  poolChangeMatters,
  roundOf,
  unfinishedRuns,
} from "../../../src/reconcile/run-keys.js";

/** An informer cache over a fixed array. */
function cache(objects: KubernetesObject[]): ObjectCache<KubernetesObject> {
  return {
    get: (name, namespace) => objects.find((o) => o.metadata?.name === name && o.metadata?.namespace === namespace),
    list: (namespace) => objects.filter((o) => namespace === undefined || o.metadata?.namespace === namespace),
  };
}

const vm = (name: string, pool?: string): KubernetesObject => ({
  metadata: { namespace: "ns", name, ...(pool ? { ownerReferences: [{ kind: "VirtualMachinePool", name: pool }] } : {}) },
  spec: {},
} as KubernetesObject);
const vmi = (name: string): KubernetesObject => ({ metadata: { namespace: "ns", name } });
const lease = (vmName: string, holder: string, pool = "pool"): KubernetesObject => ({
  metadata: {
    namespace: "ns",
    name: leaseName(vmName),
    labels: { [LEASE_LABEL_VM]: vmName, ...(pool ? { [LEASE_LABEL_POOL]: pool } : {}) },
  },
  spec: { holderIdentity: holder },
} as KubernetesObject);
const run = (namespace: string, name: string, kind = "VMBuild"): KubernetesObject => ({
  metadata: { namespace, name, uid: `uid-${name}` },
  spec: { customRef: { apiVersion: kind === "VMBuild" ? "vmbuild.dev/v1alpha1" : "tekton.dev/v1", kind } },
} as KubernetesObject);
const pool = (name: string): KubernetesObject => ({ metadata: { namespace: "ns", name } });
/** `r` with a run state of `phase` over `slots` in its status. */
const withState = (r: KubernetesObject, phase: string, slots: { platforms: string[]; pool: string; vm?: string }[]): KubernetesObject =>
  ({
    ...r,
    status: { extraFields: { phase, attempt: 0, slots, queuedAt: "2026-01-01T00:00:00Z", phaseSince: "2026-01-01T00:00:00Z" } },
  }) as KubernetesObject;

function caches(opts: {
  vms?: KubernetesObject[];
  leases?: KubernetesObject[];
  runs?: KubernetesObject[];
  pools?: KubernetesObject[];
  queues?: Record<string, QueueEntry[]>;
}) {
  return {
    vms: cache(opts.vms ?? []),
    leases: cache(opts.leases ?? []),
    runs: cache(opts.runs ?? []),
    pools: cache(opts.pools ?? []),
    queue: (key: string) => opts.queues?.[key] ?? [],
  };
}

const waiting = (...keys: string[]): QueueEntry[] => keys.map((key) => ({ key, demand: 1 }));

describe("keysOfVM", () => {
  const pooled = caches({
    vms: [vm("vm-0", "pool"), vm("vm-1", "pool"), vm("lone")],
    leases: [lease("vm-0", "ns/holder/uid/0")],
    queues: { "ns/pool": waiting("ns/w1", "ns/w2", "ns/w3") },
  });

  it("wakes the run holding the VM, and names its pool for the pool's waiting runs", () => {
    expect(keysOfVM(vm("vm-0", "pool"), pooled)).toEqual({ runs: ["ns/holder"], pools: ["ns/pool"], waitingIn: ["ns/pool"] });
  });

  it("does the same for the VM's VMI, whose owner is read from the VM", () => {
    expect(keysOfVM(vmi("vm-0"), pooled)).toEqual({ runs: ["ns/holder"], pools: ["ns/pool"], waitingIn: ["ns/pool"] });
  });

  it("wakes no run itself for an unleased VM", () => {
    expect(keysOfVM(vm("vm-1", "pool"), pooled)).toEqual({ runs: [], pools: ["ns/pool"], waitingIn: ["ns/pool"] });
  });

  it("wakes nothing for a VM of no pool that nobody holds", () => {
    expect(keysOfVM(vm("lone"), pooled)).toEqual({ runs: [], pools: [], waitingIn: [] });
  });
});

describe("roundOf and keysOfPool", () => {
  it("takes the pool's waiting runs within one round of its VMs", () => {
    const c = caches({ vms: [vm("vm-0", "pool"), vm("vm-1", "pool")], queues: { "ns/pool": waiting("ns/w1", "ns/w2", "ns/w3") } });
    expect(roundOf("ns/pool", c)).toEqual(["ns/w1", "ns/w2"]);
  });

  it("counts a round in VMs, not runs: a run needing two fills a two-VM round", () => {
    const c = caches({
      vms: [vm("vm-0", "pool"), vm("vm-1", "pool")],
      queues: { "ns/pool": [{ key: "ns/big", demand: 2 }, ...waiting("ns/small")] },
    });
    expect(roundOf("ns/pool", c)).toEqual(["ns/big"]);
  });

  it("wakes a changed pool's round at once (its annotations may decide anything), the first run when its VMs are all gone", () => {
    const c = caches({ queues: { "ns/pool": waiting("ns/w1", "ns/w2") } });
    expect(keysOfPool(pool("pool"), c)).toEqual({ runs: ["ns/w1"], pools: ["ns/pool"], waitingIn: [] });
  });
});

describe("poolChangeMatters", () => {
  const version = (over: { uid?: string; annotations?: Record<string, string>; spec?: object; status?: object } = {}) =>
    ({
      metadata: { namespace: "ns", name: "pool", uid: over.uid ?? "u1", annotations: over.annotations ?? { "a": "1" } },
      spec: over.spec ?? { replicas: 2, virtualMachineTemplate: { spec: { runStrategy: "Halted" } } },
      status: over.status ?? { replicas: 2, readyReplicas: 0 },
    }) as KubernetesObject;

  it.each([
    ["the first version seen", undefined, version(), true],
    ["a status-only change (a VM became ready)", version(), version({ status: { replicas: 2, readyReplicas: 1 } }), false],
    ["the same version again (a relist)", version(), version(), false],
    ["an annotation changed", version(), version({ annotations: { a: "2" } }), true],
    ["an annotation added", version(), version({ annotations: { a: "1", b: "x" } }), true],
    ["the spec changed", version(), version({ spec: { replicas: 3 } }), true],
    ["a pool deleted and created again under the same name", version(), version({ uid: "u2" }), true],
  ])("%s", (_what, before, after, matters) => {
    expect(poolChangeMatters(before, after)).toBe(matters);
  });
});

describe("keysOfVM for a VM whose Lease was deleted", () => {
  /** Our run whose status names `vmName` of pool `pool` (NAMESPACE/NAME), in `phase`. */
  const naming = (namespace: string, name: string, pool: string, vmName: string, phase = "Starting"): KubernetesObject =>
    withState(run(namespace, name), phase, [{ platforms: ["linux/amd64"], pool, vm: vmName }]);
  const c = caches({
    vms: [vm("vm-0", "pool"), vm("vm-1", "pool")],
    runs: [
      naming("team", "owner", "ns/pool", "vm-0"),
      naming("ns", "scratching", "ns/pool", "vm-0", "Scratching"),
      naming("ns", "done", "ns/pool", "vm-0", "Done"),
      naming("ns", "elsewhere", "other/pool", "vm-0"),
      naming("ns", "sibling", "ns/pool", "vm-1"),
    ],
    queues: { "ns/pool": waiting("ns/w1") },
  });

  it("wakes the unfinished runs whose status names it (of any namespace)", () => {
    expect(keysOfVM(vm("vm-0", "pool"), c)).toEqual({ runs: ["team/owner", "ns/scratching"], pools: ["ns/pool"], waitingIn: ["ns/pool"] });
    expect(keysOfVM(vmi("vm-0"), c).runs).toEqual(["team/owner", "ns/scratching"]);
  });

  it("wakes only the holder while a Lease is there, whoever's it is", () => {
    const leased = { ...c, leases: cache([lease("vm-0", WARM_HOLDER)]) };
    expect(keysOfVM(vm("vm-0", "pool"), leased).runs).toEqual([]);
  });
});

describe("keysOfLease", () => {
  it("wakes its holder, and names its pool for the pool's waiting runs", () => {
    expect(keysOfLease(lease("vm-0", "ns/holder/uid/3"))).toEqual({ runs: ["ns/holder"], pools: ["ns/pool"], waitingIn: ["ns/pool"] });
  });

  it("wakes no run itself when the warm keeper holds it", () => {
    expect(keysOfLease(lease("vm-0", WARM_HOLDER))).toEqual({ runs: [], pools: ["ns/pool"], waitingIn: ["ns/pool"] });
  });

  it("wakes only its holder when it names no pool", () => {
    expect(keysOfLease(lease("vm-0", "ns/holder/uid/0", ""))).toEqual({ runs: ["ns/holder"], pools: [], waitingIn: [] });
  });
});

describe("keysOfRun and keysOfVMBuild", () => {
  const runs = [run("ns", "a"), run("ns", "task", "Task"), run("ns", "b"), run("other", "c")];

  it("wakes a run that is ours, and no other", () => {
    expect(keysOfRun(run("ns", "a"))).toEqual({ runs: ["ns/a"], pools: [], waitingIn: [] });
    expect(keysOfRun(run("ns", "task", "Task"))).toEqual({ runs: [], pools: [], waitingIn: [] });
  });

  it("names the pools of a run that waits or has finished, whose waiting runs it may have moved up", () => {
    const inPhase = (phase: string): KubernetesObject =>
      withState(run("ns", "a"), phase, [
        { platforms: ["linux/amd64"], pool: "ns/pool" },
        { platforms: ["linux/arm64"], pool: "ns/pool" },
        { platforms: ["linux/s390x"], pool: "other/big" },
      ]);
    for (const phase of ["Queued", "Done"]) expect(keysOfRun(inPhase(phase)).waitingIn).toEqual(["ns/pool", "other/big"]);
    for (const phase of ["Starting", "Building", "Scratching"]) expect(keysOfRun(inPhase(phase)).waitingIn).toEqual([]);
  });

  it("wakes the runs of the VMBuild's namespace that are ours", () => {
    const vmbuild = { metadata: { namespace: "ns", name: "build" } };
    expect(keysOfVMBuild(vmbuild, caches({ runs }))).toEqual({ runs: ["ns/a", "ns/b"], pools: [], waitingIn: [] });
  });

  it("wakes every run of ours and every pool on taking over", () => {
    expect(allKeys(caches({ runs, pools: [pool("p1"), pool("p2")] }))).toEqual({
      runs: ["ns/a", "ns/b", "other/c"],
      pools: ["ns/p1", "ns/p2"],
      waitingIn: [],
    });
  });
});

describe("unfinishedRuns", () => {
  it("names our runs whose Succeeded condition is not True or False yet", () => {
    const ended = (r: KubernetesObject, status: string) => ({ ...r, status: { conditions: [{ type: "Succeeded", status }] } });
    const runs = cache([
      run("a", "new"),
      ended(run("a", "working"), "Unknown"),
      ended(run("a", "done"), "True"),
      ended(run("b", "failed"), "False"),
      run("b", "not-ours", "Wait"),
    ]);
    expect(unfinishedRuns({ runs })).toEqual(["a/new", "a/working"]);
  });
});
