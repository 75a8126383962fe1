import { describe, expect, it } from "vitest";
import { AddressPool } from "../../hack/kubevirt-sim/addresses.js";

describe("the stand-in's VM addresses", () => {
  it("are handed out round-robin: a released address comes back only after every other one", () => {
    const pool = new AddressPool("10.231.7.1");
    const first = pool.allocate();
    expect(first).toBe("10.231.7.10");
    pool.release(first);
    expect(pool.allocate()).toBe("10.231.7.11");
    const rest = Array.from({ length: 243 }, () => pool.allocate());
    expect(rest.at(-1)).toBe("10.231.7.254");
    // .10 was released long ago; .11 to .254 are taken.
    expect(pool.allocate()).toBe("10.231.7.10");
  });

  it("skips addresses in use after wrapping, and says so when none is left", () => {
    const pool = new AddressPool("10.231.7.1");
    const all = Array.from({ length: 245 }, () => pool.allocate());
    expect(new Set(all).size).toBe(245);
    expect(() => pool.allocate()).toThrow(/no free address in 10\.231\.7\.10-254/);
    pool.release("10.231.7.100");
    expect(pool.allocate()).toBe("10.231.7.100");
  });
});
