import { formatDuration } from "../timing/duration.js";
import {
  CANCELLED_SPEC_STATUS,
  isFinished,
  succeededCondition,
  type Condition,
  type CustomRun,
  type RunStatus,
} from "../tekton/customrun.js";
import type { Reason } from "../tekton/reasons.js";
import {
  condition,
  elapsed,
  failure,
  hasFinalizer,
  progress,
  retryEntry,
  runTimeoutMs,
  timeoutRemaining,
} from "../tekton/status.js";
import type { BuildSettings } from "../api/settings.js";
import { holderIdentity, leaseName } from "../lease/holder.js";
import type { Observation, PoolObservation } from "./observation.js";
import { readRunState, stateVMs, type Outcome, type RunState, type SlotState } from "../tekton/run-state.js";
import { isWarmReady, WARM_HOLDER, warmCount } from "../pools/warm.js";
import { splitPoolKey } from "../kubevirt/pool-key.js";
import type { JobRef, JobView, JobVM } from "../jobs/jobs.js";
import type { VMView } from "../kubevirt/vm.js";
import { scratchStep, type ScratchStep } from "../kubevirt/scratch.js";

// The reconcile decision: given a CustomRun and what was observed, what happens next. Pure: no I/O, no clock.

/** How long a run waits for a VMBuild or pool it names to show up before failing. */
export const NOT_FOUND_GRACE_MS = 10_000;

/** `pool` is NAMESPACE/NAME of the VM's pool. */
export type Action =
  | { kind: "addFinalizer" }
  /** fromWarm: take the VM from the warm set (swap the Lease's holder) instead of creating its Lease. */
  | { kind: "acquireLease"; pool: string; vm: string; holder: string; fromWarm: boolean }
  /** toWarm: hand the scratched VM back to the warm set (the keeper boots it afresh) instead of deleting the Lease. */
  | { kind: "releaseLease"; pool: string; vm: string; holder: string; toWarm: boolean }
  | { kind: "startVM"; pool: string; vm: string }
  | { kind: "stopVM"; pool: string; vm: string }
  | { kind: "deleteVMI"; pool: string; vm: string }
  /** Started as soon as the VMs are leased: the source is fetched while they boot. */
  | { kind: "startJob"; job: JobRef; vms: JobVM[] }
  /** Every VM of the job is up: where each one answers, in the job's VM order. */
  | { kind: "connectJob"; job: JobRef; addresses: string[] }
  | { kind: "cancelJob"; job: JobRef };

export interface EventNote {
  type: "Normal" | "Warning";
  reason: string;
  message: string;
}

export interface Decision {
  /** Done in order before the status is written; the first failure stops the rest and the status write. */
  actions: Action[];
  /** The whole new status; written only if it differs from the current one. */
  status?: RunStatus;
  /** After the status write: the run is finished and holds nothing any more. */
  removeFinalizer: boolean;
  /** After the status write, one per condition change. */
  events: EventNote[];
  requeueAfterMs?: number;
}

interface Ctx {
  run: CustomRun;
  obs: Observation;
  nowIso: string;
  /** The status this reconcile starts from (startTime already set). */
  base: RunStatus;
  held: Held;
}

/**
 * What the attempt holds, as one decision sees it: observed once, then updated when the decision leases or
 * releases VMs. heldVM reads it.
 */
interface Held {
  /** Per slot of the run's status: the VM whose lease observe found for this attempt. */
  leases: readonly (string | undefined)[];
  /** VMs leased in this very decision: held, though their leases are not observed yet. */
  leasedNow: ReadonlySet<string>;
  /** The build job of the held VMs: none for VMs leased in this decision, nor once they are released. */
  job?: JobView;
}

function observedHeld(obs: Observation): Held {
  return { leases: obs.held, leasedNow: new Set(), ...(obs.job ? { job: obs.job } : {}) };
}

/** After leasing `vms` in this decision: held, with no job yet. */
function withLeased(held: Held, vms: readonly string[]): Held {
  if (vms.length === 0) return held;
  return { leases: held.leases, leasedNow: new Set([...held.leasedNow, ...vms]) };
}

/** After releasing every VM: nothing held, no job. */
const RELEASED: Held = { leases: [], leasedNow: new Set() };

