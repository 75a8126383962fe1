import { describe, expect, it } from "vitest";
import { backoffMs } from "../../../src/timing/backoff.js";

describe("backoffMs", () => {
  const policy = { baseMs: 100, maxMs: 2_000, maxExponent: 5 };

  it("doubles from the base with each failure", () => {
    expect([0, 1, 2, 3, 4].map((n) => backoffMs(n, policy))).toEqual([100, 200, 400, 800, 1600]);
  });

  it("stops at the cap", () => {
    expect(backoffMs(5, policy)).toBe(2_000);
    expect(backoffMs(1_000, policy)).toBe(2_000);
  });

  it("stops doubling at the largest exponent even below the cap", () => {
    const slow = { baseMs: 50, maxMs: Number.MAX_SAFE_INTEGER, maxExponent: 16 };
    expect(backoffMs(16, slow)).toBe(50 * 65_536);
    expect(backoffMs(1_000, slow)).toBe(50 * 65_536);
  });
});
