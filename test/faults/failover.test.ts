import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { openHarness, type Harness } from "../support/harness.js";
import { failover, formatFailover, TAKEOVER_BOUND_MS } from "./failover.js";

// Issue #7 item 2: two replicas, 200 runs over 4 VMs, the leader SIGKILLed mid-way. The figures are printed and
// written to test-artifacts/failover.md.

describe("failover", () => {
  let h: Harness;

  beforeAll(async () => {
    h = await openHarness("failover");
  });

  afterAll(async () => {
    await h?.close();
  });

  it("200 runs over 4 VMs, leader SIGKILLed mid-way: zero double leases, zero lost runs, every VM scratched", async () => {
    const f = await failover(h, { runs: 200, vms: 4 });
    const report = formatFailover(f);
    process.stdout.write(`\n${report}\n`);
    const dir = join(new URL("../..", import.meta.url).pathname, "test-artifacts");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "failover.md"), `# Failover\n\n${new Date().toISOString()}\n\n${report}\n`);
    expect(f.doubleLeases).toBe(0);
    expect(f.withoutLease).toEqual([]);
    expect(f.lost).toEqual([]);
    expect(f.retried).toBe(0);
    expect(f.reasons).toEqual({ Succeeded: 200 });
    expect(f.unscratched).toBe(0);
    expect(f.leasesLeft).toBe(0);
    expect(f.takeoverMs).toBeLessThan(TAKEOVER_BOUND_MS);
  });
});
