import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { superviseController, type SupervisedController } from "../support/controller.js";
import { openHarness, type Harness } from "../support/harness.js";
import { cellName, REPRESENTATIVE } from "../faults/cells.js";
import { failover, formatFailover, TAKEOVER_BOUND_MS } from "../faults/failover.js";
import { createFaultRepos, FAULT_CONTROLLER_ENV, reportTable, runCell, type CellResult } from "../faults/run-cell.js";

// A representative subset of the fault matrix (one cell per kind of fault) and a small failover, in npm test.
// The whole matrix and the 200-run failover are `npm run test:faults`; the cells are the same definitions.

describe("faults (subset of npm run test:faults)", () => {
  let h: Harness;

  beforeAll(async () => {
    h = await openHarness("faults-subset");
    await createFaultRepos(h);
  });

  afterAll(async () => {
    await h?.close();
  });

  describe("fault matrix cells", () => {
    let controller: SupervisedController;
    const results: CellResult[] = [];

    beforeAll(async () => {
      controller = await superviseController(h.env, { name: "faults-subset", extraEnv: FAULT_CONTROLLER_ENV });
    });

    afterAll(async () => {
      await controller?.stop();
      if (results.length > 0) await reportTable(results, "faults-subset.md");
    });

    for (const cell of REPRESENTATIVE) {
      it(cellName(cell), async () => {
        const result = await runCell({ h, controller }, cell);
        results.push(result);
        expect(result.pass, result.detail).toBe(true);
      });
    }
  });

  it("failover: 36 runs over 4 VMs, leader SIGKILLed mid-way: zero double leases, zero lost runs", { timeout: 900_000 }, async () => {
    const f = await failover(h, { runs: 36, vms: 4 });
    process.stdout.write(`\n${formatFailover(f)}\n`);
    expect(f.doubleLeases).toBe(0);
    expect(f.withoutLease).toEqual([]);
    expect(f.lost).toEqual([]);
    expect(f.retried).toBe(0);
    expect(f.unscratched).toBe(0);
    expect(f.leasesLeft).toBe(0);
    expect(f.takeoverMs).toBeLessThan(TAKEOVER_BOUND_MS);
  });
});
