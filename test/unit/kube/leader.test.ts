import { ApiException, type CoordinationV1Api, type V1Lease } from "@kubernetes/client-node";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { startLeaderElection, type LeaderElector } from "../../../src/kube/leader.js";

// Replicas with clocks of their own against one in-memory Lease, under fake timers. Wall clocks 30 s apart must
// not matter: expiry is measured on each replica's own monotonic clock, from when it saw the Lease change.

const LEASE_MS = 15_000;
const RENEW_MS = 5_000; // what the controller passes: lease / 3
const DEADLINE_MS = 10_000; // the default: 2/3 of the lease
const STEP_MS = 50;
const log = pino({ level: "silent" });

/** One Lease with the API server's optimistic concurrency: a write with a stale resourceVersion gets 409. */
class FakeLeaseStore {
  lease: V1Lease | undefined;
  /** Every write: when (fake time) and for whom. */
  writes: { at: number; holder: string | undefined }[] = [];
  private version = 0;
  reads = 0;
  read(): V1Lease {
    this.reads += 1;
    if (!this.lease) throw apiError(404);
    return structuredClone(this.lease);
  }
  create(body: V1Lease): V1Lease {
    if (this.lease) throw apiError(409);
    return this.store(body);
  }
  replace(body: V1Lease): V1Lease {
    if (!this.lease) throw apiError(404);
    if (body.metadata?.resourceVersion !== this.lease.metadata?.resourceVersion) throw apiError(409);
    return this.store(body);
  }
  private store(body: V1Lease): V1Lease {
    this.version += 1;
    this.lease = structuredClone({ ...body, metadata: { ...body.metadata, resourceVersion: String(this.version) } });
    this.writes.push({ at: Date.now(), holder: body.spec?.holderIdentity });
    return structuredClone(this.lease);
  }
}

const apiError = (code: number) => new ApiException(code, `HTTP ${code}`, { message: `status ${code}` }, {});

/** none; down: every call fails; replies-lost: calls reach the store, their replies fail; hang: never answers. */
type Fault = "none" | "down" | "replies-lost" | "hang";

interface Replica {
  name: string;
  fault: Fault;
  elector: LeaderElector;
  startedLeading: number[];
  stoppedLeading: number[];
}

let store: FakeLeaseStore;
let replicas: Replica[];
/** Replicas acting as leader, as their callbacks say (a replica stops acting before it calls stop()). */
let acting: Set<string>;
let violations: string[];
let t0: number;

beforeEach(() => {
  vi.useFakeTimers();
  t0 = Date.now();
  store = new FakeLeaseStore();
  replicas = [];
  acting = new Set();
  violations = [];
});

afterEach(async () => {
  for (const r of replicas) r.fault = "down";
  // A replica whose renewal hangs waits out the renew deadline in stop() before it gives up on that renewal.
  await Promise.all([...replicas.map((r) => r.elector.stop()), vi.advanceTimersByTimeAsync(DEADLINE_MS + 5_000)]);
  vi.useRealTimers();
});

const elapsed = () => Date.now() - t0;

/** A client whose calls take latencyMs (half each way) and suffer the replica's fault. */
function client(replica: () => Replica, latencyMs: number): CoordinationV1Api {
  const call = async <T>(op: () => T): Promise<T> => {
    if (replica().fault === "hang") return new Promise<T>(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, latencyMs / 2));
    if (replica().fault === "down") throw new Error("connect ECONNREFUSED");
    const result = op();
    await new Promise((resolve) => setTimeout(resolve, latencyMs / 2));
    if (replica().fault === "replies-lost") throw new Error("socket hang up");
    return result;
  };
  return {
    readNamespacedLease: () => call(() => store.read()),
    createNamespacedLease: ({ body }: { body: V1Lease }) => call(() => store.create(body)),
    replaceNamespacedLease: ({ body }: { body: V1Lease }) => call(() => store.replace(body)),
  } as unknown as CoordinationV1Api;
}