interface Step {
  actions: Action[];
  state?: RunState;
  condition: Condition;
  results?: RunStatus["results"];
  final?: boolean;
  retriesStatus?: RunStatus["retriesStatus"];
  startTime?: string;
  requeueAfterMs?: number;
}

export function decide(run: CustomRun, obs: Observation): Decision {
  const current = run.status ?? {};
  if (isFinished(current)) {
    // Never rewrite a finished run; only let go of it.
    return { actions: [], removeFinalizer: hasFinalizer(run), events: [] };
  }
  const state = readRunState(current.extraFields);
  const ctx: Ctx = { run, obs, nowIso: obs.now.toISOString(), base: current, held: observedHeld(obs) };
  if (!current.startTime || !state) {
    if (run.metadata.deletionTimestamp) return { actions: [], removeFinalizer: hasFinalizer(run), events: [] };
    ctx.base = { ...current, startTime: current.startTime ?? ctx.nowIso };
    return toDecision(ctx, start(ctx));
  }
  return toDecision(ctx, proceed(ctx, state));
}

function start(ctx: Ctx): Step {
  const { run, obs } = ctx;
  const stop = stopRequest(ctx);
  if (stop) return finishNow(ctx, stop);
  if (!obs.settings.ok) return cannotStart(ctx, obs.settings);
  const plan = obs.plan ?? { ok: false, reason: "InvalidParams", message: "No pool was looked up." };
  if (!plan.ok) return cannotStart(ctx, plan);
  const state: RunState = {
    phase: "Queued",
    attempt: 0,
    slots: plan.slots.map((slot) => ({ platforms: slot.platforms, pool: slot.pool })),
    queuedAt: ctx.nowIso,
    phaseSince: ctx.nowIso,
    tried: [],
  };
  const step = queued(ctx, state, obs.settings.settings);
  if (!hasFinalizer(run)) step.actions.unshift({ kind: "addFinalizer" });
  return step;
}

function proceed(ctx: Ctx, state: RunState): Step {
  if (state.phase === "Scratching" || state.phase === "Done") return scratching(ctx, state);
  const stop = stopRequest(ctx);
  if (stop) return beginScratch(ctx, state, stop);
  const { obs } = ctx;
  if (!obs.settings.ok) return beginScratch(ctx, state, failure(obs.settings.reason, obs.settings.message));
  const missing = state.slots.map((slot) => obs.pools[slot.pool]).find((pool) => pool && !pool.found);
  if (missing && !missing.found) return beginScratch(ctx, state, failure(missing.reason, missing.message));
  const settings = obs.settings.settings;
  switch (state.phase) {
    case "Queued":
      return queued(ctx, state, settings);
    case "Starting":
      return starting(ctx, state, settings);
    case "Building":
      return building(ctx, state, settings);
  }
  return scratching(ctx, state);
}

/** Deletion, cancel and timeout end a run in any phase. */
function stopRequest(ctx: Ctx): Outcome | undefined {
  const { run, obs, base } = ctx;
  if (run.metadata.deletionTimestamp) {
    return failure("CustomRunCancelled", "The CustomRun was deleted; its VM is scratched.");
  }
  if (run.spec.status === CANCELLED_SPEC_STATUS) {
    return failure("CustomRunCancelled", run.spec.statusMessage || "CustomRun cancelled");
  }
  const timeout = runTimeoutMs(run);
  if (timeout > 0 && base.startTime && elapsed(obs.now, base.startTime) >= timeout) {
    return failure(
      "CustomRunTimedOut",
      `CustomRun "${run.metadata.name}" failed to finish within "${formatDuration(timeout)}"`,
    );
  }
  return undefined;
}

/**
 * A run takes all its VMs in one decision or none: holding some while waiting for others could deadlock two
 * fan-out runs. Leases found that the status does not know (its write after acquiring them failed) are kept when
 * the rest can be leased now, and given back otherwise.
 */
