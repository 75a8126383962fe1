import { CANCELLED_SPEC_STATUS, isFinished, succeededCondition, type CustomRun, type RunStatus } from "../../tekton/customrun.js";
import { eventType, type Reason } from "../../tekton/reasons.js";
import { readRunState, type Outcome, type RunState } from "../../tekton/run-state.js";
import { elapsed, failure, hasFinalizer, progress, runTimeoutMs, timeoutRemaining } from "../../tekton/status.js";
import { formatDuration } from "../../timing/duration.js";
import type { Observation } from "../observation.js";
import { building } from "./build.js";
import { endingResults, observedHeld, type Action, type Ctx, type HandOn, type Next, type Step } from "./phase.js";
import { queued } from "./queue.js";
import { beginScratch, finish, giveBackExtraLeases, scratching } from "./scratch.js";
import { LEASE_START_GRACE_MS } from "../../kubevirt/scratch.js";
import { adopt, ownedElsewhere } from "./recover.js";
import { starting } from "./start.js";
import { cutMiddle } from "../../api/cut-middle.js";

// The reconcile decision: given a CustomRun and what was observed, what happens next. Pure: no I/O, no clock.

export type { Action } from "./phase.js";

/** How long a run waits for a VMBuild or pool it names to show up before failing. */
export const NOT_FOUND_GRACE_MS = 10_000;

/**
 * How often one decision may enter the Queued phase, which bounds its hand-ons: phases hand on only forward
 * (queued → starting → building → beginScratch → scratching → finish; their return types say so) except
 * finish → queued, to queue again for other VMs or to begin a retry. Two entries cover every run whose
 * queueTimeout and readyTimeout are above 0s: the queue it is in or a requeue, then a retry when that wait timed
 * out. A retry starts queuedAt and phaseSince afresh, so neither timeout fires again in the same decision. With a
 * 0s timeout a decision would spend every retry at once; past the bound the run is written queued instead and
 * goes on in the next reconcile.
 */
const MAX_QUEUE_ENTRIES = 2;

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

export function decide(run: CustomRun, obs: Observation): Decision {
  const current = run.status ?? {};
  if (isFinished(current)) {
    // Never rewrite a finished run; only let go of it, and of any VM leased for it by a replica that was behind.
    const strays = giveBackExtraLeases(run, obs, current);
    if (!strays.pending && strays.actions.length === 0) return { actions: [], removeFinalizer: hasFinalizer(run), events: [] };
    // Held until they are gone; the release wakes the run, and the recheck covers a VM whose events name no run.
    return { actions: strays.actions, removeFinalizer: false, events: [], requeueAfterMs: LEASE_START_GRACE_MS };
  }
  const state = readRunState(current.extraFields);
  const ctx: Ctx = { run, obs, nowIso: obs.now.toISOString(), base: current, held: observedHeld(obs) };
  if (state && ownedElsewhere(ctx, state)) return { actions: [], removeFinalizer: false, events: [] };
  if (!current.startTime || !state) {
    if (run.metadata.deletionTimestamp) return { actions: [], removeFinalizer: hasFinalizer(run), events: [] };
    ctx.base = { ...current, startTime: current.startTime ?? ctx.nowIso };
    return toDecision(ctx, runPhases(ctx, admit(ctx)));
  }
  return toDecision(ctx, runPhases(ctx, proceed(ctx, state)));
}

/** A new run: queue it, or end it at once (invalid input, cancelled before it started). */
function admit(ctx: Ctx): Next<"queued"> {
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
    ...obs.settings.inputs,
  };
  const finalizer: Action[] = hasFinalizer(run) ? [] : [{ kind: "addFinalizer" }];
  return { to: "queued", state, settings: obs.settings.settings, actions: finalizer };
}

