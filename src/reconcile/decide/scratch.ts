import { scratchStep, strayScratchStep, VMI_DELETE_GRACE_MS, type ScratchStep } from "../../kubevirt/scratch.js";
import { holderIdentity } from "../../lease/holder.js";
import { warmCount } from "../../pools/warm.js";
import { isFinished, type Condition, type CustomRun, type RunStatus } from "../../tekton/customrun.js";
import { readRunState, stateVMs, type Outcome, type RunState, type SlotState } from "../../tekton/run-state.js";
import { condition, elapsed, failure, progress, retryEntry } from "../../tekton/status.js";
import type { Observation, PoolObservation } from "../observation.js";
import { endingResults, heldVM, lastSeen, RELEASED, vmsOf, type Action, type Ctx, type Next } from "./phase.js";

// Scratching: every way a run ends goes through here. Cancel the job, scratch each VM (kubevirt/scratch.ts),
// release its lease, and only then retry, queue again, or write the final condition.

/**
 * How often a scratch is looked at again without any event. Watches on the VM drive it, but an event may name no
 * one: when the run's Lease was deleted by hand, the VM's events go to whoever leases it next.
 */
export const SCRATCH_RECHECK_MS = 10_000;

/** Record the outcome and scratch what the attempt holds; with nothing held, finish at once. */
export function beginScratch(ctx: Ctx, state: RunState, outcome: Outcome): Next<"scratching" | "finish"> {
  const holds = state.slots.some((_, i) => heldVM(ctx, state, i));
  if (!holds && ctx.held.job?.state !== "running") return { to: "finish", state, outcome };
  return { to: "scratching", state: { ...state, phase: "Scratching", phaseSince: ctx.nowIso, outcome } };
}

/** Stop every VM so its disk is thrown away, confirm each instance is gone, then release its lease. */
export function scratching(ctx: Ctx, state: RunState): Next<"finish"> {
  const outcome = state.outcome ?? failure("ControllerRestarted", "Scratch without an outcome.");
  const jobRunning = ctx.held.job?.state === "running";
  const actions: Action[] = jobRunning ? [{ kind: "cancelJob", job: { attempt: state.attempt, vms: stateVMs(state) } }] : [];
  const holder = holderIdentity(ctx.run.metadata, state.attempt);
  // The scratch began (and stopped the VMs) when the run entered Scratching.
  const sinceStop = elapsed(ctx.obs.now, state.phaseSince);
  let pending = jobRunning;
  const handedBack = new Map<string, number>();
  state.slots.forEach((slot, i) => {
    const vm = heldVM(ctx, state, i);
    if (!vm) return;
    const seen = lastSeen(ctx.obs, slot.pool, vm);
    // A VM the status does not name was found by its Lease: whoever leased it may be about to start it.
    const step = slot.vm ? scratchStep(seen, sinceStop) : strayScratchStep(seen, ctx.obs.now);
    actions.push(...scratchActions(step, slot.pool, vm));
    if (step !== "gone" || jobRunning) {
      pending = true;
      return;
    }
    // Seen without a Lease: released by an earlier pass (a fan-out's VMs go one by one) or by hand. Unseen, the
    // Lease may still be there: the release reads it.
    if (seen && !seen.leaseHolder && !ctx.held.leasedNow.has(vm)) return;
    const toWarm = rejoinsWarmSet(ctx.obs.pools[slot.pool], handedBack.get(slot.pool) ?? 0);
    if (toWarm) handedBack.set(slot.pool, (handedBack.get(slot.pool) ?? 0) + 1);
    actions.push({ kind: "releaseLease", pool: slot.pool, vm, holder, toWarm });
  });
  if (pending) {
    // KubeVirt deleting the instances wakes the run; if it has not by the grace's end, the scratch deletes them.
    const graceLeft = VMI_DELETE_GRACE_MS - sinceStop;
    const recheck = graceLeft > 0 ? Math.min(SCRATCH_RECHECK_MS, graceLeft) : SCRATCH_RECHECK_MS;
    return { actions, state, condition: scratchCondition(ctx, state), requeueAfterMs: recheck };
  }
  return { to: "finish", state, outcome, actions, held: RELEASED };
}

/** A scratched VM of a warm pool boots again from a fresh disk while the pool has fewer warm VMs than its max. */
function rejoinsWarmSet(pool: PoolObservation | undefined, alreadyHandedBack: number): boolean {
  if (!pool?.found || !pool.warm) return false;
  return warmCount(pool.vms) + alreadyHandedBack < pool.warm.max;
}

function scratchCondition(ctx: Ctx, state: RunState): Condition {
  const why = state.outcome?.condition;
  return progress(ctx, "Scratching", `Scratching VM ${vmsOf(state)} (${why?.reason ?? ""}): ${why?.message ?? ""}`);
}

