import type { KubernetesObject } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { PoolQueues } from "../../../src/cache/pool-queues.js";

const POOL = "team-a/builders";
const queued = (namespace: string, name: string, second: number): KubernetesObject => {
  const at = new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString();
  return {
    metadata: { namespace, name },
    status: { extraFields: { phase: "Queued", attempt: 0, slots: [{ platforms: ["linux/amd64"], pool: POOL }], queuedAt: at, phaseSince: at } },
  } as KubernetesObject;
};

/** A runs cache that counts how often it is listed: each list is one ranking. */
function cacheOf(runs: KubernetesObject[]) {
  const cache = { lists: 0, runs, list: () => (cache.lists++, [...cache.runs]) };
  return cache;
}

describe("PoolQueues", () => {
  it("ranks a pool's queue once, however often it is asked between changes of the runs", () => {
    const cache = cacheOf([queued("team-a", "second", 2), queued("team-a", "first", 1)]);
    const queues = new PoolQueues(cache);
    const first = queues.of(POOL);
    expect(queues.of(POOL)).toBe(first);
    expect(cache.lists).toBe(1);
    expect(first).toEqual([
      { key: "team-a/first", demand: 1 },
      { key: "team-a/second", demand: 1 },
    ]);
  });

  it("ranks afresh after a change of the runs, and per pool", () => {
    const cache = cacheOf([queued("team-a", "first", 1)]);
    const queues = new PoolQueues(cache);
    expect(queues.of(POOL).map((w) => w.key)).toEqual(["team-a/first"]);
    expect(queues.of("team-a/other")).toEqual([]);
    expect(cache.lists).toBe(2);

    cache.runs = [...cache.runs, queued("team-b", "new", 3)];
    queues.runsChanged();
    expect(queues.of(POOL).map((w) => w.key)).toEqual(["team-a/first", "team-b/new"]);
    expect(cache.lists).toBe(3);
  });

  it("keeps its rankings through changes of runs that neither wait nor were in a queue", () => {
    const building = {
      metadata: { namespace: "team-a", name: "building" },
      status: { extraFields: { phase: "Building", attempt: 0, slots: [{ platforms: ["linux/amd64"], pool: POOL, vm: "vm-0" }] } },
    } as KubernetesObject;
    const first = queued("team-a", "first", 1);
    const cache = cacheOf([building, first]);
    const queues = new PoolQueues(cache);
    expect(queues.of(POOL).map((w) => w.key)).toEqual(["team-a/first"]);
    queues.runChanged(building);
    queues.runChanged({ metadata: { namespace: "team-a", name: "just-created" } });
    queues.of(POOL);
    expect(cache.lists).toBe(1);

    // A waiting run's change, and a run leaving the queue (it took a VM), rank afresh.
    const second = queued("team-b", "second", 2);
    cache.runs = [...cache.runs, second];
    queues.runChanged(second);
    expect(queues.of(POOL).map((w) => w.key)).toEqual(["team-a/first", "team-b/second"]);
    const leased = { ...first, status: { extraFields: { ...(first as { status: { extraFields: object } }).status.extraFields, phase: "Starting" } } };
    cache.runs = [building, leased, second];
    queues.runChanged(leased);
    expect(queues.of(POOL).map((w) => w.key)).toEqual(["team-b/second"]);
    expect(cache.lists).toBe(3);
  });
});