function queued(ctx: Ctx, state: RunState, settings: BuildSettings): Step {
  const { obs } = ctx;
  const found: RunState = {
    ...state,
    slots: state.slots.map((slot, i) => {
      if (slot.vm) return slot;
      const vm = heldVM(ctx, state, i);
      return vm ? { ...slot, ...leasedSlot(slot, vm) } : slot;
    }),
  };
  const holdsSome = found.slots.some((slot) => slot.vm);

  const waited = elapsed(obs.now, state.queuedAt);
  if (waited >= settings.queueTimeout) {
    return beginScratch(
      ctx,
      found,
      failure(
        "QueueTimeout",
        `No VM of pool ${poolsOf(state)} became free within ${formatDuration(settings.queueTimeout)} (${poolSummaries(obs, state)}).`,
      ),
    );
  }
  const chosen = pickVMs(obs, found);
  if ("picks" in chosen) {
    const { picks } = chosen;
    const next: RunState = {
      ...found,
      slots: found.slots.map((slot, i) => {
        const pick = picks.get(i);
        return pick ? { ...slot, ...leasedSlot(slot, pick.name) } : slot;
      }),
      phase: "Starting",
      leasedAt: ctx.nowIso,
      phaseSince: ctx.nowIso,
    };
    const holder = holderIdentity(ctx.run.metadata, state.attempt);
    const acquire: Action[] = [...picks].map(([i, vm]) => ({
      kind: "acquireLease",
      pool: found.slots[i]?.pool ?? "",
      vm: vm.name,
      holder,
      fromWarm: isWarmReady(vm),
    }));
    const leased = { ...ctx, held: withLeased(ctx.held, [...picks.values()].map((vm) => vm.name)) };
    const step = starting(leased, next, settings);
    return { ...step, actions: [...acquire, ...step.actions] };
  }
  const waiting = progress(ctx, "WaitingForVM", waitingMessage(obs, chosen.lacking));
  if (holdsSome) return beginScratch(ctx, found, { condition: waiting, results: [], next: "requeue" });
  return { actions: [], state, condition: waiting, requeueAfterMs: settings.queueTimeout - waited };
}

function starting(ctx: Ctx, state: RunState, settings: BuildSettings): Step {
  const { obs } = ctx;
  const held = state.slots.map((_, i) => heldVM(ctx, state, i));
  if (held.some((name) => !name)) {
    // Another run holds a VM our status names: we may not touch it any more; give back the rest and queue again.
    const lost = state.slots.filter((_, i) => !held[i]).map((slot) => slot.vm ?? "?");
    return beginScratch(ctx, state, {
      condition: progress(ctx, "WaitingForVM", `VM ${lost.join(", ")} was leased by another run; queueing again.`),
      results: [],
      next: "requeue",
    });
  }
  const names = held as string[];
  const vms = names.map((name, i) => seenVM(obs, state.slots[i]?.pool ?? "", name));
  const waited = elapsed(obs.now, state.phaseSince);
  const job = ctx.held.job;
  // podman not answering is what readyTimeout bounds; a job that failed here failed for another reason
  // (the run's credentials, say) and ends the run like any build failure.
  if (job?.state === "failed") return beginScratch(ctx, state, failure(job.reason, job.message));
  // readyTimeout bounds the VMs, not a source fetch that outlasts their boot.
  const fetching = job?.state === "running" && job.stage === "fetching";
  const allReady = vms.every((vm) => vm?.vmi?.ready);
  if (vms.some((vm) => !vm) || (waited >= settings.readyTimeout && !(allReady && fetching))) {
    const unready = names.filter((_, i) => !vms[i]?.vmi?.ready);
    const blamed = (unready.length > 0 ? unready : names).map((name) => {
      const vm = vms[names.indexOf(name)];
      return { vm: name, lastSeen: vm ? describeVM(vm, job) : "the VM was deleted" };
    });
    const tried = [...state.tried, ...blamed];
    const seen = blamed.map((b) => `${b.vm} (${b.lastSeen})`).join("; ");
    if (state.tried.length === 0) {
      return beginScratch(ctx, { ...state, tried }, {
        condition: progress(
          ctx,
          "StartingVM",
          `${blamed.length > 1 ? "VMs" : "VM"} ${seen} did not get ready within ${formatDuration(settings.readyTimeout)}; trying another VM.`,
        ),
        results: [],
        next: "retryVM",
      });
    }
    const all = tried.map((t) => `${t.vm} (${t.lastSeen})`).join("; ");
    return beginScratch(
      ctx,
      { ...state, tried },
      failure("VMNotReady", `No VM got ready within ${formatDuration(settings.readyTimeout)}: ${all}.`),
    );
  }
  if (job && !(job.state === "running" && (job.stage === "fetching" || job.stage === "connecting"))) {
    return building(ctx, { ...state, phase: "Building", phaseSince: ctx.nowIso }, settings);
  }
  const ready = vms as VMView[];
  const actions: Action[] = ready.flatMap((vm, i): Action[] =>
    vm.wantsRunning ? [] : [{ kind: "startVM", pool: state.slots[i]?.pool ?? "", vm: vm.name }],
  );
  const ref: JobRef = { attempt: state.attempt, vms: names };
  if (!job) {
    actions.push({
      kind: "startJob",
      job: ref,
      vms: ready.map((vm, i) => ({
        pool: state.slots[i]?.pool ?? "",
        vm: vm.name,
        platforms: state.slots[i]?.platforms.length ? (state.slots[i]?.platforms ?? []) : settings.platforms,
      })),
    });
  }
  const allUp = allReady && ready.every((vm) => vm.vmi?.address && !vm.vmi.deleting);
  if (allUp) actions.push({ kind: "connectJob", job: ref, addresses: ready.map((vm) => vm.vmi?.address ?? "") });
  // One message while the VMs boot and one once they are up: each VMI transition, and the fetch ending, are in
  // the web view and the log, not in a status write of their own (bench b).
  const message = allUp
    ? `${ready.map((vm) => `VM ${vm.name} is up at ${vm.vmi?.address ?? "?"}`).join("; ")}; waiting for the source and podman.`
    : `Starting ${ready.map((vm, i) => `VM ${vm.name} of pool ${state.slots[i]?.pool ?? "?"}`).join("; ")}.`;
  return {
    actions,
    state,
    condition: progress(ctx, "StartingVM", message),
    // The job's end of fetching wakes the run; a timer past readyTimeout would spin.
    ...(allUp && fetching ? {} : { requeueAfterMs: settings.readyTimeout - waited }),
  };
}

