import { performance } from "node:perf_hooks";
import { V1MicroTime, type CoordinationV1Api, type V1Lease } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { settledWithin } from "../timing/timers.js";
import { describeApiError, isConflict, isNotFound } from "./errors.js";

// Leader election on a coordination.k8s.io Lease, as client-go does it: one replica acts, the others keep warm
// caches. The per-VM leases stay the safety net if two ever act at once.
//
// No decision compares another node's clock with ours. A standby counts the lease as expired once the record has
// not changed for the lease duration, on its own monotonic clock, since it first saw that record. The leader stops
// acting once it has not renewed for the renew deadline (shorter than the lease), on its own monotonic clock,
// counted from before it sent its last successful renewal. Any standby saw that renewal later than it was sent, so
// the leader stops before any standby may take over, whatever the wall clocks say. Clocks running at different
// rates are tolerated up to the ratio lease / deadline (1.5 by default). renewTime and acquireTime are for people.

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  /** A standby takes over once the Lease has not changed for this long (on its own clock). */
  leaseDurationMs: number;
  /** The leader stops acting when it has not renewed for this long; must be below the lease. Default: 2/3 of it. */
  renewDeadlineMs?: number;
  /** The leader renews this often (at most a quarter of the renew deadline); a standby looks every half of it. */
  renewEveryMs: number;
  log: Logger;
  onStartedLeading: () => void;
  /** Called once when leadership is lost; the process should stop acting at once. */
  onStoppedLeading: () => void;
  /** Monotonic milliseconds, for every decision. Default: performance.now. */
  now?: () => number;
  /** Wall-clock milliseconds, only for the renewTime and acquireTime written. Default: Date.now. */
  wallClock?: () => number;
}

export interface LeaderElector {
  isLeader(): boolean;
  /** Stop campaigning; a leader gives the lease up so a standby takes over without waiting for expiry. */
  stop(): Promise<void>;
}

/** The record last read or written, and when (our monotonic clock) we first saw it. */
interface Observation {
  key?: string;
  at: number;
  holder?: string;
  /** The Lease as our last write returned it, while that write made us the holder. */
  ours?: V1Lease;
}

export function startLeaderElection(api: CoordinationV1Api, opts: LeaderElectionOptions): LeaderElector {
  const now = opts.now ?? (() => performance.now());
  const leaseMs = opts.leaseDurationMs;
  const deadlineMs = opts.renewDeadlineMs ?? Math.round((leaseMs * 2) / 3);
  if (!(deadlineMs > 0 && deadlineMs < leaseMs && opts.renewEveryMs > 0)) {
    throw new Error(
      `leader election: need 0 < renewDeadlineMs (${deadlineMs}) < leaseDurationMs (${leaseMs}) and renewEveryMs > 0`,
    );
  }
  // Renew often enough that a few failed attempts in a row (an API server restart) still fit in the deadline.
  const renewEveryMs = Math.min(opts.renewEveryMs, deadlineMs / 4);
  const seen: Observation = { at: 0 };
  let leader = false;
  let stopped = false;
  /** When the last successful renewal was sent. */
  let renewedAt = -Infinity;
  let timer: NodeJS.Timeout | undefined;
  let deadlineTimer: NodeJS.Timeout | undefined;
  /** The attempt under way, if any: a release sent beside it would lose to its renewal (409) and not happen. */
  let attempt: Promise<void> = Promise.resolve();
  const attemptNow = () => {
    attempt = tick();
  };

  const tick = async () => {
    const sentAt = now();
    let outcome: Outcome | "failed" = "failed";
    try {
      outcome = await tryAcquireOrRenew(api, opts, seen, now);
    } catch (err) {
      opts.log.warn({ err: describeApiError(err) }, "leader election: could not reach the API server");
    }
    if (stopped) return;
    if (outcome === "held") {
      renewedAt = sentAt;
      if (!leader && now() - renewedAt < deadlineMs) {
        leader = true;
        opts.log.info({ identity: opts.identity }, "became leader");
        opts.onStartedLeading();
      }
    } else if (outcome === "taken") {
      lose("another replica holds the lease");
    }
    // "conflict": someone wrote the lease meanwhile; read it again before concluding anything.
    watchDeadline();
    const wait = !leader ? opts.renewEveryMs / 2 : outcome === "held" ? renewEveryMs : renewEveryMs / 2;
    timer = setTimeout(attemptNow, wait);
  };
  // A timer of its own, so that a renewal stuck in a request cannot keep the leader acting past the deadline.
  const watchDeadline = () => {
    clearTimeout(deadlineTimer);
    if (!leader) return;
    const left = renewedAt + deadlineMs - now();
    if (left <= 0) lose("could not renew the lease in time");
    else deadlineTimer = setTimeout(watchDeadline, left);
  };
  const lose = (why: string) => {
    if (!leader) return;
    leader = false;
    clearTimeout(deadlineTimer);
    opts.log.warn({ why }, "lost leadership");
    opts.onStoppedLeading();
  };
  attemptNow();

  return {
    isLeader: () => leader && now() - renewedAt < deadlineMs,
    async stop() {
      stopped = true;
      leader = false;
      clearTimeout(timer);
      clearTimeout(deadlineTimer);
      // At most a renew deadline: an API server that never answers must not hold up the shutdown.
      await settledWithin(attempt, deadlineMs);
      if (seen.holder !== opts.identity) return;
      await release(api, opts).catch((err: unknown) =>
        opts.log.warn({ err: describeApiError(err) }, "could not release the leader lease"),
      );
    },
  };
}

