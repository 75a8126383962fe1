import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { superviseController, type SupervisedController } from "../support/controller.js";
import { openHarness, type Harness } from "../support/harness.js";
import { CELLS, cellName } from "./cells.js";
import { createFaultRepos, FAULT_CONTROLLER_ENV, reportTable, runCell, type CellResult } from "./run-cell.js";

// The whole fault matrix: every fault × every phase, one after another on one supervised controller. The table
// (pass/fail, recovery time) is printed at the end and written to test-artifacts/faults.md.

describe("fault matrix", () => {
  let h: Harness;
  let controller: SupervisedController;
  const results: CellResult[] = [];

  beforeAll(async () => {
    h = await openHarness("faults");
    await createFaultRepos(h);
    controller = await superviseController(h.env, { name: "faults", extraEnv: FAULT_CONTROLLER_ENV });
  });

  afterAll(async () => {
    await controller?.stop();
    await h?.close();
    if (results.length > 0) await reportTable(results, "faults.md");
  });

  // Cells that do not apply have no test of their own: the table says why (test/unit/fault-cells.test.ts checks
  // that it does), and the report lists them.
  for (const cell of CELLS) {
    if ("notApplicable" in cell) {
      results.push({ cell, pass: true, detail: `n/a: ${cell.notApplicable}` });
      continue;
    }
    it(cellName(cell), async () => {
      const result = await runCell({ h, controller }, cell);
      results.push(result);
      expect(result.pass, result.detail).toBe(true);
    });
  }
});
