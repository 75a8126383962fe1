import { describe, expect, it } from "vitest";
import { CELLS, cellName, FAULTS, PHASES, REPRESENTATIVE } from "../faults/cells.js";

// The fault matrix's table itself: complete, and every cell either states the outcome it expects or why it does
// not apply (so no cell is skipped silently).

describe("fault matrix cells", () => {
  it("has exactly one cell per fault × phase", () => {
    const names = CELLS.map(cellName);
    expect(new Set(names).size).toBe(FAULTS.length * PHASES.length);
    expect(names).toHaveLength(FAULTS.length * PHASES.length);
  });

  it("every cell expects a reason and says why, or says why it does not apply", () => {
    for (const cell of CELLS) {
      if ("notApplicable" in cell) expect(cell.notApplicable.length, cellName(cell)).toBeGreaterThan(20);
      else {
        expect(cell.expect.reason, cellName(cell)).toMatch(/^[A-Z][A-Za-z]+$/);
        expect(cell.why.length, cellName(cell)).toBeGreaterThan(20);
      }
    }
  });

  it("the subset in npm test covers every fault, applicable cells only", () => {
    expect(REPRESENTATIVE.every((c) => !("notApplicable" in c))).toBe(true);
    expect(new Set(REPRESENTATIVE.map((c) => c.fault)).size).toBeGreaterThanOrEqual(6);
  });
});
