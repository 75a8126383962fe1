import { describe, expect, it } from "vitest";
import type { KubernetesObject } from "@kubernetes/client-node";
import { countsOf, formatPools, poolViews } from "../../../src/cli/pools.js";

const NS = "builds";
const pool = (name: string) => ({ apiVersion: "pool.kubevirt.io/v1beta1", kind: "VirtualMachinePool", metadata: { name, namespace: NS } });
const vm = (name: string, pool: string, runStrategy = "Halted") => ({
  metadata: { name, namespace: NS, ownerReferences: [{ kind: "VirtualMachinePool", name: pool, controller: true }] },
  spec: { runStrategy },
});
const vmi = (name: string) => ({
  metadata: { name, namespace: NS },
  status: { phase: "Running", conditions: [{ type: "Ready", status: "True" }], interfaces: [{ ipAddress: "10.0.0.9" }] },
});
const lease = (vmName: string, pool: string, holder: string) => ({
  metadata: {
    name: `vmbuild-vm-${vmName}`,
    namespace: NS,
    labels: { "app.kubernetes.io/managed-by": "vmbuild", "vmbuild.dev/pool": pool, "vmbuild.dev/vm": vmName },
  },
  spec: { holderIdentity: holder },
});
const run = (name: string, extraFields: object) => ({
  metadata: { name, namespace: "team", uid: `uid-${name}` },
  spec: { customRef: { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild" } },
  status: { extraFields },
});
const slot = { platforms: ["linux/amd64"], pool: `${NS}/builders` };
const objs = (xs: object[]) => xs as KubernetesObject[];

describe("kubectl vmbuild pools", () => {
  const listed = {
    pools: objs([pool("builders"), pool("empty")]),
    vms: objs([vm("builders-0", "builders", "Always"), vm("builders-1", "builders", "Always"), vm("builders-2", "builders")]),
    vmis: objs([vmi("builders-0"), vmi("builders-1")]),
    leases: objs([lease("builders-0", "builders", "team/build-a/uid-build-a/0"), lease("builders-1", "builders", "vmbuild/warm")]),
    runs: objs([
      run("build-a", { phase: "Building", attempt: 0, slots: [{ ...slot, vm: "builders-0" }], queuedAt: "2025-01-01T10:00:00Z", phaseSince: "2025-01-01T10:00:05Z", leasedAt: "2025-01-01T10:00:01Z" }),
      run("build-b", { phase: "Queued", attempt: 0, slots: [slot], queuedAt: "2025-01-01T10:00:30Z", phaseSince: "2025-01-01T10:00:30Z" }),
    ]),
  };
  const now = new Date("2025-01-01T10:01:00Z");

  it("counts each pool's VMs: free, leased (to a run), warm (held by the keeper), and its queue", () => {
    const views = poolViews(listed, now);
    expect(views.map((p) => [p.name, countsOf(p)])).toEqual([
      ["builders", { total: 3, free: 1, leased: 1, warm: 1, queued: 1 }],
      ["empty", { total: 0, free: 0, leased: 0, warm: 0, queued: 0 }],
    ]);
  });

  it("prints a table, then each pool's VMs with the run holding it, and the queue", () => {
    expect(formatPools(poolViews(listed, now), NS)).toBe(
      [
        "POOL      VMS  FREE  LEASED  WARM  QUEUED",
        "builders  3    1     1       1     1",
        "empty     0    0     0       0     0",
        "",
        "builds/builders:",
        "  builders-0  building  team/build-a (attempt 0, Building)",
        "  builders-1  warm",
        "  builders-2  free",
        "  queued 1: team/build-b (waiting 30s)",
        "",
        "builds/empty:",
        "  no VMs",
        "",
      ].join("\n"),
    );
  });

  it("says so when the namespace has no pools", () => {
    expect(formatPools([], NS)).toBe("No VirtualMachinePools in builds.\n");
  });
});
