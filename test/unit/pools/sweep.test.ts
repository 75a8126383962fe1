import { describe, expect, it } from "vitest";
import { orphanedLeases, type RunSummary } from "../../../src/pools/sweep.js";

const lease = (holder: string) => ({ namespace: "pools", pool: "builders", vm: "builders-0", holder });
const runs: Record<string, RunSummary> = {
  "a/live": { uid: "u1", attempt: 1, finished: false },
  "a/done": { uid: "u2", attempt: 0, finished: true },
};
const lookup = (ns: string, name: string) => runs[`${ns}/${name}`];

describe("sweeper: leases without a live run", () => {
  it.each([
    ["a/live/u1/1", undefined],
    ["a/live/u1/2", undefined],
    ["a/live/u1/0", "attempt 0 of a/live is over"],
    ["a/live/other-uid/1", "CustomRun a/live was re-created"],
    ["a/done/u2/0", "CustomRun a/done has finished"],
    ["a/gone/u3/0", "CustomRun a/gone is gone"],
    ["garbage", 'unreadable holder "garbage"'],
  ])("holder %s → %s", (holder, why) => {
    const found = orphanedLeases([lease(holder)], lookup);
    expect(found.map((o) => o.why)).toEqual(why ? [why] : []);
  });
});
