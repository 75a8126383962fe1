import { describe, expect, it } from "vitest";
import { z } from "zod";
import { parseOnce } from "../../../src/kube/parse-once.js";

describe("parseOnce", () => {
  it("parses each object once, and an object that replaced it afresh", () => {
    let parses = 0;
    const schema = z.object({ n: z.number() }).transform((o) => {
      parses += 1;
      return o.n;
    });
    const parse = parseOnce(schema);
    const v1 = { n: 1 };
    expect(parse(v1).data).toBe(1);
    expect(parse(v1).data).toBe(1);
    expect(parses).toBe(1);
    // An informer replaces the object on change: the new version is parsed.
    expect(parse({ n: 2 }).data).toBe(2);
    expect(parses).toBe(2);
    expect(parse({ n: "x" }).success).toBe(false);
    expect(parse(undefined).success).toBe(false);
  });
});
