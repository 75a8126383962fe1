import { describe, expect, it } from "vitest";
import { WorkQueue } from "../../../src/kube/work-queue.js";

const tick = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));

describe("WorkQueue", () => {
  it("never runs one key twice at once, and coalesces adds made while it runs into one more pass", async () => {
    let concurrent = 0;
    let maxConcurrent = 0;
    let calls = 0;
    const q = new WorkQueue(
      async () => {
        calls += 1;
        concurrent += 1;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        await tick(20);
        concurrent -= 1;
      },
      { concurrency: 4, onError: () => undefined },
    );
    q.add("a");
    await tick();
    q.add("a");
    q.add("a");
    q.add("a");
    await tick(80);
    expect(maxConcurrent).toBe(1);
    expect(calls).toBe(2);
    await q.stop();
  });

  it("keeps the earliest of several delayed adds", async () => {
    const seen: number[] = [];
    const start = Date.now();
    const q = new WorkQueue(
      async () => {
        seen.push(Date.now() - start);
      },
      { concurrency: 1, onError: () => undefined },
    );
    q.addAfter("a", 200);
    q.addAfter("a", 20);
    await tick(100);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBeLessThan(150);
    await q.stop();
  });

  it("backs off a failing key and reports the error", async () => {
    const errors: number[] = [];
    let calls = 0;
    const q = new WorkQueue(
      async () => {
        calls += 1;
        if (calls < 3) throw new Error("boom");
      },
      { concurrency: 1, onError: (_k, _e, retry) => errors.push(retry) },
    );
    q.add("a");
    await tick(700);
    expect(calls).toBe(3);
    expect(errors).toEqual([100, 200]);
    await q.stop();
  });

  it("a handler that always asks to run again at once does not starve the event loop", async () => {
    let calls = 0;
    const q = new WorkQueue(
      async () => {
        calls += 1;
        return { requeueAfterMs: 0 };
      },
      { concurrency: 1, onError: () => undefined },
    );
    q.add("a");
    let timerFired = false;
    await new Promise<void>((resolve) =>
      setTimeout(() => {
        timerFired = true;
        resolve();
      }, 20),
    );
    expect(timerFired).toBe(true);
    expect(calls).toBeGreaterThan(1);
    await q.stop();
  });

  it("honours requeueAfterMs from the handler", async () => {
    let calls = 0;
    const q = new WorkQueue(
      async () => {
        calls += 1;
        return calls === 1 ? { requeueAfterMs: 10 } : undefined;
      },
      { concurrency: 1, onError: () => undefined },
    );
    q.add("a");
    await tick(60);
    expect(calls).toBe(2);
    await q.stop();
  });

  it("a delay past what a timer holds (24.8 days) waits, instead of firing at once and spinning", async () => {
    let calls = 0;
    const q = new WorkQueue(
      async () => {
        calls += 1;
        return { requeueAfterMs: 1000 * 3_600_000 };
      },
      { concurrency: 1, onError: () => undefined },
    );
    q.add("a");
    q.addAfter("b", Number.POSITIVE_INFINITY);
    await tick(60);
    expect(calls).toBe(1);
    await q.stop();
  });
});