/** wallSkewMs shifts the wall clock (renewTime, acquireTime); each replica's monotonic clock has its own origin. */
function startReplica(name: string, wallSkewMs: number, latencyMs = 40): Replica {
  const origin = (replicas.length + 1) * 1_000_000;
  const replica = { name, fault: "none", startedLeading: [], stoppedLeading: [] } as unknown as Replica;
  replica.elector = startLeaderElection(client(() => replica, latencyMs), {
    namespace: "vmbuild-system",
    name: "vmbuild-controller-leader",
    identity: name,
    leaseDurationMs: LEASE_MS,
    renewEveryMs: RENEW_MS,
    log,
    now: () => origin + elapsed(),
    wallClock: () => Date.now() + wallSkewMs,
    onStartedLeading: () => {
      if (acting.size > 0) violations.push(`${elapsed()}: ${name} started leading while ${[...acting]} acted`);
      acting.add(name);
      replica.startedLeading.push(elapsed());
    },
    onStoppedLeading: () => {
      acting.delete(name);
      replica.stoppedLeading.push(elapsed());
    },
  });
  replicas.push(replica);
  return replica;
}

/** Advance time step by step, checking at every step that at most one replica leads. */
async function run(ms: number) {
  for (let t = 0; t < ms; t += STEP_MS) {
    await vi.advanceTimersByTimeAsync(STEP_MS);
    const leaders = replicas.filter((r) => r.elector.isLeader()).map((r) => r.name);
    if (leaders.length > 1) violations.push(`${elapsed()}: ${leaders} all report isLeader()`);
    if (acting.size > 1) violations.push(`${elapsed()}: ${[...acting]} all act`);
  }
}

/** Stop a replica as the controller does: stop acting, then stop campaigning (which releases the lease). */
async function stopReplica(r: Replica) {
  acting.delete(r.name);
  await Promise.all([r.elector.stop(), vi.advanceTimersByTimeAsync(1_000)]);
}

const leader = () => replicas.find((r) => r.elector.isLeader());

