import { describe, expect, it } from "vitest";
import { formatDuration, parseDuration } from "../../../src/timing/duration.js";

describe("Go durations", () => {
  it.each([
    ["0s", 0],
    ["0", 0],
    ["90s", 90_000],
    ["1h30m", 5_400_000],
    ["1.5h", 5_400_000],
    ["250ms", 250],
    ["1m0s", 60_000],
    ["1000h", 3_600_000_000],
    ["2562047h", 9_223_369_200_000],
    [".5h", 1_800_000],
    ["5.m", 300_000],
    ["+1m", 60_000],
    ["+0", 0],
    ["1h2m3.5s", 3_723_500],
  ])("parses %s", (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(["", "10", "10 minutes", "-5s", "1d", "s", "2562048h", "99999999999999999999h", ".h", "+", "+-1s", "1..5s"])("rejects %j", (text) => expect(parseDuration(text)).toBeUndefined());

  it.each([
    [350, "350ms"],
    [45_000, "45s"],
    [60_000, "1m0s"],
    [3_600_000, "1h0m0s"],
    [5_430_000, "1h30m30s"],
  ])("formats %d as %s", (ms, text) => expect(formatDuration(ms)).toBe(text));
});
