import { V1MicroTime, type CoordinationV1Api, type V1Lease } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { describeApiError, isConflict, isNotFound } from "./errors.js";

// Leader election on a coordination.k8s.io Lease, as client-go does it: one replica acts, the others keep warm
// caches. The per-VM leases stay the safety net if two ever act at once.

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewEveryMs: number;
  log: Logger;
  onStartedLeading: () => void;
  /** Called once when leadership is lost; the process should stop acting at once. */
  onStoppedLeading: () => void;
}

export interface LeaderElector {
  isLeader(): boolean;
  /** Stop campaigning; a leader gives the lease up so a standby takes over without waiting for expiry. */
  stop(): Promise<void>;
}

export function startLeaderElection(api: CoordinationV1Api, opts: LeaderElectionOptions): LeaderElector {
  let leader = false;
  let stopped = false;
  let lastRenew = 0;
  let timer: NodeJS.Timeout | undefined;

  const tick = async () => {
    try {
      const outcome = await tryAcquireOrRenew(api, opts, new Date());
      if (outcome === "held") lastRenew = Date.now();
      if (outcome === "held" && !leader) {
        leader = true;
        opts.log.info({ identity: opts.identity }, "became leader");
        opts.onStartedLeading();
      } else if (outcome === "taken" && leader) {
        lose("another replica holds the lease");
      }
      // "conflict": someone wrote the lease meanwhile; read it again next tick before concluding anything.
    } catch (err) {
      opts.log.warn({ err: describeApiError(err) }, "leader election: could not reach the API server");
    }
    if (leader && Date.now() - lastRenew > opts.leaseDurationMs) lose("could not renew the lease in time");
    if (!stopped) timer = setTimeout(() => void tick(), leader ? opts.renewEveryMs : opts.renewEveryMs / 2);
  };
  const lose = (why: string) => {
    if (!leader) return;
    leader = false;
    opts.log.warn({ why }, "lost leadership");
    opts.onStoppedLeading();
  };
  void tick();

  return {
    isLeader: () => leader,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (!leader) return;
      leader = false;
      await release(api, opts).catch((err: unknown) =>
        opts.log.warn({ err: describeApiError(err) }, "could not release the leader lease"),
      );
    },
  };
}

/** held: ours now; taken: another replica's and not expired; conflict: changed under us, unknown. */
type Outcome = "held" | "taken" | "conflict";

async function tryAcquireOrRenew(api: CoordinationV1Api, opts: LeaderElectionOptions, now: Date): Promise<Outcome> {
  const micro = new V1MicroTime(now.getTime());
  const spec = {
    holderIdentity: opts.identity,
    leaseDurationSeconds: Math.ceil(opts.leaseDurationMs / 1000),
    renewTime: micro,
  };
  let lease: V1Lease;
  try {
    lease = await api.readNamespacedLease({ name: opts.name, namespace: opts.namespace });
  } catch (err) {
    if (!isNotFound(err)) throw err;
    try {
      await api.createNamespacedLease({
        namespace: opts.namespace,
        body: { metadata: { name: opts.name, namespace: opts.namespace }, spec: { ...spec, acquireTime: micro, leaseTransitions: 0 } },
      });
      return "held";
    } catch (createErr) {
      if (isConflict(createErr)) return "conflict";
      throw createErr;
    }
  }
  const current = lease.spec ?? {};
  const mine = current.holderIdentity === opts.identity;
  const renewed = current.renewTime ? new Date(current.renewTime).getTime() : 0;
  const expired = !current.holderIdentity || renewed + (current.leaseDurationSeconds ?? 0) * 1000 < now.getTime();
  if (!mine && !expired) return "taken";
  try {
    await api.replaceNamespacedLease({
      name: opts.name,
      namespace: opts.namespace,
      body: {
        ...lease,
        spec: {
          ...current,
          ...spec,
          ...(mine ? {} : { acquireTime: micro, leaseTransitions: (current.leaseTransitions ?? 0) + 1 }),
        },
      },
    });
    return "held";
  } catch (err) {
    if (isConflict(err)) return "conflict";
    throw err;
  }
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
