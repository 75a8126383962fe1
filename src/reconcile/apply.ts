import type { KubernetesObject, V1Lease } from "@kubernetes/client-node";
import { isDeepStrictEqual } from "node:util";
import type { Logger } from "pino";
import { jsonPatch, mergePatch, type Kube } from "../kube/client.js";
import { apiStatus, isConflict, isNotFound } from "../kube/errors.js";
import { recordEvent } from "../kube/events.js";
import { CUSTOM_RUNS } from "../kube/resources.js";
import { deleteVMI, setRunning } from "../kubevirt/client.js";
import { VirtualMachineSchema } from "../kubevirt/vm.js";
import { acquireVMLease, LeaseTakenError, readVMLease, releaseVMLease, swapLeaseHolder } from "../lease/leases.js";
import { WARM_HOLDER } from "../pools/warm.js";
import type { Expectations } from "../cache/expectations.js";
import { leaseName } from "../lease/holder.js";
import { splitPoolKey } from "../kubevirt/pool-key.js";
import { FINALIZER, type CustomRun } from "../tekton/customrun.js";
import type { Action, Decision } from "./decide/index.js";
import type { Observation } from "./observation.js";
import type { BuildSettings } from "../api/settings.js";
import type { Metrics } from "../metrics/metrics.js";
import type { JobId, JobVM } from "../jobs/jobs.js";
import type { Caches } from "../cache/caches.js";

// apply: carry a decision out through the adapters. Actions run in order; the first failure stops the rest and
// the status write, and the run is reconciled again (the decision is recomputed from what then is). What it wrote
// is recorded as expectations until the informers have it.

export interface ApplyDeps {
  kube: Kube;
  caches: Caches;
  log: Logger;
  startJob: (run: CustomRun, settings: BuildSettings, attempt: number, vms: readonly JobVM[]) => void;
  connectJob: (id: JobId, addresses: readonly string[], ready: boolean) => void;
  cancelJob: (id: JobId) => void;
  metrics: Pick<Metrics, "scratchFailed">;
  /** Leases and runs written here: the next decisions see them before the informers have them. */
  expectations: Expectations;
}

/** changed: the CustomRun itself was written (its cached copy is now behind); unchanged: only other objects. */
export type ApplyResult = "changed" | "unchanged" | "conflict" | "leaseTaken";

export async function apply(
  deps: ApplyDeps,
  raw: KubernetesObject,
  run: CustomRun,
  obs: Observation,
  decision: Decision,
): Promise<ApplyResult> {
  // The object as the API last returned it: the status write must carry the newest resourceVersion.
  let current = raw;
  // Every version of the run this pass wrote over: none of them is worth deciding on again.
  const superseded: string[] = [];
  const wrote = (updated: KubernetesObject) => {
    const version = current.metadata?.resourceVersion;
    if (version !== undefined) superseded.push(version);
    current = updated;
  };
  try {
    for (const action of decision.actions) {
      const updated = await applyAction(deps, run, obs, action).catch((err: unknown) => {
        if (action.kind === "stopVM" || action.kind === "deleteVMI") deps.metrics.scratchFailed(action.pool);
        throw err;
      });
      if (updated) wrote(updated);
    }
    if (decision.status && !isDeepStrictEqual(decision.status, run.status)) {
      wrote(await writeStatus(deps.kube, current, decision.status));
    }
    if (decision.removeFinalizer) {
      const updated = await removeFinalizer(deps.kube, current);
      if (updated) wrote(updated);
    }
  } catch (err) {
    if (err instanceof LeaseTakenError) return "leaseTaken";
    if (isConflict(err)) return "conflict";
    throw err;
  }
  for (const note of decision.events) {
    const target = {
      apiVersion: CUSTOM_RUNS.group + "/" + CUSTOM_RUNS.version,
      kind: CUSTOM_RUNS.kind,
      ...run.metadata,
    };
    recordEvent(deps.kube.core, target, note.type, note.reason, note.message, obs.now).catch((err: unknown) =>
      deps.log.warn({ run: `${run.metadata.namespace}/${run.metadata.name}`, err: String(err) }, "event not recorded"),
    );
  }
  if (current === raw) return "unchanged";
  deps.expectations.wroteRun(raw, superseded);
  return "changed";
}