/** The attempt is over and holds nothing: queue again for other VMs, retry, or write the final condition. */
export function finish(ctx: Ctx, state: RunState, outcome: Outcome): Next<"queued"> {
  const { run, nowIso } = ctx;
  const settings = ctx.obs.settings.ok ? ctx.obs.settings.settings : undefined;
  if (outcome.next !== "finish" && settings) {
    // Queued again, it belongs to no replica until the scheduler leases VMs for it.
    const { outcome: _outcome, owner: _owner, ...rest } = state;
    const requeued: RunState = { ...rest, phase: "Queued", slots: state.slots.map(freshSlot), phaseSince: nowIso };
    return {
      to: "queued",
      state: requeued,
      settings,
      // Waiting again: the outcome says why.
      amend: (step) =>
        step.condition.reason === "WaitingForVM" ? { ...step, condition: { ...outcome.condition, lastTransitionTime: nowIso } } : step,
    };
  }
  const failed = outcome.condition.status === "False";
  const retryable = failed && outcome.condition.reason !== "CustomRunCancelled" && !run.metadata.deletionTimestamp;
  if (retryable && settings && state.attempt < (run.spec.retries ?? 0)) {
    const ended = { ...outcome, results: endingResults(ctx, state.attempt, state, outcome.results) };
    const retriesStatus = [...(ctx.base.retriesStatus ?? []), retryEntry(ctx.base, ended, nowIso)];
    const next: RunState = {
      phase: "Queued",
      attempt: state.attempt + 1,
      slots: state.slots.map(freshSlot),
      queuedAt: nowIso,
      phaseSince: nowIso,
      tried: [],
      ...(state.recoveries ? { recoveries: state.recoveries } : {}),
      ...(state.vmbuild ? { vmbuild: state.vmbuild } : {}),
      ...(state.params ? { params: state.params } : {}),
    };
    const retrying = condition(
      ctx,
      "Unknown",
      "Retrying",
      `Attempt ${next.attempt + 1} of ${(run.spec.retries ?? 0) + 1}; the last one ended ${outcome.condition.reason}: ${outcome.condition.message ?? ""}`,
    );
    return {
      to: "queued",
      state: next,
      settings,
      base: { ...ctx.base, startTime: nowIso, retriesStatus },
      amend: (step) => ({
        ...step,
        startTime: nowIso,
        // A later retry in this same decision already wrote the longer list.
        retriesStatus: step.retriesStatus ?? retriesStatus,
        condition: step.condition.reason === "WaitingForVM" ? retrying : step.condition,
      }),
    };
  }
  const { outcome: _done, ...rest } = state;
  return {
    actions: [],
    state: rest,
    condition: { ...outcome.condition, lastTransitionTime: nowIso },
    results: endingResults(ctx, state.attempt, state, outcome.results),
    final: true,
  };
}

function freshSlot(slot: SlotState): SlotState {
  return { platforms: slot.platforms, pool: slot.pool };
}

/**
 * Leases the attempt holds beyond its slots are scratched and given back: two replicas raced, or one decided on a
 * copy of the run older than the other's writes. A finished run gives back its leases on VMs its final status does
 * not name (a racing replica may lease one for it after it ended); its named VMs its own scratch released.
 * `pending`: some are not given back yet.
 */
export function giveBackExtraLeases(run: CustomRun, obs: Observation, status: RunStatus): { actions: Action[]; pending: boolean } {
  const state = readRunState(status.extraFields);
  const unnamed = isFinished(status) ? unnamedHeld(state, obs.held) : [];
  const extra = [...(obs.extraLeases ?? []), ...unnamed];
  if (extra.length === 0) return { actions: [], pending: false };
  const holder = holderIdentity(run.metadata, state?.attempt ?? 0);
  const steps = extra.map(({ pool, vm }) => ({ pool, vm, step: strayScratchStep(lastSeen(obs, pool, vm), obs.now) }));
  const actions = steps.flatMap(({ pool, vm, step }): Action[] =>
    step === "gone" ? [{ kind: "releaseLease", pool, vm, holder, toWarm: false }] : scratchActions(step, pool, vm),
  );
  return { actions, pending: steps.some(({ step }) => step !== "gone") };
}

/** Leases observe matched to slots that name no VM: a finished run's slot that never got one. */
function unnamedHeld(state: RunState | undefined, held: Observation["held"]): { pool: string; vm: string }[] {
  return (state?.slots ?? []).flatMap((slot, i) => {
    const vm = held[i];
    return vm && !slot.vm ? [{ pool: slot.pool, vm }] : [];
  });
}

/** The stop or instance deletion a scratch step asks for, if any. */
function scratchActions(step: ScratchStep, pool: string, vm: string): Action[] {
  if (step === "stop") return [{ kind: "stopVM", pool, vm }];
  if (step === "deleteVMI") return [{ kind: "deleteVMI", pool, vm }];
  return [];
}