/** A run under way: the phase its status names, unless it has to end. */
function proceed(ctx: Ctx, owned: RunState): Next<"queued" | "starting" | "building" | "beginScratch" | "scratching"> {
  const adopted = adopt(ctx, owned);
  if ("to" in adopted) return adopted;
  const state = adopted;
  if (state.phase === "Scratching" || state.phase === "Done") return { to: "scratching", state };
  const stop = stopRequest(ctx);
  if (stop) return { to: "beginScratch", state, outcome: stop };
  const { obs } = ctx;
  if (!obs.settings.ok) return { to: "beginScratch", state, outcome: failure(obs.settings.reason, obs.settings.message) };
  const missing = state.slots.map((slot) => obs.pools[slot.pool]).find((pool) => pool && !pool.found);
  if (missing && !missing.found) return { to: "beginScratch", state, outcome: failure(missing.reason, missing.message) };
  const settings = obs.settings.settings;
  switch (state.phase) {
    case "Queued":
      return { to: "queued", state, settings };
    case "Starting":
      return { to: "starting", state, settings };
    case "Building":
      return { to: "building", state, settings };
  }
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
  return {
    actions: [],
    condition: { ...outcome.condition, lastTransitionTime: ctx.nowIso },
    results: endingResults(ctx, 0, undefined, outcome.results),
    final: true,
  };
}

/**
 * Hands on from phase to phase until one ends the decision (bounded by MAX_QUEUE_ENTRIES). A hand-on's actions
 * come before those of the phases after it; the amends apply to the final step, the latest hand-on's first.
 */
function runPhases(ctx: Ctx, first: Step | HandOn): Step {
  const before: Action[] = [];
  const amends: ((step: Step) => Step)[] = [];
  let at = ctx;
  let next = first;
  let queueEntries = 0;
  while ("to" in next) {
    const handOn = next;
    before.push(...(handOn.actions ?? []));
    if (handOn.amend) amends.unshift(handOn.amend);
    at = { ...at, ...(handOn.held ? { held: handOn.held } : {}), ...(handOn.base ? { base: handOn.base } : {}) };
    next = handOn.to === "queued" && ++queueEntries > MAX_QUEUE_ENTRIES ? queuedForNextReconcile(at, handOn.state) : enter(at, handOn);
  }
  return amends.reduce((step, amend) => amend(step), { ...next, actions: [...before, ...next.actions] });
}

function enter(ctx: Ctx, handOn: HandOn): Step | HandOn {
  switch (handOn.to) {
    case "queued":
      return queued(ctx, handOn.state, handOn.settings);
    case "starting":
      return starting(ctx, handOn.state, handOn.settings);
    case "building":
      return building(ctx, handOn.state, handOn.settings);
    case "beginScratch":
      return beginScratch(ctx, handOn.state, handOn.outcome);
    case "scratching":
      return scratching(ctx, handOn.state);
    case "finish":
      return finish(ctx, handOn.state, handOn.outcome);
  }
}

/** Past MAX_QUEUE_ENTRIES: the run is written queued and taken up again at once; the hand-ons' amends say why. */
function queuedForNextReconcile(ctx: Ctx, state: RunState): Step {
  return { actions: [], state, condition: progress(ctx, "WaitingForVM", "Queued again."), requeueAfterMs: 0 };
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
  const type = changed ? eventType(step.condition.reason ?? "", step.condition.status) : undefined;
  // An Event's message is kept under 1 KiB (kube/events.ts): cut in the middle, it keeps the verdict and the log's URL.
  const message = cutMiddle(step.condition.message ?? "", 480);
  const events: EventNote[] = type ? [{ type, reason: step.condition.reason ?? "", message }] : [];
  // Once scratching, the run's timeout has nothing more to stop (it would requeue at once, again and again).
  const timeoutMatters = !step.final && step.state?.phase !== "Scratching";
  const strays = giveBackExtraLeases(run, ctx.obs, base);
  const requeueAfterMs = minDefined(
    step.requeueAfterMs,
    timeoutMatters ? timeoutRemaining(run, status, ctx.obs.now) : undefined,
    strays.pending ? LEASE_START_GRACE_MS : undefined,
  );
  return {
    actions: [...strays.actions, ...step.actions],
    status,
    removeFinalizer: step.final === true && hasFinalizer(run),
    events,
    ...(requeueAfterMs !== undefined ? { requeueAfterMs: Math.max(0, requeueAfterMs) } : {}),
  };
}

function minDefined(...values: (number | undefined)[]): number | undefined {
  const defined = values.filter((v): v is number => v !== undefined);
  return defined.length > 0 ? Math.min(...defined) : undefined;
}
