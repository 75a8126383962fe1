import type { KubernetesObject } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { Replicas } from "../../../src/cache/replicas.js";
import { DRAINING_ANNOTATION, REPLICA_LABEL, replicaLeaseName } from "../../../src/lease/replicas.js";

// Liveness on this process's monotonic clock, whatever renewTime says; the least loaded live replica gets the
// next run; each replica acts on its own runs, the leader on the unowned and the orphaned ones.

function lease(identity: string, version: string, opts: { draining?: boolean; seconds?: number; renewTime?: string } = {}): KubernetesObject {
  return {
    metadata: {
      name: replicaLeaseName(identity),
      namespace: "vmbuild-system",
      resourceVersion: version,
      labels: { [REPLICA_LABEL]: identity },
      annotations: { [DRAINING_ANNOTATION]: String(opts.draining ?? false) },
    },
    spec: { holderIdentity: identity, leaseDurationSeconds: opts.seconds ?? 15, renewTime: opts.renewTime ?? "1999-01-01T00:00:00Z" },
  } as KubernetesObject;
}

function replicas(me = "a") {
  let clock = 0;
  const r = new Replicas(me, () => clock);
  return { r, advance: (ms: number) => (clock += ms) };
}

describe("Replicas", () => {
  it("a replica lives while its Lease changes, by our own clock: a renewTime decades old does not matter", () => {
    const { r, advance } = replicas();
    r.leaseChanged(lease("b", "1"));
    advance(14_000);
    expect(r.alive("b")).toBe(true);
    r.leaseChanged(lease("b", "1")); // the same record again (a relist): no renewal
    advance(1_000);
    expect(r.alive("b")).toBe(false);
    r.leaseChanged(lease("b", "2"));
    expect(r.alive("b")).toBe(true);
    r.leaseDeleted(lease("b", "2"));
    expect(r.alive("b")).toBe(false);
    expect(r.alive("a")).toBe(true);
    expect(r.alive("never-seen")).toBe(false);
  });

  it("ignores Leases that are not a replica's", () => {
    const { r } = replicas();
    r.leaseChanged({ metadata: { name: "vmbuild-vm-x", namespace: "ns", resourceVersion: "1", labels: {} }, spec: { holderIdentity: "ns/run/uid/0" } } as KubernetesObject);
    expect(r.alive("ns/run/uid/0")).toBe(false);
  });

  it("hands the next run to the least loaded live replica that does not drain", () => {
    const { r, advance } = replicas();
    r.leaseChanged(lease("b", "1"));
    r.leaseChanged(lease("c", "1"));
    r.owned("ns/1", "a");
    // Seen once, each may be the Lease of a replica that died a moment ago: not given runs before it renews.
    expect(r.assignee()).toBe("a");
    r.leaseChanged(lease("b", "2"));
    r.leaseChanged(lease("c", "2"));
    r.owned("ns/2", "b");
    expect(r.assignee()).toBe("c");
    r.owned("ns/3", "c");
    r.owned("ns/4", "c");
    expect(r.assignee()).toBe("a"); // a and b tie at 1: by name
    r.drain();
    expect(r.assignee()).toBe("b");
    r.leaseChanged(lease("b", "3", { draining: true }));
    expect(r.assignee()).toBe("c");
    advance(20_000); // b and c lost: only a is left, draining or not
    expect(r.assignee()).toBe("a");
  });

  it("acts on its own runs always, on unowned and orphaned ones only as the leader", () => {
    const { r, advance } = replicas();
    r.leaseChanged(lease("b", "1"));
    expect(r.actsOn("a", false)).toBe(true);
    expect(r.actsOn(undefined, false)).toBe(false);
    expect(r.actsOn(undefined, true)).toBe(true);
    expect(r.actsOn("b", true)).toBe(false);
    r.owned("ns/1", "b");
    r.owned("ns/2", "a");
    expect(r.orphaned()).toEqual([]);
    advance(15_000);
    expect(r.actsOn("b", true)).toBe(true);
    expect(r.actsOn("b", false)).toBe(false);
    expect(r.orphaned()).toEqual(["ns/1"]);
    expect(r.ownedByMe()).toEqual(["ns/2"]);
    r.owned("ns/2", undefined);
    expect(r.ownedByMe()).toEqual([]);
    expect(r.lapsed()).toEqual([{ identity: "b", version: "1" }]);
  });

  it("a finished run keeps its owner for its finalizer, but weighs on no replica and holds no drain", () => {
    const { r, advance } = replicas();
    r.leaseChanged(lease("b", "1"));
    r.leaseChanged(lease("b", "2"));
    r.owned("ns/1", "a", true);
    r.owned("ns/2", "b", true);
    expect(r.ownedByMe()).toEqual([]);
    expect(r.assignee()).toBe("a"); // neither counts: a tie, by name
    expect(r.actsOn("b", true)).toBe(false); // b removes its own finalizer while it lives
    advance(15_000);
    expect(r.orphaned()).toEqual(["ns/2"]);
    r.owned("ns/2", undefined, true); // the finalizer is off: nothing left to do
    expect(r.orphaned()).toEqual([]);
  });
});
