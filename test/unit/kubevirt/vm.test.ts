import { describe, expect, it } from "vitest";
import { belongsToPool, runPatch, vmView, VirtualMachineSchema, VMISchema } from "../../../src/kubevirt/vm.js";

const vm = (spec: object) =>
  VirtualMachineSchema.parse({
    metadata: { name: "builders-0", namespace: "ns", ownerReferences: [{ kind: "VirtualMachinePool", name: "builders" }] },
    spec,
  });

describe("KubeVirt VM adapter logic", () => {
  it("starts and stops through runStrategy by default", () => {
    expect(runPatch(vm({ runStrategy: "Halted" }), true)).toEqual({ spec: { runStrategy: "Always" } });
    expect(runPatch(vm({ runStrategy: "Always" }), false)).toEqual({ spec: { runStrategy: "Halted" } });
  });

  it("keeps `running` for VMs that use it, as the article's pool does", () => {
    expect(runPatch(vm({ running: false }), true)).toEqual({ spec: { running: true } });
    expect(runPatch(vm({ running: true }), false)).toEqual({ spec: { running: false } });
  });

  it("knows which pool a VM belongs to", () => {
    expect(belongsToPool(vm({}), "builders")).toBe(true);
    expect(belongsToPool(vm({}), "other")).toBe(false);
  });

  it("views a ready VMI with its address", () => {
    const vmi = VMISchema.parse({
      metadata: { name: "builders-0", namespace: "ns" },
      status: { phase: "Running", conditions: [{ type: "Ready", status: "True" }], interfaces: [{ ipAddress: "10.0.0.5" }] },
    });
    expect(vmView(vm({ runStrategy: "Always" }), vmi, { namespace: "ns", pool: "builders", vm: "builders-0", holder: "a/b/c/0", since: "2026-01-01T00:00:00.000Z" })).toEqual({
      name: "builders-0",
      wantsRunning: true,
      vmi: { phase: "Running", ready: true, address: "10.0.0.5", deleting: false },
      leaseHolder: "a/b/c/0",
      leasedSince: "2026-01-01T00:00:00.000Z",
    });
  });
});
