import { describe, expect, it } from "vitest";
import { fairOrder, positionOf, type Waiting } from "../../../src/lease/fair-queue.js";

const at = (n: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString();
const run = (namespace: string, i: number, second: number): Waiting => ({
  key: `${namespace}/run-${i}`,
  namespace,
  queuedAt: at(second),
});

describe("fair queue", () => {
  it("is FIFO within one namespace", () => {
    const order = fairOrder([run("a", 2, 2), run("a", 0, 0), run("a", 1, 1)], new Map());
    expect(order).toEqual(["a/run-0", "a/run-1", "a/run-2"]);
  });

  it("puts a never-served namespace's single run ahead of a busy namespace's backlog", () => {
    const backlog = Array.from({ length: 20 }, (_, i) => run("a", i, i));
    const order = fairOrder([...backlog, run("b", 0, 100)], new Map([["a", at(5)]]));
    expect(positionOf("b/run-0", order)).toBe(0);
  });

  it("alternates between namespaces turn by turn (least recently served first)", () => {
    const a = Array.from({ length: 5 }, (_, i) => run("a", i, i));
    const b = Array.from({ length: 5 }, (_, i) => run("b", i, 50 + i));
    const served = new Map<string, string>();
    const turns: string[] = [];
    let waiting = [...a, ...b];
    for (let turn = 0; turn < 6; turn++) {
      const next = fairOrder(waiting, served)[0];
      if (!next) break;
      turns.push(next.split("/")[0] ?? "");
      served.set(next.split("/")[0] ?? "", at(1000 + turn));
      waiting = waiting.filter((w) => w.key !== next);
    }
    expect(turns).toEqual(["a", "b", "a", "b", "a", "b"]);
  });

  it("counts a run that is not queued yet as last", () => {
    expect(positionOf("x/y", ["a/1", "a/2"])).toBe(2);
  });
});
