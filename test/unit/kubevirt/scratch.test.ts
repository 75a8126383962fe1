import { describe, expect, it } from "vitest";
import { scratchStep, type ScratchStep } from "../../../src/kubevirt/scratch.js";
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
