import type { KubernetesObject, ObjectCache } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { QueueEntry } from "../../../src/cache/pool-queues.js";
import { LEASE_LABEL_POOL, LEASE_LABEL_VM, leaseName } from "../../../src/lease/holder.js";
import { WARM_HOLDER } from "../../../src/pools/warm.js";
import { PoolWakes } from "../../../src/reconcile/pool-wakes.js";

/** Caches whose objects the test changes in place between asks, as informer events would. */
function world() {
  const objects = {
    vms: new Map<string, KubernetesObject>(),
    vmis: new Map<string, KubernetesObject>(),
    leases: new Map<string, KubernetesObject>(),
  };
  const queues: Record<string, QueueEntry[]> = {};
  const cache = (map: Map<string, KubernetesObject>): ObjectCache<KubernetesObject> => ({
    get: (name, namespace) => map.get(`${namespace}/${name}`),
    list: (namespace) => [...map.values()].filter((o) => namespace === undefined || o.metadata?.namespace === namespace),
  });
  const caches = {
    vms: cache(objects.vms),
    vmis: cache(objects.vmis),
    leases: cache(objects.leases),
    queue: (pool: string) => queues[pool] ?? [],
  };
  const put = (map: Map<string, KubernetesObject>, obj: KubernetesObject) => map.set(`ns/${obj.metadata?.name}`, obj);
  return {
    caches,
    vm(name: string, running: boolean, pool = "pool") {
      put(objects.vms, {
        metadata: { namespace: "ns", name, ownerReferences: [{ kind: "VirtualMachinePool", name: pool }] },
        spec: { runStrategy: running ? "Always" : "Halted" },
      } as unknown as KubernetesObject);
    },
    vmi(name: string, ready: boolean) {
      put(objects.vmis, {
        metadata: { namespace: "ns", name },
        status: {
          phase: "Running",
          conditions: [{ type: "Ready", status: ready ? "True" : "False" }],
          interfaces: [{ ipAddress: "10.0.0.9" }],
        },
      } as KubernetesObject);
    },
    noVMI: (name: string) => objects.vmis.delete(`ns/${name}`),
    lease(vm: string, holder: string, pool = "pool") {
      put(objects.leases, {
        metadata: { namespace: "ns", name: leaseName(vm), labels: { [LEASE_LABEL_VM]: vm, [LEASE_LABEL_POOL]: pool } },
        spec: { holderIdentity: holder },
      } as KubernetesObject);
    },
    noLease: (vm: string) => objects.leases.delete(`ns/${leaseName(vm)}`),
    queue(pool: string, ...keys: string[]) {
      queues[pool] = keys.map((key) => ({ key, demand: 1 }));
    },
  };
}

describe("PoolWakes", () => {
  it("wakes as many waiting runs as the leasable VMs serve, and again only when those or the runs change", () => {
    const w = world();
    const wakes = new PoolWakes();
    w.vm("vm-0", true);
    w.vmi("vm-0", false);
    w.lease("vm-0", "ns/building/uid/0");
    w.vm("vm-1", false);
    w.queue("ns/pool", "ns/w1", "ns/w2", "ns/w3");
    expect(wakes.changed("ns/pool", w.caches)).toEqual(["ns/w1"]);
    expect(wakes.changed("ns/pool", w.caches)).toEqual([]);

    // The leased VM boots, then its build ends and it is stopped and scratched: nothing a waiting run can take.
    w.vmi("vm-0", true);
    expect(wakes.changed("ns/pool", w.caches)).toEqual([]);
    w.vm("vm-0", false);
    expect(wakes.changed("ns/pool", w.caches)).toEqual([]);
    w.noVMI("vm-0");
    expect(wakes.changed("ns/pool", w.caches)).toEqual([]);
    // Its Lease goes: two VMs are free, for the first two runs.
    w.noLease("vm-0");
    expect(wakes.changed("ns/pool", w.caches)).toEqual(["ns/w1", "ns/w2"]);

    // w1 takes vm-1 and leaves the queue: w2 is first, for the one VM left.
    w.lease("vm-1", "ns/w1/uid/0");
    w.queue("ns/pool", "ns/w2", "ns/w3");
    expect(wakes.changed("ns/pool", w.caches)).toEqual(["ns/w2"]);
    // w2 takes vm-0: no VM is left, nobody to wake.
    w.lease("vm-0", "ns/w2/uid/0");
    w.queue("ns/pool", "ns/w3");
    expect(wakes.changed("ns/pool", w.caches)).toEqual([]);
  });

  it("counts the VMs the runs ahead need: a run needing two keeps the next from the one free VM", () => {
    const w = world();
    w.vm("vm-0", false);
    w.vm("vm-1", true);
    w.vmi("vm-1", true);
    w.lease("vm-1", "ns/building/uid/0");
    w.queue("ns/pool", "ns/big", "ns/small");
    w.caches.queue("ns/pool")[0]!.demand = 2;
    expect(new PoolWakes().changed("ns/pool", w.caches)).toEqual(["ns/big"]);
  });

  it("wakes the first run when a warm VM becomes ready, and keeps each pool's record apart", () => {
    const w = world();
    const wakes = new PoolWakes();
    w.vm("vm-0", true);
    w.vmi("vm-0", false);
    w.lease("vm-0", WARM_HOLDER);
    w.vm("other-0", false, "other");
    w.queue("ns/pool", "ns/w1");
    w.queue("ns/other", "ns/o1");
    expect(wakes.changed("ns/pool", w.caches)).toEqual([]);
    expect(wakes.changed("ns/other", w.caches)).toEqual(["ns/o1"]);
    w.vmi("vm-0", true);
    expect(wakes.changed("ns/pool", w.caches)).toEqual(["ns/w1"]);
    expect(wakes.changed("ns/other", w.caches)).toEqual([]);
  });
});
