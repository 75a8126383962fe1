import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { MAX_TIMER_MS, settledWithin, timerDelay } from "../../../src/timing/timers.js";

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

describe("settledWithin", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const settledAt = async (work: Promise<unknown>, ms: number): Promise<number> => {
    const start = Date.now();
    let at: number | undefined;
    void settledWithin(work, ms).then(() => (at = Date.now() - start));
    await vi.advanceTimersByTimeAsync(2 * ms);
    return at!;
  };

  it("ends when the work does, fulfilled or rejected, and never throws", async () => {
    const later = (fail: boolean) =>
      new Promise((resolve, reject) => setTimeout(() => (fail ? reject(new Error("no")) : resolve(1)), 300));
    expect(await settledAt(later(false), 1_000)).toBe(300);
    expect(await settledAt(later(true), 1_000)).toBe(300);
  });

  it("ends after ms when the work never settles", async () => {
    expect(await settledAt(new Promise(() => undefined), 1_000)).toBe(1_000);
  });
});