/** held: ours now; taken: another replica's and not expired; conflict: changed under us, unknown. */
type Outcome = "held" | "taken" | "conflict";

async function tryAcquireOrRenew(
  api: CoordinationV1Api,
  opts: LeaderElectionOptions,
  seen: Observation,
  now: () => number,
): Promise<Outcome> {
  const stamp = new V1MicroTime((opts.wallClock ?? Date.now)());
  const spec = {
    holderIdentity: opts.identity,
    leaseDurationSeconds: Math.ceil(opts.leaseDurationMs / 1000),
    renewTime: stamp,
  };
  const write = async (request: () => Promise<V1Lease>): Promise<Outcome> => {
    seen.ours = undefined;
    try {
      const written = await request();
      observe(seen, written, now);
      seen.ours = written;
      return "held";
    } catch (err) {
      if (isConflict(err)) return "conflict";
      throw err;
    }
  };
  // The holder renews over its own last write without reading first: were the Lease changed since, the
  // resourceVersion conflicts (409) and the next attempt reads it.
  if (seen.ours) {
    const ours = seen.ours;
    return write(() =>
      api.replaceNamespacedLease({ name: opts.name, namespace: opts.namespace, body: { ...ours, spec: { ...ours.spec, ...spec } } }),
    );
  }
  let lease: V1Lease;
  try {
    lease = await api.readNamespacedLease({ name: opts.name, namespace: opts.namespace });
  } catch (err) {
    if (!isNotFound(err)) throw err;
    return write(() =>
      api.createNamespacedLease({
        namespace: opts.namespace,
        body: { metadata: { name: opts.name, namespace: opts.namespace }, spec: { ...spec, acquireTime: stamp, leaseTransitions: 0 } },
      }),
    );
  }
  observe(seen, lease, now);
  const current = lease.spec ?? {};
  const mine = current.holderIdentity === opts.identity;
  // Expired: unchanged for the holder's lease duration since we first saw it. Empty holder: released, free now.
  const durationMs = (current.leaseDurationSeconds ?? 0) * 1000 || opts.leaseDurationMs;
  if (current.holderIdentity && !mine && now() - seen.at < durationMs) return "taken";
  return write(() =>
    api.replaceNamespacedLease({
      name: opts.name,
      namespace: opts.namespace,
      body: {
        ...lease,
        spec: {
          ...current,
          ...spec,
          ...(mine ? {} : { acquireTime: stamp, leaseTransitions: (current.leaseTransitions ?? 0) + 1 }),
        },
      },
    }),
  );
}

/** Restart the expiry count when the record differs from the one seen last (every write changes resourceVersion). */
function observe(seen: Observation, lease: V1Lease, now: () => number) {
  const key = JSON.stringify([lease.metadata?.uid, lease.metadata?.resourceVersion, lease.spec]);
  if (key === seen.key) return;
  seen.key = key;
  seen.at = now();
  seen.holder = lease.spec?.holderIdentity;
}

async function release(api: CoordinationV1Api, opts: LeaderElectionOptions): Promise<void> {
  const lease = await api.readNamespacedLease({ name: opts.name, namespace: opts.namespace });
  if (lease.spec?.holderIdentity !== opts.identity) return;
  await api.replaceNamespacedLease({
    name: opts.name,
    namespace: opts.namespace,
    body: { ...lease, spec: { ...lease.spec, holderIdentity: "", leaseDurationSeconds: 1 } },
  });
}