describe("leader election with clocks that disagree", () => {
  it("never has two leaders: three replicas 30 s apart in wall time, through outages, lost replies and stops", async () => {
    const a = startReplica("a", 0);
    await run(1_000);
    startReplica("fast", 30_000);
    startReplica("slow", -30_000);
    await run(30_000);
    expect(leader()?.name).toBe("a");

    // Each fault on whoever leads, long enough for a takeover, then healed.
    for (const fault of ["down", "replies-lost", "hang", "down", "replies-lost"] as const) {
      const current = leader();
      expect(current).toBeDefined();
      current!.fault = fault;
      await run(LEASE_MS + 2 * RENEW_MS);
      expect(current!.elector.isLeader()).toBe(false);
      expect(leader()).toBeDefined();
      expect(leader()).not.toBe(current);
      if (fault !== "hang") current!.fault = "none";
      await run(20_000);
    }
    await stopReplica(leader()!);
    await run(20_000);
    expect(leader()).toBeDefined();
    expect(a.startedLeading.length).toBeGreaterThan(0);
    expect(violations).toEqual([]);
  });

  for (const [skew, fault] of [
    [30_000, "down"],
    [-30_000, "down"],
    [30_000, "replies-lost"],
    [30_000, "hang"],
  ] as const) {
    it(`a leader whose API calls fail (${fault}) steps down before a standby ${skew > 0 ? "+" : ""}${skew / 1000} s ahead takes over`, async () => {
      const a = startReplica("a", 0);
      await run(1_000);
      const b = startReplica("b", skew);
      await run(20_000);
      expect(a.elector.isLeader()).toBe(true);

      a.fault = fault;
      const cutAt = elapsed();
      await run(LEASE_MS + 2 * RENEW_MS);
      // a's last renewal that landed (with replies lost, a does not know it did)
      const lastWrite = store.writes.filter((w) => w.holder === "a").at(-1)!.at - t0;
      const [stepDown] = a.stoppedLeading;
      const [takeover] = b.startedLeading;
      expect(stepDown).toBeDefined();
      expect(takeover).toBeDefined();
      // a stops within the renew deadline of its last successful renewal, which was before the cut.
      expect(stepDown! - cutAt).toBeLessThanOrEqual(DEADLINE_MS);
      expect(stepDown!).toBeLessThan(takeover!);
      // b waits a whole lease after the record last changed, and no more than its first look after that + a lease
      // + one poll of its own (plus the fake's latency).
      expect(takeover! - lastWrite).toBeGreaterThanOrEqual(LEASE_MS);
      expect(takeover! - lastWrite).toBeLessThanOrEqual(LEASE_MS + RENEW_MS + 200);
      expect(violations).toEqual([]);
    });
  }

  it("takes over at once after the leader stops (released lease)", async () => {
    const a = startReplica("a", 0);
    await run(1_000);
    const b = startReplica("b", -30_000);
    await run(20_000);
    expect(a.elector.isLeader()).toBe(true);
    const stoppedAt = elapsed();
    await stopReplica(a);
    await run(RENEW_MS);
    expect(b.startedLeading[0]! - stoppedAt).toBeLessThan(RENEW_MS / 2 + 1_000);
    expect(store.lease?.spec?.holderIdentity).toBe("b");
    expect(violations).toEqual([]);
  });

  it("releases the lease also when stopped while a renewal is in flight (the release does not lose to it)", async () => {
    const latencyMs = 2_000; // a renewal takes 2 s (a replace; 4 s with a read first): a stop lands inside one
    const a = startReplica("a", 0, latencyMs);
    await run(6_000);
    const b = startReplica("b", 30_000);
    await run(20_000);
    expect(a.elector.isLeader()).toBe(true);
    // Just after the next renewal was sent (a renewal's write, its reply, a renew period): a release sent now
    // reads the version that renewal replaces, and the renewal lands before the release's replace.
    const writes = store.writes.length;
    while (store.writes.length === writes) await run(STEP_MS);
    await run(latencyMs / 2 + DEADLINE_MS / 4 + 100);
    const stoppedAt = elapsed();
    acting.delete("a");
    await Promise.all([a.elector.stop(), run(4 * latencyMs)]);
    await run(RENEW_MS);
    expect(store.lease?.spec?.holderIdentity).toBe("b");
    expect(b.startedLeading[0]! - stoppedAt).toBeLessThan(4 * latencyMs + RENEW_MS);
    expect(violations).toEqual([]);
  });

  // A replica that starts next to a lease written by a node whose clock is off by 30 s, and that nobody renews.
  for (const skew of [-30_000, 30_000]) {
    it(`a new replica waits one lease from its first look, whatever the renewTime (${skew / 1000} s off) says`, async () => {
      store.create({
        metadata: { name: "vmbuild-controller-leader", namespace: "vmbuild-system" },
        spec: { holderIdentity: "ghost", leaseDurationSeconds: LEASE_MS / 1000, renewTime: new Date(Date.now() + skew) },
      });
      const b = startReplica("b", 0);
      await run(LEASE_MS - 100);
      expect(b.elector.isLeader()).toBe(false);
      await run(RENEW_MS);
      expect(b.elector.isLeader()).toBe(true);
      expect(store.lease?.spec?.holderIdentity).toBe("b");
    });
  }

  it("renews over its own last write without reading the Lease first, and reads it once that write conflicts", async () => {
    const a = startReplica("a", 0);
    await run(1_000);
    expect(a.elector.isLeader()).toBe(true);
    const [reads, writes] = [store.reads, store.writes.length];
    await run(10 * RENEW_MS);
    expect(store.writes.length - writes).toBeGreaterThanOrEqual(9);
    expect(store.reads).toBe(reads);
    // Someone else writes it (an admin, a replica's stale copy): a's next renewal conflicts, then it reads.
    store.replace({ ...store.read(), spec: { ...store.lease!.spec, leaseDurationSeconds: LEASE_MS / 1000 } });
    const before = store.reads;
    await run(2 * RENEW_MS);
    expect(store.reads).toBeGreaterThan(before);
    expect(a.elector.isLeader()).toBe(true);
    expect(store.lease?.spec?.holderIdentity).toBe("a");
    expect(violations).toEqual([]);
  });

  it("writes renewTime from its own wall clock, for information only", async () => {
    startReplica("a", 30_000);
    await run(1_000);
    const renew = new Date(store.lease!.spec!.renewTime!).getTime();
    expect(renew - Date.now()).toBeGreaterThan(28_000);
  });

  it("refuses a renew deadline that is not shorter than the lease", () => {
    const opts = {
      namespace: "n",
      name: "l",
      identity: "a",
      leaseDurationMs: LEASE_MS,
      renewEveryMs: RENEW_MS,
      log,
      onStartedLeading: () => undefined,
      onStoppedLeading: () => undefined,
    };
    expect(() => startLeaderElection(client(() => replicas[0]!, 0), { ...opts, renewDeadlineMs: LEASE_MS })).toThrow(
      /renewDeadlineMs/,
    );
  });
});
