import { describe, expect, it } from "vitest";
import { BoundedLog, continuedMarker, cutLine, escapedBytes, nextSync, type SyncState } from "../../../src/jobs/log-copy.js";
import { logObject } from "../../../src/jobs/log-object.js";

const lines = (n: number, prefix = "line") => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
const fill = (log: BoundedLog, all: readonly string[]) => {
  for (const l of all) log.push(l);
  return log;
};

describe("BoundedLog: the stored copy's text", () => {
  it("keeps a log within the budget whole, with no marker", () => {
    const copy = fill(new BoundedLog(4096), ["STEP 1/2: FROM busybox", "[linux/arm64] aarch64", ""]).snapshot();
    expect(copy).toEqual({ text: "STEP 1/2: FROM busybox\n[linux/arm64] aarch64\n\n", bytes: 46, cut: false });
    expect(new BoundedLog(4096).snapshot()).toEqual({ text: "", bytes: 0, cut: false });
  });

  it("keeps the head and the tail around a marker saying what was cut, within the budget", () => {
    const all = lines(10_000);
    const copy = fill(new BoundedLog(4096), all).snapshot();
    const kept = copy.text.replace(/\n$/, "").split("\n");
    expect(kept[0]).toBe("line-0");
    expect(kept.at(-1)).toBe("line-9999");
    const marker = kept.findIndex((l) => l.startsWith("... [vmbuild: "));
    expect(kept[marker]).toMatch(/^\.\.\. \[vmbuild: [\d.]+ KiB \([\d,]+ lines\) cut here; the stored copy keeps its first 2 KiB and its last 2 KiB\] \.\.\.$/);
    // In order on both sides of the marker, one jump at it.
    const numbers = kept.filter((_, i) => i !== marker).map((l) => Number(l.split("-")[1]));
    const jumps = numbers.slice(1).map((n, i) => n - (numbers[i] ?? 0));
    expect(jumps.filter((j) => j !== 1)).toHaveLength(1);
    const cutLines = Number(/\(([\d,]+) lines\)/.exec(kept[marker] ?? "")?.[1]?.replaceAll(",", ""));
    expect(cutLines + kept.length - 1).toBe(all.length);
    expect(copy.bytes).toBe(all.reduce((sum, l) => sum + l.length + 1, 0));
    expect(copy.cut).toBe(true);
    expect(escapedBytes(copy.text) - 2).toBeLessThanOrEqual(4096 + 200);
  });

  it("counts bytes as they travel JSON-escaped: a log of control characters stays within the budget in the request", () => {
    const budget = 64 * 1024;
    const nasty = "\u0001\u0002\u001b[31m\"\\\t".repeat(200);
    const copy = fill(new BoundedLog(budget), Array.from({ length: 2000 }, () => nasty)).snapshot();
    expect(copy.cut).toBe(true);
    const body = JSON.stringify(logObject({ namespace: "team-a", name: "build-1", uid: "u".repeat(36) }, 0, {
      runName: "build-1",
      attempt: 0,
      replica: "vmbuild-abc-1",
      complete: true,
      ...copy,
    }));
    // Each line is 2.8 times as long escaped as raw: counted raw, the body would be about 3 times the budget.
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(budget + 1024);
    expect(copy.text.length).toBeLessThan(budget / 2.5);
  });

  it("cuts a line longer than a quarter of the budget at a character, with a note", () => {
    const long = "é".repeat(10_000);
    const cut = cutLine(long, 1000);
    expect(escapedBytes(cut)).toBeLessThanOrEqual(1000);
    expect(escapedBytes(cut)).toBeGreaterThan(950);
    expect(cut).toMatch(/^é+ \.\.\. \[vmbuild: line cut, 19\.5 KiB\]$/);
    expect(cutLine("short", 1000)).toBe("short");
    // Never half a surrogate pair.
    expect(cutLine("😀".repeat(1000), 500)).toMatch(/^(😀)+ \.\.\. /u);
    const copy = fill(new BoundedLog(4000), ["first", long, "last"]).snapshot();
    expect(copy.text).toMatch(/^first\né+ \.\.\. \[vmbuild: line cut, 19\.5 KiB\]\nlast\n$/);
  });

  it("continues another replica's copy after a marker naming this replica, within the budget, bytes added up", () => {
    const earlier = fill(new BoundedLog(4096), ["from a-1", "from a-2"]).snapshot();
    const mine = fill(new BoundedLog(4096), ["from b-1"]);
    const joined = mine.continuing(earlier, "vmbuild-b-7");
    joined.push("from b-2");
    expect(joined.snapshot()).toEqual({
      text: `from a-1\nfrom a-2\n${continuedMarker("vmbuild-b-7")}\nfrom b-1\nfrom b-2\n`,
      bytes: earlier.bytes + continuedMarker("vmbuild-b-7").length + 1 + 18,
      cut: false,
    });
    expect(continuedMarker("vmbuild-b-7")).toBe("--- continued on replica vmbuild-b-7 ---");

    // A full earlier copy, cut: the result is still within the budget and says it was cut.
    const big = fill(new BoundedLog(4096), lines(5000, "a")).snapshot();
    const after = fill(new BoundedLog(4096), lines(10, "b")).continuing(big, "vmbuild-b-7").snapshot();
    expect(after.cut).toBe(true);
    expect(escapedBytes(after.text)).toBeLessThanOrEqual(4096 + 400);
    expect(after.text).toMatch(/^a-0\n/);
    expect(after.text).toMatch(/--- continued on replica vmbuild-b-7 ---\nb-0\n(b-\d\n)+$/);
    expect(after.bytes).toBe(big.bytes + 41 + 40);
  });
});

describe("nextSync: when the copy is written", () => {
  const at = (over: Partial<SyncState> = {}): SyncState => ({ openedAt: 0, grown: false, closed: false, completeWritten: false, ...over });
  const INTERVAL = 10_000;

  it.each<[string, SyncState, number, ReturnType<typeof nextSync>]>([
    ["nothing before the first interval, however much was written", at({ grown: true }), 9_999, { write: false, checkInMs: 1 }],
    ["at the first interval, with lines", at({ grown: true }), 10_000, { write: true, checkInMs: INTERVAL }],
    ["at the first interval without lines: the object appears, empty and live", at(), 10_000, { write: true, checkInMs: INTERVAL }],
    ["an interval after the last try, grown", at({ lastTryAt: 10_000, grown: true }), 20_000, { write: true, checkInMs: INTERVAL }],
    ["an interval after the last try, not grown: nothing", at({ lastTryAt: 10_000 }), 25_000, { write: false, checkInMs: INTERVAL }],
    ["within an interval of the last try", at({ lastTryAt: 10_000, grown: true }), 15_000, { write: false, checkInMs: 5_000 }],
    ["closed within the first interval: one write, the only one", at({ grown: true, closed: true }), 3_000, { write: true }],
    ["closed, not grown since the last write: still once, to say complete", at({ lastTryAt: 10_000, closed: true }), 12_000, { write: true }],
    ["closed and written complete: done", at({ lastTryAt: 12_000, closed: true, completeWritten: true }), 30_000, { write: false }],
  ])("%s", (_what, state, now, expected) => {
    expect(nextSync(state, now, INTERVAL)).toEqual(expected);
  });
});
