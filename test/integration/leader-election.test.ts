import type { CoordinationV1Api } from "@kubernetes/client-node";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTestenv } from "../../hack/testenv/index.js";
import { loadKube } from "../../src/kube/client.js";
import { startLeaderElection, type LeaderElector } from "../../src/kube/leader.js";
import { Cluster } from "../support/cluster.js";
import { waitUntil } from "../support/processes.js";

// Two electors against the real API server, their wall clocks 60 s apart (injected): the standby must neither take
// the lease while the leader renews nor wait for the skewed renewTime once the leader is gone.

const LEASE_MS = 6_000; // renew deadline 4 s; the leader renews every second
const log = pino({ level: "silent" });

interface Replica {
  name: string;
  down: boolean;
  elector: LeaderElector;
  started: number[];
  stopped: number[];
}

describe("leader election against the API server, wall clocks 60 s apart", () => {
  let ns: string;
  const replicas: Replica[] = [];
  const acting = new Set<string>();
  const violations: string[] = [];
  let monitor: NodeJS.Timeout | undefined;

  beforeAll(async () => {
    const env = readTestenv();
    if (!env) throw new Error("testenv is not up");
    ns = await new Cluster(env).namespace("leader");
    // Whatever the callbacks or isLeader() say, checked every 20 ms.
    monitor = setInterval(() => {
      const leaders = replicas.filter((r) => r.elector.isLeader()).map((r) => r.name);
      if (leaders.length > 1 || acting.size > 1) violations.push(`${new Date().toISOString()}: ${leaders} / ${[...acting]}`);
    }, 20);
  });

  afterAll(async () => {
    clearInterval(monitor);
    await Promise.all(replicas.map((r) => r.elector.stop()));
  });

  function start(name: string, wallSkewMs: number): Replica {
    const env = readTestenv()!;
    const api = loadKube(env.adminKubeconfig).coordination;
    const replica = { name, down: false, started: [], stopped: [] } as unknown as Replica;
    // The replica's view of the API server: every call fails while it is "down".
    const flaky = new Proxy(api, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== "function") return value;
        return (...args: unknown[]) =>
          replica.down ? Promise.reject(new Error("connect ECONNREFUSED")) : (value as (...a: unknown[]) => unknown).apply(target, args);
      },
    }) as CoordinationV1Api;
    replica.elector = startLeaderElection(flaky, {
      namespace: ns,
      name: "vmbuild-controller-leader",
      identity: name,
      leaseDurationMs: LEASE_MS,
      renewEveryMs: 2_000,
      log,
      wallClock: () => Date.now() + wallSkewMs,
      onStartedLeading: () => {
        if (acting.size > 0) violations.push(`${name} started leading while ${[...acting]} acted`);
        acting.add(name);
        replica.started.push(performance.now());
      },
      onStoppedLeading: () => {
        acting.delete(name);
        replica.stopped.push(performance.now());
      },
    });
    replicas.push(replica);
    return replica;
  }

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it("keeps one leader, hands over after the leader's API calls fail, and at once after a stop", async () => {
    const a = start("a", -30_000);
    await waitUntil(async () => a.elector.isLeader(), 10_000, () => "a never led");
    const b = start("b", 30_000);
    // b sees a renewTime a minute in its past, and must still leave a's lease alone.
    await sleep(2 * LEASE_MS);
    expect(a.elector.isLeader()).toBe(true);
    expect(b.started).toEqual([]);

    a.down = true;
    const cutAt = performance.now();
    await waitUntil(async () => b.elector.isLeader(), 3 * LEASE_MS, () => "b never took over");
    expect(a.stopped[0]! - cutAt).toBeLessThanOrEqual(LEASE_MS);
    expect(a.stopped[0]!).toBeLessThan(b.started[0]!);
    // b waits a whole lease after a's last renewal (a renewal sent before the cut).
    expect(b.started[0]! - cutAt).toBeGreaterThanOrEqual(LEASE_MS - 1_500);

    // a is back, as a standby; b stops and releases the lease: a takes it without waiting for expiry.
    a.down = false;
    await sleep(2_000);
    const stoppedAt = performance.now();
    acting.delete("b");
    await b.elector.stop();
    await waitUntil(async () => a.elector.isLeader(), 3 * LEASE_MS, () => "a never took over after b stopped");
    expect(a.started[1]! - stoppedAt).toBeLessThan(LEASE_MS);
    expect(violations).toEqual([]);
  });
});
