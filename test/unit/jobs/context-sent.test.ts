import { describe, expect, it } from "vitest";
import { contextSent } from "../../../src/jobs/build.js";

describe("contextSent", () => {
  it("states size, duration and rate in binary units", () => {
    expect(contextSent(2 ** 30, 5100, "vm-1")).toBe("context: 1.0 GiB sent to VM vm-1 in 5.1 s (201 MiB/s)");
    expect(contextSent(16 * 2 ** 20, 80, "vm-2")).toBe("context: 16.0 MiB sent to VM vm-2 in 80 ms (200 MiB/s)");
    expect(contextSent(3072, 4, "vm-3")).toBe("context: 3.0 KiB sent to VM vm-3 in 4 ms (1 MiB/s)");
  });

  it("does not divide by zero for an instant send", () => {
    expect(contextSent(1024, 0, "vm-1")).toBe("context: 1.0 KiB sent to VM vm-1 in 0 ms (1 MiB/s)");
  });
});