/** Carries out one action; resolves with the CustomRun when the action changed it. */
async function applyAction(
  deps: ApplyDeps,
  run: CustomRun,
  obs: Observation,
  action: Action,
): Promise<KubernetesObject | undefined> {
  const { kube } = deps;
  const log = deps.log.child({ run: `${run.metadata.namespace}/${run.metadata.name}`, action: action.kind });
  switch (action.kind) {
    case "addFinalizer":
      return (await kube.custom.patchNamespacedCustomObject(
        {
          ...target(CUSTOM_RUNS, run.metadata.namespace, run.metadata.name),
          body: {
            metadata: {
              resourceVersion: run.metadata.resourceVersion,
              finalizers: [...(run.metadata.finalizers ?? []), FINALIZER],
            },
          },
        },
        mergePatch,
      )) as KubernetesObject;
    case "acquireLease": {
      const { namespace, name: pool } = splitPoolKey(action.pool);
      // The decision may be older than the Lease as we now see it: a run's observation was taken before an await
      // (its addFinalizer, an earlier action) and another run's create landed meanwhile. Sending anyway would put
      // our claim over the winner's in the overlay, and the winner's next pass, reading its own Lease as ours,
      // would give up the VM it just started ("leased by another run"). The create would only get a 409.
      const seen = readVMLease(deps.caches.leases.get(leaseName(action.vm), namespace))?.holder;
      if (seen && seen !== action.holder && !(action.fromWarm && seen === WARM_HOLDER)) throw new LeaseTakenError(action.vm);
      deps.expectations.sending(namespace, leaseName(action.vm), action.holder);
      const lease = await (action.fromWarm
        ? swapLeaseHolder(kube.coordination, { namespace, vm: action.vm }, WARM_HOLDER, action.holder, obs.now)
        : acquireVMLease(kube.coordination, { namespace, pool, vm: action.vm }, action.holder, obs.now)
      ).catch((err: unknown) => {
        // Only our own claim: a write of another that replaced it while ours was in flight is the one that won.
        deps.expectations.released(namespace, leaseName(action.vm), action.holder);
        throw err;
      });
      deps.expectations.wrote(lease);
      log.info({ vm: action.vm, holder: action.holder, warm: action.fromWarm }, "leased VM");
      return;
    }
    case "releaseLease": {
      const { namespace } = splitPoolKey(action.pool);
      if (action.toWarm) {
        // Someone else holding it (the sweeper released it first) is fine: it is not ours to hand back any more.
        await swapLeaseHolder(kube.coordination, { namespace, vm: action.vm }, action.holder, WARM_HOLDER, obs.now).then(
          (lease) => deps.expectations.wrote(lease),
          (err: unknown) => {
            if (!(err instanceof LeaseTakenError)) throw err;
            deps.expectations.released(namespace, leaseName(action.vm), action.holder);
          },
        );
      } else {
        const cached = deps.caches.leases.get(leaseName(action.vm), namespace) as V1Lease | undefined;
        const gone = await releaseVMLease(kube.coordination, { namespace, vm: action.vm }, action.holder, cached);
        deps.expectations.deletedLease(namespace, leaseName(action.vm), gone);
      }
      log.info({ vm: action.vm, warm: action.toWarm }, action.toWarm ? "handed VM back to the warm set" : "released VM");
      return;
    }
    case "startVM":
    case "stopVM": {
      const { namespace } = splitPoolKey(action.pool);
      const cached = deps.caches.vms.get(action.vm, namespace);
      const stop = action.kind === "stopVM";
      // A VM deleted meanwhile (or its pool) has nothing left to stop; the next decision sees what remains of it.
      if (stop && !cached) return;
      try {
        deps.expectations.wroteVM(await setRunning(kube, VirtualMachineSchema.parse(cached), !stop));
      } catch (err) {
        if (!(stop && isNotFound(err))) throw err;
        return;
      }
      log.info({ vm: action.vm }, stop ? "stopping VM" : "starting VM");
      return;
    }
    case "deleteVMI":
      await deleteVMI(kube, splitPoolKey(action.pool).namespace, action.vm);
      log.info({ vm: action.vm }, "deleted VMI");
      return;
    case "startJob":
      if (!obs.settings.ok) throw new Error("startJob without valid settings");
      deps.startJob(run, obs.settings.settings, action.job.attempt, action.vms);
      return;
    case "connectJob":
      deps.connectJob({ uid: run.metadata.uid, ...action.job }, action.addresses, action.ready);
      return;
    case "cancelJob":
      deps.cancelJob({ uid: run.metadata.uid, ...action.job });
      return;
  }
}

async function writeStatus(kube: Kube, raw: KubernetesObject, status: CustomRun["status"]): Promise<KubernetesObject> {
  const meta = raw.metadata ?? {};
  // PUT with the resourceVersion we decided on: a concurrent change makes it fail with 409, never overwrite.
  return (await kube.custom.replaceNamespacedCustomObjectStatus({
    ...target(CUSTOM_RUNS, meta.namespace ?? "", meta.name ?? ""),
    body: { ...raw, status },
  })) as KubernetesObject;
}

async function removeFinalizer(kube: Kube, raw: KubernetesObject): Promise<KubernetesObject | undefined> {
  const meta = raw.metadata ?? {};
  const index = (meta.finalizers ?? []).indexOf(FINALIZER);
  if (index === -1) return undefined;
  try {
    return (await kube.custom.patchNamespacedCustomObject(
      {
        ...target(CUSTOM_RUNS, meta.namespace ?? "", meta.name ?? ""),
        body: [
          { op: "test", path: `/metadata/finalizers/${index}`, value: FINALIZER },
          { op: "remove", path: `/metadata/finalizers/${index}` },
        ],
      },
      jsonPatch,
    )) as KubernetesObject;
  } catch (err) {
    // 422: the patch's test failed: our copy's finalizers were behind (an earlier pass already removed ours and the
    // cache has not caught up). The update event of that removal reconciles the run again.
    if (!isNotFound(err) && apiStatus(err) !== 422) throw err;
    return undefined;
  }
}

function target(r: { group: string; version: string; plural: string }, namespace: string, name: string) {
  return { group: r.group, version: r.version, plural: r.plural, namespace, name };
}
