import { describe, expect, it } from "vitest";
import { newOutput, SKIPPED_MARKER } from "../../../src/cli/follow.js";

const lines = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i}\n`).join("");
const MARK = "--- 40 lines (1.2 KiB) cut ---\n";

describe("following a stored log: only what is new is printed", () => {
  it("prints the whole text first, then what was appended", () => {
    expect(newOutput("", lines(1, 3))).toBe(lines(1, 3));
    expect(newOutput(lines(1, 3), lines(1, 5))).toBe(lines(4, 5));
    expect(newOutput(lines(1, 5), lines(1, 5))).toBe("");
  });

  it("completes a line printed half", () => {
    expect(newOutput("line 1\nli", "line 1\nline 2\n")).toBe("ne 2\n");
  });

  it("a text cut head/tail style, whose tail still holds the last lines printed: carries on after them, nothing repeated", () => {
    const before = lines(1, 10) + MARK + lines(51, 60);
    const after = lines(1, 10) + MARK + lines(55, 70);
    expect(newOutput(before, after)).toBe(lines(61, 70));
  });

  it("a text cut for the first time, past what was printed: the new part after the marker line, no repeat", () => {
    const before = lines(1, 30);
    const after = lines(1, 10) + MARK + lines(26, 40);
    expect(newOutput(before, after)).toBe(lines(31, 40));
  });

  it("a tail that moved past every line printed: a marker that lines were skipped, then the new tail", () => {
    const before = lines(1, 10) + MARK + lines(51, 60);
    const after = lines(1, 10) + MARK + lines(90, 99);
    expect(newOutput(before, after)).toBe(SKIPPED_MARKER + lines(90, 99));
  });

  it("a text that does not share a line with what was printed: the marker, then all of it", () => {
    expect(newOutput("alpha\n", "beta\n")).toBe(SKIPPED_MARKER + "beta\n");
  });

  it("anchors on whole lines only: a line that merely ends like a printed one does not count", () => {
    const before = lines(1, 3) + "x\n";
    const after = lines(1, 2) + MARK + "ax\nnew\n";
    expect(newOutput(before, after)).toBe(SKIPPED_MARKER + MARK + "ax\nnew\n");
  });
});

describe("following a stored log: re-anchoring on fewer lines", () => {
  it("the stored marker line right before the last printed lines still anchors them", () => {
    const before = lines(1, 2) + lines(3, 4);
    const after = lines(1, 2) + MARK + lines(4, 6);
    expect(newOutput(before, after)).toBe(lines(5, 6));
  });

  it("one matching line in the middle of unrelated ones is no anchor", () => {
    const before = lines(1, 2) + "a\nb\nc\nd\nsame\n";
    const after = lines(1, 2) + MARK + "x\ny\nsame\nz\n";
    expect(newOutput(before, after)).toBe(SKIPPED_MARKER + MARK + "x\ny\nsame\nz\n");
  });
});
