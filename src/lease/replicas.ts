import { V1MicroTime, type CoordinationV1Api, type V1Lease } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { z } from "zod";
import { describeApiError, isConflict, isNotFound } from "../kube/errors.js";
import { parseOnce } from "../kube/parse-once.js";
import { LEASE_LABEL_MANAGED, LEASE_MANAGED_VALUE } from "./leases.js";

// One Lease per controller replica, `vmbuild-replica-<identity>` in the controller's namespace, renewed while the
// replica lives: the runs it owns (extraFields.owner) are its own while the Lease moves. Deleting it hands them
// over at once. A replica that cannot renew within the renew deadline stops, as a leader does, so that no run is
// ever acted on by its old owner after another replica took it over.

export const REPLICA_LABEL = "vmbuild.dev/replica";
/** Set while the replica drains: it finishes its own runs and takes no new ones. */
export const DRAINING_ANNOTATION = "vmbuild.dev/draining";

export function replicaLeaseName(identity: string): string {
  return `vmbuild-replica-${identity}`;
}

const ReplicaLeaseSchema = z.object({
  metadata: z.object({
    namespace: z.string(),
    resourceVersion: z.string().optional(),
    labels: z.record(z.string(), z.string()).default({}),
    annotations: z.record(z.string(), z.string()).default({}),
  }),
  spec: z.object({ holderIdentity: z.string().optional(), leaseDurationSeconds: z.number().optional() }).default({}),
});

/** What a replica's Lease says: whose it is, how long it lasts unrenewed, whether the replica drains. */
export interface ReplicaLeaseView {
  identity: string;
  version: string;
  durationMs: number;
  draining: boolean;
}

const parseReplicaLease = parseOnce(ReplicaLeaseSchema);

/** The replica Lease view of a Lease, or undefined for any other Lease (a VM's, the leader's). */
export function readReplicaLease(raw: unknown): ReplicaLeaseView | undefined {
  const parsed = parseReplicaLease(raw);
  if (!parsed.success) return undefined;
  const { metadata, spec } = parsed.data;
  const identity = metadata.labels[REPLICA_LABEL];
  if (!identity || spec.holderIdentity !== identity) return undefined;
  return {
    identity,
    version: metadata.resourceVersion ?? "",
    durationMs: (spec.leaseDurationSeconds ?? 0) * 1000,
    draining: metadata.annotations[DRAINING_ANNOTATION] === "true",
  };
}

export interface HeartbeatOptions {
  namespace: string;
  identity: string;
  leaseDurationMs: number;
  log: Logger;
  /** Called once if the Lease could not be renewed within two thirds of its duration: stop acting at once. */
  onLost: () => void;
  now?: () => number;
}

export interface Heartbeat {
  /** Marks the Lease draining (no new runs come to this replica); resolves once written. */
  drain(): Promise<void>;
  /** Stops renewing and deletes the Lease: the replica's runs go to the others at once. */
  release(): Promise<void>;
}

export function startHeartbeat(api: CoordinationV1Api, opts: HeartbeatOptions): Heartbeat {
  const now = opts.now ?? (() => performance.now());
  const name = replicaLeaseName(opts.identity);
  const deadlineMs = Math.round((opts.leaseDurationMs * 2) / 3);
  const everyMs = Math.max(200, Math.round(deadlineMs / 4));
  let draining = false;
  let stopped = false;
  let renewedAt = now();
  let timer: NodeJS.Timeout | undefined;

  const body = (current?: V1Lease): V1Lease => ({
    ...(current ?? {}),
    metadata: {
      ...(current?.metadata ?? {}),
      name,
      namespace: opts.namespace,
      labels: { ...(current?.metadata?.labels ?? {}), [LEASE_LABEL_MANAGED]: LEASE_MANAGED_VALUE, [REPLICA_LABEL]: opts.identity },
      annotations: { ...(current?.metadata?.annotations ?? {}), [DRAINING_ANNOTATION]: String(draining) },
    },
    spec: {
      holderIdentity: opts.identity,
      leaseDurationSeconds: Math.ceil(opts.leaseDurationMs / 1000),
      renewTime: new V1MicroTime(Date.now()),
    },
  });
  let current: V1Lease | undefined;
  const renew = async (): Promise<void> => {
    try {
      current = current
        ? await api.replaceNamespacedLease({ name, namespace: opts.namespace, body: body(current) })
        : await api.createNamespacedLease({ namespace: opts.namespace, body: body() });
    } catch (err) {
      // Someone else wrote it (an admin, a stale copy): read it and renew over it next time.
      if (!isConflict(err) && !isNotFound(err)) throw err;
      // Released meanwhile: a renewal still on its way must not bring the Lease back.
      if (stopped) return;
      current = await api.readNamespacedLease({ name, namespace: opts.namespace }).catch(() => undefined);
      if (current) current = await api.replaceNamespacedLease({ name, namespace: opts.namespace, body: body(current) });
      else current = await api.createNamespacedLease({ namespace: opts.namespace, body: body() });
    }
  };
  const tick = async () => {
    const sentAt = now();
    try {
      await renew();
      renewedAt = sentAt;
    } catch (err) {
      opts.log.warn({ err: describeApiError(err) }, "could not renew this replica's Lease");
    }
    if (stopped) return;
    if (now() - renewedAt >= deadlineMs) {
      stopped = true;
      opts.log.error({ identity: opts.identity }, "this replica's Lease was not renewed in time; its runs may be taken over");
      opts.onLost();
      return;
    }
    timer = setTimeout(() => void tick(), everyMs);
    timer.unref();
  };
  void tick();

  return {
    async drain() {
      draining = true;
      clearTimeout(timer);
      await tick();
    },
    async release() {
      stopped = true;
      clearTimeout(timer);
      try {
        await api.deleteNamespacedLease({ name, namespace: opts.namespace });
      } catch (err) {
        if (!isNotFound(err)) opts.log.warn({ err: describeApiError(err) }, "could not delete this replica's Lease");
      }
    },
  };
}

/** Deletes a lapsed replica's Lease, unless it changed since `version` was seen (the replica came back). */
export async function deleteLapsedReplicaLease(
  api: CoordinationV1Api,
  namespace: string,
  lapsed: { identity: string; version: string },
): Promise<void> {
  try {
    await api.deleteNamespacedLease({
      name: replicaLeaseName(lapsed.identity),
      namespace,
      body: { preconditions: { resourceVersion: lapsed.version } },
    });
  } catch (err) {
    if (!isNotFound(err) && !isConflict(err)) throw err;
  }
}
