import { describe, expect, it } from "vitest";
import { MAX_TIMER_MS, timerDelay } from "../../../src/timing/timers.js";

describe("timerDelay", () => {
  it.each([
    [0, 0],
    [-5, 0],
    [1500, 1500],
    [MAX_TIMER_MS, MAX_TIMER_MS],
    [1000 * 3_600_000, MAX_TIMER_MS],
    [Number.POSITIVE_INFINITY, MAX_TIMER_MS],
    [Number.NaN, MAX_TIMER_MS],
  ])("%d → %d", (ms, want) => expect(timerDelay(ms)).toBe(want));
});
