import { describe, expect, it } from "vitest";
import { LEASE_START_GRACE_MS, scratchStep, strayScratchStep, type ScratchStep } from "../../../src/kubevirt/scratch.js";
import type { VMView } from "../../../src/kubevirt/vm.js";

const vmi = (deleting: boolean): VMView["vmi"] => ({ phase: "Running", ready: true, deleting });

describe("scratchStep: stop, then delete the instance, then let the lease go", () => {
  it.each<[string, VMView | undefined, ScratchStep]>([
    ["running with its instance", { name: "a", wantsRunning: true, vmi: vmi(false) }, "stop"],
    ["asked to run, no instance yet", { name: "a", wantsRunning: true }, "stop"],
    ["wants to run while its instance is being deleted", { name: "a", wantsRunning: true, vmi: vmi(true) }, "stop"],
    ["stopped, its instance still there", { name: "a", wantsRunning: false, vmi: vmi(false) }, "deleteVMI"],
    ["stopped, its instance being deleted", { name: "a", wantsRunning: false, vmi: vmi(true) }, "wait"],
    ["stopped, no instance", { name: "a", wantsRunning: false }, "gone"],
    ["not seen at all", undefined, "gone"],
  ])("%s → %s", (_, vm, step) => expect(scratchStep(vm)).toBe(step));
});

describe("strayScratchStep: a Lease someone else took may have its VM's start on the way", () => {
  const now = new Date("2026-01-01T00:01:00.000Z");
  const leasedAgo = (ms: number) => new Date(now.getTime() - ms).toISOString();
  it.each<[string, VMView | undefined, ScratchStep]>([
    ["stopped, leased just now: its start may be on the way", { name: "a", wantsRunning: false, leaseHolder: "h", leasedSince: leasedAgo(100) }, "wait"],
    ["stopped, leased just under the grace ago", { name: "a", wantsRunning: false, leaseHolder: "h", leasedSince: leasedAgo(LEASE_START_GRACE_MS - 1) }, "wait"],
    ["stopped, leased the grace ago", { name: "a", wantsRunning: false, leaseHolder: "h", leasedSince: leasedAgo(LEASE_START_GRACE_MS) }, "gone"],
    ["stopped, the Lease says not when", { name: "a", wantsRunning: false, leaseHolder: "h" }, "gone"],
    ["started, leased just now", { name: "a", wantsRunning: true, leaseHolder: "h", leasedSince: leasedAgo(100) }, "stop"],
    ["stopped with its instance, leased just now", { name: "a", wantsRunning: false, vmi: vmi(false), leaseHolder: "h", leasedSince: leasedAgo(100) }, "deleteVMI"],
    ["not seen at all", undefined, "gone"],
  ])("%s → %s", (_, vm, step) => expect(strayScratchStep(vm, now)).toBe(step));
});