function building(ctx: Ctx, state: RunState, settings: BuildSettings): Step {
  const job = ctx.held.job;
  if (!job) {
    return beginScratch(
      ctx,
      state,
      failure("ControllerRestarted", `The controller restarted while the build was in flight on VM ${vmsOf(state)}.`),
    );
  }
  if (job.state === "succeeded") {
    return beginScratch(ctx, state, {
      condition: condition(ctx, "True", "Succeeded", job.summary),
      results: job.results,
      next: "finish",
    });
  }
  if (job.state === "failed") return beginScratch(ctx, state, failure(job.reason, job.message));
  const waited = elapsed(ctx.obs.now, state.phaseSince);
  if (settings.buildTimeout > 0 && waited >= settings.buildTimeout) {
    return beginScratch(
      ctx,
      state,
      failure("BuildTimedOut", `The build did not finish within buildTimeout ${formatDuration(settings.buildTimeout)}.`),
    );
  }
  const reason: Reason = job.stage === "pushing" ? "Pushing" : "Building";
  return {
    actions: [],
    state,
    condition: progress(ctx, reason, job.detail),
    ...(settings.buildTimeout > 0 ? { requeueAfterMs: settings.buildTimeout - waited } : {}),
  };
}

function beginScratch(ctx: Ctx, state: RunState, outcome: Outcome): Step {
  const holds = state.slots.some((_, i) => heldVM(ctx, state, i));
  if (!holds && ctx.held.job?.state !== "running") return finish(ctx, state, outcome);
  return scratching(ctx, { ...state, phase: "Scratching", phaseSince: ctx.nowIso, outcome });
}

