import { V1MicroTime, type CoordinationV1Api, type V1Lease } from "@kubernetes/client-node";
import { z } from "zod";
import { isConflict, isNotFound } from "../kube/errors.js";
import { parseOnce } from "../kube/parse-once.js";
import { LEASE_LABEL_POOL, LEASE_LABEL_VM, leaseName } from "./holder.js";

export const LEASE_LABEL_MANAGED = "app.kubernetes.io/managed-by";
export const LEASE_MANAGED_VALUE = "vmbuild";
export const LEASE_SELECTOR = `${LEASE_LABEL_MANAGED}=${LEASE_MANAGED_VALUE}`;

const VMLeaseSchema = z.object({
  metadata: z.object({ namespace: z.string(), labels: z.record(z.string(), z.string()).default({}) }),
  spec: z
    .object({ holderIdentity: z.string().optional(), acquireTime: z.unknown().optional() })
    .default({}),
});

/** What a VM Lease from the cache says: whose VM (pool, VM) it is and who holds it. */
export interface VMLeaseView {
  namespace: string;
  pool: string | undefined;
  vm: string | undefined;
  holder: string;
  /** When the current holder took it (RFC3339), if the Lease says. */
  since: string | undefined;
}

const parseLease = parseOnce(VMLeaseSchema);

export function readVMLease(raw: unknown): VMLeaseView | undefined {
  const parsed = parseLease(raw);
  if (!parsed.success) return undefined;
  const { metadata, spec } = parsed.data;
  return {
    namespace: metadata.namespace,
    pool: metadata.labels[LEASE_LABEL_POOL],
    vm: metadata.labels[LEASE_LABEL_VM],
    holder: spec.holderIdentity ?? "",
    since: timeText(spec.acquireTime),
  };
}

/** Thrown when another holder got the VM first: not an error, the run just tries again. */
export class LeaseTakenError extends Error {
  constructor(readonly vm: string) {
    super(`VM ${vm} was leased by another run first`);
  }
}

/**
 * One Lease per VM, next to the VM (not on it: the pool rewrites its VMs). Creating it is the atomic step:
 * the API server lets exactly one create succeed.
 */
export async function acquireVMLease(
  api: CoordinationV1Api,
  target: { namespace: string; pool: string; vm: string },
  holder: string,
  now: Date,
): Promise<V1Lease> {
  const body: V1Lease = {
    metadata: {
      name: leaseName(target.vm),
      namespace: target.namespace,
      labels: {
        [LEASE_LABEL_MANAGED]: LEASE_MANAGED_VALUE,
        [LEASE_LABEL_POOL]: target.pool,
        [LEASE_LABEL_VM]: target.vm,
      },
    },
    spec: { holderIdentity: holder, acquireTime: new V1MicroTime(now.getTime()) },
  };
  try {
    return await api.createNamespacedLease({ namespace: target.namespace, body });
  } catch (err) {
    if (isConflict(err)) throw new LeaseTakenError(target.vm);
    throw err;
  }
}

/**
 * Releases the VM's lease only if `holder` still holds it. `cached` (the informer's copy) saves the read when it is
 * current: the delete carries its uid and resourceVersion, so a stale copy fails with a conflict, never deletes
 * another holder's lease, and the lease is read afresh. Returns the uid of the Lease deleted (or found gone), or
 * undefined when there was none of `holder`'s.
 */
export async function releaseVMLease(
  api: CoordinationV1Api,
  target: { namespace: string; vm: string },
  holder: string,
  cached?: V1Lease,
): Promise<string | undefined> {
  const uid = cached?.metadata?.uid;
  if (uid !== undefined && cached?.metadata?.resourceVersion !== undefined && cached.spec?.holderIdentity === holder) {
    if (await deleteLease(api, target, cached)) return uid;
  }
  const lease = await readLease(api, target);
  if (lease?.spec?.holderIdentity !== holder) return undefined;
  if (!(await deleteLease(api, target, lease))) throw new Error(`the Lease of VM ${target.vm} changed while being released`);
  return lease.metadata?.uid;
}

/** False when the lease changed since `seen` (the precondition failed); `seen` carries a uid and resourceVersion. */
async function deleteLease(api: CoordinationV1Api, target: { namespace: string; vm: string }, seen: V1Lease): Promise<boolean> {
  try {
    await api.deleteNamespacedLease({
      name: leaseName(target.vm),
      namespace: target.namespace,
      body: { preconditions: { uid: seen.metadata?.uid, resourceVersion: seen.metadata?.resourceVersion } },
    });
    return true;
  } catch (err) {
    if (isNotFound(err)) return true;
    if (isConflict(err)) return false;
    throw err;
  }
}

async function readLease(api: CoordinationV1Api, target: { namespace: string; vm: string }): Promise<V1Lease | undefined> {
  try {
    return await api.readNamespacedLease({ name: leaseName(target.vm), namespace: target.namespace });
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** The API returns MicroTime as a string; the client may hand back a Date. */
function timeText(value: unknown): string | undefined {
  if (value instanceof Date) return value.toISOString();
  return typeof value === "string" ? value : undefined;
}

/**
 * Moves a VM's Lease from one holder to another (a run taking a warm VM, a run handing its scratched VM back to
 * the warm set, the keeper retiring one). The update carries the resourceVersion read: of two swaps at once,
 * exactly one succeeds. Throws LeaseTakenError when the Lease is gone or held by someone else.
 */
export async function swapLeaseHolder(
  api: CoordinationV1Api,
  target: { namespace: string; vm: string },
  from: string,
  to: string,
  now: Date,
): Promise<V1Lease> {
  const name = leaseName(target.vm);
  const lease = await readLease(api, target);
  if (!lease || lease.spec?.holderIdentity !== from) throw new LeaseTakenError(target.vm);
  try {
    return await api.replaceNamespacedLease({
      name,
      namespace: target.namespace,
      body: { ...lease, spec: { ...lease.spec, holderIdentity: to, acquireTime: new V1MicroTime(now.getTime()) } },
    });
  } catch (err) {
    if (isConflict(err) || isNotFound(err)) throw new LeaseTakenError(target.vm);
    throw err;
  }
}