/** Stop every VM so its disk is thrown away, confirm each instance is gone, then release its lease. */
function scratching(ctx: Ctx, state: RunState): Step {
  const outcome = state.outcome ?? failure("ControllerRestarted", "Scratch without an outcome.");
  const jobRunning = ctx.held.job?.state === "running";
  const actions: Action[] = jobRunning ? [{ kind: "cancelJob", job: { attempt: state.attempt, vms: stateVMs(state) } }] : [];
  const holder = holderIdentity(ctx.run.metadata, state.attempt);
  let pending = jobRunning;
  const handedBack = new Map<string, number>();
  state.slots.forEach((slot, i) => {
    const vm = heldVM(ctx, state, i);
    if (!vm) return;
    const pool = ctx.obs.pools[slot.pool];
    const step = scratchStep(seenVM(ctx.obs, slot.pool, vm));
    actions.push(...scratchActions(step, slot.pool, vm));
    if (step !== "gone" || jobRunning) {
      pending = true;
      return;
    }
    const toWarm = rejoinsWarmSet(pool, handedBack.get(slot.pool) ?? 0);
    if (toWarm) handedBack.set(slot.pool, (handedBack.get(slot.pool) ?? 0) + 1);
    actions.push({ kind: "releaseLease", pool: slot.pool, vm, holder, toWarm });
  });
  if (pending) return { actions, state, condition: scratchCondition(ctx, state) };
  const step = finish({ ...ctx, held: RELEASED }, state, outcome);
  return { ...step, actions: [...actions, ...step.actions] };
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

/** The attempt is over and holds nothing: retry, try another VM, or write the final condition. */
function finish(ctx: Ctx, state: RunState, outcome: Outcome): Step {
  const { run, nowIso } = ctx;
  const settings = ctx.obs.settings.ok ? ctx.obs.settings.settings : undefined;
  if (outcome.next !== "finish" && settings) {
    const requeued: RunState = { ...state, phase: "Queued", slots: state.slots.map(freshSlot), outcome: undefined, phaseSince: nowIso };
    const step = queued(ctx, requeued, settings);
    if (step.condition.reason === "WaitingForVM") step.condition = { ...outcome.condition, lastTransitionTime: nowIso };
    return step;
  }
  const failed = outcome.condition.status === "False";
  const retryable = failed && outcome.condition.reason !== "CustomRunCancelled" && !run.metadata.deletionTimestamp;
  if (retryable && settings && state.attempt < (run.spec.retries ?? 0)) {
    const retriesStatus = [...(ctx.base.retriesStatus ?? []), retryEntry(ctx.base, outcome, nowIso)];
    const next: RunState = {
      phase: "Queued",
      attempt: state.attempt + 1,
      slots: state.slots.map(freshSlot),
      queuedAt: nowIso,
      phaseSince: nowIso,
      tried: [],
    };
    const retryCtx: Ctx = { ...ctx, base: { ...ctx.base, startTime: nowIso, retriesStatus } };
    const step = queued(retryCtx, next, settings);
    return {
      ...step,
      startTime: nowIso,
      retriesStatus,
      condition:
        step.condition.reason === "WaitingForVM"
          ? condition(
              ctx,
              "Unknown",
              "Retrying",
              `Attempt ${next.attempt + 1} of ${(run.spec.retries ?? 0) + 1}; the last one ended ${outcome.condition.reason}: ${outcome.condition.message ?? ""}`,
            )
          : step.condition,
    };
  }
  const { outcome: _done, ...rest } = state;
  return {
    actions: [],
    state: rest,
    condition: { ...outcome.condition, lastTransitionTime: nowIso },
    results: outcome.results,
    final: true,
  };
}

/** Invalid input ends the run; a VMBuild or pool that is not there yet gets a grace period first. */
function cannotStart(ctx: Ctx, problem: { reason: Reason; message: string }): Step {
  // An object created together with the run may reach the cache a moment after it.
  const young = elapsed(ctx.obs.now, ctx.base.startTime ?? ctx.nowIso) < NOT_FOUND_GRACE_MS;
  if (young && (problem.reason === "VMBuildNotFound" || problem.reason === "PoolNotFound")) {
    return { actions: [], condition: progress(ctx, "Started", `${problem.message} Waiting for it to appear.`), requeueAfterMs: 1000 };
  }
  return finishNow(ctx, failure(problem.reason, problem.message));
}

/** End a run that never held anything (invalid input, cancelled before it started). */
function finishNow(ctx: Ctx, outcome: Outcome): Step {
  return { actions: [], condition: { ...outcome.condition, lastTransitionTime: ctx.nowIso }, results: [], final: true };
}

/** Leases the attempt holds beyond its slots (two replicas raced) are scratched and given back. */
function giveBackExtraLeases(ctx: Ctx): Action[] {
  const { extraLeases } = ctx.obs;
  if (!extraLeases) return [];
  const holder = holderIdentity(ctx.run.metadata, readRunState(ctx.base.extraFields)?.attempt ?? 0);
  return extraLeases.flatMap(({ pool, vm }): Action[] => {
    const step = scratchStep(seenVM(ctx.obs, pool, vm));
    return step === "gone" ? [{ kind: "releaseLease", pool, vm, holder, toWarm: false }] : scratchActions(step, pool, vm);
  });
}

/** The stop or instance deletion a scratch step asks for, if any. */
function scratchActions(step: ScratchStep, pool: string, vm: string): Action[] {
  if (step === "stop") return [{ kind: "stopVM", pool, vm }];
  if (step === "deleteVMI") return [{ kind: "deleteVMI", pool, vm }];
  return [];
}

function toDecision(ctx: Ctx, step: Step): Decision {
  const { run, base, nowIso } = ctx;
  const previous = succeededCondition(base);
  const status: RunStatus = {
    ...base,
    startTime: step.startTime ?? base.startTime,
    conditions: [step.condition],
    ...(step.retriesStatus ? { retriesStatus: step.retriesStatus } : {}),
    ...(step.state ? { extraFields: step.final ? { ...step.state, phase: "Done" } : step.state } : {}),
    ...(run.metadata.generation !== undefined ? { observedGeneration: run.metadata.generation } : {}),
  };
  if (step.final) {
    status.completionTime = nowIso;
    if (step.results && step.results.length > 0) status.results = step.results;
  }
  const changed = previous?.reason !== step.condition.reason || previous?.status !== step.condition.status;
  const events: EventNote[] = changed
    ? [
        {
          type: step.condition.status === "False" ? "Warning" : "Normal",
          reason: step.condition.reason ?? "",
          message: step.condition.message ?? "",
        },
      ]
    : [];
  // Once scratching, the run's timeout has nothing more to stop: the watches on the VM drive it from there.
  const timeoutMatters = !step.final && step.state?.phase !== "Scratching";
  const requeueAfterMs = minDefined(step.requeueAfterMs, timeoutMatters ? timeoutRemaining(run, status, ctx.obs.now) : undefined);
  return {
    actions: [...giveBackExtraLeases(ctx), ...step.actions],
    status,
    removeFinalizer: step.final === true && hasFinalizer(run),
    events,
    ...(requeueAfterMs !== undefined ? { requeueAfterMs: Math.max(0, requeueAfterMs) } : {}),
  };
}

function leasedSlot(slot: SlotState, vm: string): Pick<SlotState, "vm" | "lease"> {
  return { vm, lease: `${splitPoolKey(slot.pool).namespace}/${leaseName(vm)}` };
}

function freshSlot(slot: SlotState): SlotState {
  return { platforms: slot.platforms, pool: slot.pool };
}

/**
 * The VM slot i of `state` holds: one leased in this decision, the one its observed lease names, or the one the
 * status names while no other run's lease shows on it. The status only ever names a VM after its lease was
 * created, so a lease missing from the cache there is the cache lagging behind our own write (or a lease already
 * released by us), not a VM lost.
 */
function heldVM(ctx: Pick<Ctx, "obs" | "held">, state: RunState, i: number): string | undefined {
  const slot = state.slots[i];
  if (slot?.vm && ctx.held.leasedNow.has(slot.vm)) return slot.vm;
  const lease = ctx.held.leases[i];
  if (lease) return lease;
  if (!slot?.vm || !ctx.obs.pools[slot.pool]?.found) return undefined;
  return seenVM(ctx.obs, slot.pool, slot.vm)?.leaseHolder ? undefined : slot.vm;
}

/** What the observation saw of VM `name` in `pool`. */
function seenVM(obs: Observation, pool: string, name: string): VMView | undefined {
  const found = obs.pools[pool];
  return found?.found ? found.vms.find((vm) => vm.name === name) : undefined;
}

/** A pool that cannot serve the run yet: how many VMs the run needs there. */
interface Lacking {
  pool: string;
  need: number;
}

/**
 * VMs for every slot still without one (none needed: an empty map), or the pools that cannot serve the run yet.
 * Each pool's free VMs (warm ones first) go to the waiting runs in fair-queue order: the runs ahead take the
 * first ones.
 */
function pickVMs(obs: Observation, state: RunState): { picks: Map<number, VMView> } | { lacking: Lacking[] } {
  const picks = new Map<number, VMView>();
  const lacking: Lacking[] = [];
  const byPool = new Map<string, number[]>();
  state.slots.forEach((slot, i) => {
    if (!slot.vm) byPool.set(slot.pool, [...(byPool.get(slot.pool) ?? []), i]);
  });
  for (const [pool, slots] of byPool) {
    const ahead = obs.demandAhead[pool] ?? 0;
    const free = freeVMs(obs.pools[pool], state).slice(ahead, ahead + slots.length);
    if (free.length < slots.length) lacking.push({ pool, need: slots.length });
    else slots.forEach((slot, k) => picks.set(slot, free[k] as VMView));
  }
  return lacking.length > 0 ? { lacking } : { picks };
}

function freeVMs(pool: PoolObservation | undefined, state: RunState): VMView[] {
  if (!pool?.found) return [];
  const tried = new Set(state.tried.map((t) => t.vm));
  const usable = pool.vms.filter((vm) => !tried.has(vm.name)).sort((a, b) => a.name.localeCompare(b.name));
  const warm = usable.filter(isWarmReady);
  const cold = usable.filter((vm) => !vm.leaseHolder && !vm.wantsRunning && !vm.vmi);
  return [...warm, ...cold];
}

function poolsOf(state: RunState): string {
  return [...new Set(state.slots.map((s) => s.pool))].join(", ");
}

function vmsOf(state: RunState): string {
  return state.slots.map((s) => s.vm ?? "?").join(", ");
}

/**
 * A queue position changes at every lease turn: one status write per waiting run per turn (found by bench b). So
 * the message says only whether the run is next in line; the web view shows the live queue.
 */
function waitingMessage(obs: Observation, lacking: readonly Lacking[]): string {
  const parts = lacking.map(({ pool, need }) => {
    const where = (obs.demandAhead[pool] ?? 0) === 0 ? "next in line" : "queued behind other runs";
    return `${need > 1 ? `${need} free VMs` : "a free VM"} of pool ${pool}: ${where}`;
  });
  return `Waiting for ${parts.join("; ")}.`;
}

function poolSummaries(obs: Observation, state: RunState): string {
  return [...new Set(state.slots.map((s) => s.pool))].map((pool) => poolSummary(obs.pools[pool])).join("; ");
}

function poolSummary(pool: PoolObservation | undefined): string {
  if (!pool?.found) return "pool not found";
  const vms = pool.vms;
  if (vms.length === 0) return "the pool has no VMs";
  const leased = vms.filter((vm) => vm.leaseHolder && vm.leaseHolder !== WARM_HOLDER).length;
  const warm = warmCount(vms);
  const busy = vms.filter((vm) => !vm.leaseHolder && (vm.wantsRunning || vm.vmi)).length;
  return `${vms.length} VMs: ${leased} leased${warm ? `, ${warm} warm` : ""}${busy ? `, ${busy} running without a lease` : ""}`;
}

function describeVM(vm: VMView, job: JobView | undefined): string {
  const vmi = vm.vmi;
  const seen = !vmi
    ? vm.wantsRunning
      ? "no VMI yet"
      : "not started"
    : `VMI ${vmi.phase || "Pending"}${vmi.ready ? ", ready" : ", not ready"}${vmi.address ? ` at ${vmi.address}` : ""}`;
  return job?.state === "failed" ? `${seen}; ${job.message}` : seen;
}

function minDefined(...values: (number | undefined)[]): number | undefined {
  const defined = values.filter((v): v is number => v !== undefined);
  return defined.length > 0 ? Math.min(...defined) : undefined;
}
