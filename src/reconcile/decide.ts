import { formatDuration, parseDuration } from "../spec/duration.js";
import {
  CANCELLED_SPEC_STATUS,
  DEFAULT_TIMEOUT,
  FINALIZER,
  isFinished,
  succeededCondition,
  type Condition,
  type CustomRun,
  type RunStatus,
} from "../tekton/customrun.js";
import { REASONS, type Reason } from "../tekton/reasons.js";
import type { BuildSettings } from "../spec/settings.js";
import { holderIdentity, leaseName } from "../lease/holder.js";
import type { JobView, Observation, VMView } from "./observation.js";
import { readRunState, type Outcome, type RunState } from "./run-state.js";

// The reconcile decision: given a CustomRun and what was observed, what happens next. Pure: no I/O, no clock.

/** How long a run waits for a VMBuild or pool it names to show up before failing. */
export const NOT_FOUND_GRACE_MS = 10_000;

export type Action =
  | { kind: "addFinalizer" }
  | { kind: "acquireLease"; vm: string; holder: string }
  | { kind: "releaseLease"; vm: string; holder: string }
  | { kind: "startVM"; vm: string }
  | { kind: "stopVM"; vm: string }
  | { kind: "deleteVMI"; vm: string }
  | { kind: "startJob"; vm: string; address: string }
  | { kind: "cancelJob" };

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
}

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
  const ctx: Ctx = { run, obs, nowIso: obs.now.toISOString(), base: current };
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
  const pool = obs.pool;
  if (!pool?.found) return cannotStart(ctx, pool ?? { reason: "PoolNotFound", message: "No pool was looked up." });
  const state: RunState = {
    phase: "Queued",
    attempt: 0,
    pool: `${pool.namespace}/${pool.name}`,
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
  if (obs.pool && !obs.pool.found) return beginScratch(ctx, state, failure(obs.pool.reason, obs.pool.message));
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
  if (timeout > 0 && base.startTime && elapsed(obs, base.startTime) >= timeout) {
    return failure(
      "CustomRunTimedOut",
      `CustomRun "${run.metadata.name}" failed to finish within "${formatDuration(timeout)}"`,
    );
  }
  return undefined;
}

function queued(ctx: Ctx, state: RunState, settings: BuildSettings): Step {
  const { obs } = ctx;
  if (ctx.obs.heldLease) {
    // The lease exists but the status does not know yet (the status write after acquiring it failed).
    const next: RunState = { ...state, ...leasedTo(state, ctx.obs.heldLease, ctx.nowIso), phase: "Starting" };
    return starting(ctx, next, settings);
  }

  const waited = elapsed(obs, state.queuedAt);
  if (waited >= settings.queueTimeout) {
    return beginScratch(
      ctx,
      state,
      failure(
        "QueueTimeout",
        `No VM of pool ${state.pool} became free within ${formatDuration(settings.queueTimeout)} (${poolSummary(obs)}).`,
      ),
    );
  }
  const free = freeVMs(obs, state);
  const vm = free[obs.queueAhead];
  if (vm) {
    const next: RunState = { ...state, ...leasedTo(state, vm.name, ctx.nowIso), phase: "Starting" };
    const step = starting(ctx, next, settings, vm);
    step.actions.unshift({ kind: "acquireLease", vm: vm.name, holder: holderIdentity(ctx.run.metadata, state.attempt) });
    return step;
  }
  // An exact position (and pool summary) far back in the queue changes at every lease turn: one status write per
  // waiting run per turn, O(queue²) writes (bench b). Exact only within the next round of VMs; the web view shows
  // the live queue.
  const round = Math.max(1, obs.pool?.found ? obs.pool.vms.length : 0);
  const where =
    obs.queueAhead < round
      ? `position ${obs.queueAhead + 1} in the queue`
      : `at least ${round} run${round === 1 ? "" : "s"} ahead in the queue`;
  return {
    actions: [],
    state,
    condition: progress(ctx, "WaitingForVM", `Waiting for a free VM of pool ${state.pool}: ${where}.`),
    requeueAfterMs: settings.queueTimeout - waited,
  };
}

function starting(ctx: Ctx, state: RunState, settings: BuildSettings, justLeased?: VMView): Step {
  const { obs } = ctx;
  const held = justLeased?.name ?? heldVMName(ctx, state);
  if (!held) {
    // Another run holds the VM our status names: we may not touch it any more; queue for another.
    const requeued: RunState = { ...state, phase: "Queued", vm: undefined, lease: undefined, phaseSince: ctx.nowIso };
    return queued(ctx, requeued, settings);
  }
  const vm = justLeased ?? vmView(ctx, held);
  const name = held;
  const waited = elapsed(obs, state.phaseSince);
  // The observed job belongs to the VM the status names; a VM leased in this very decision has none yet.
  const job = justLeased ? undefined : obs.job;
  // podman not answering is what readyTimeout bounds; a job that failed here failed for another reason
  // (the run's credentials, say) and ends the run like any build failure.
  if (job?.state === "failed") return beginScratch(ctx, state, failure(job.reason, job.message));
  if (!vm || waited >= settings.readyTimeout) {
    const lastSeen = vm ? describeVM(vm, job) : "the VM was deleted";
    const tried = [...state.tried, { vm: name, lastSeen }];
    if (tried.length < 2) {
      return beginScratch(ctx, { ...state, tried }, {
        condition: progress(
          ctx,
          "StartingVM",
          `VM ${name} did not get ready within ${formatDuration(settings.readyTimeout)} (${lastSeen}); trying another VM.`,
        ),
        results: [],
        next: "retryVM",
      });
    }
    const names = tried.map((t) => `${t.vm} (${t.lastSeen})`).join("; ");
    return beginScratch(
      ctx,
      { ...state, tried },
      failure("VMNotReady", `No VM got ready within ${formatDuration(settings.readyTimeout)}: ${names}.`),
    );
  }
  if (job && !(job.state === "running" && job.stage === "connecting")) {
    return building(ctx, { ...state, phase: "Building", phaseSince: ctx.nowIso }, settings);
  }
  const actions: Action[] = [];
  if (!vm.wantsRunning) actions.push({ kind: "startVM", vm: vm.name });
  const vmi = vm.vmi;
  if (!job && vmi?.ready && vmi.address && !vmi.deleting) {
    actions.push({ kind: "startJob", vm: vm.name, address: vmi.address });
  }
  const message = job
    ? `VM ${vm.name} is up at ${vmi?.address ?? "?"}; waiting for podman to answer.`
    : `Starting VM ${vm.name} of pool ${state.pool} (${describeVM(vm, undefined)}).`;
  return {
    actions,
    state,
    condition: progress(ctx, "StartingVM", message),
    requeueAfterMs: settings.readyTimeout - waited,
  };
}

function building(ctx: Ctx, state: RunState, settings: BuildSettings): Step {
  const job = ctx.obs.job;
  if (!job) {
    return beginScratch(
      ctx,
      state,
      failure("ControllerRestarted", `The controller restarted while the build was in flight on VM ${state.vm ?? "?"}.`),
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
  const waited = elapsed(ctx.obs, state.phaseSince);
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
  if (!heldVMName(ctx, state) && ctx.obs.job?.state !== "running") return finish(ctx, state, outcome);
  return scratching(ctx, { ...state, phase: "Scratching", phaseSince: ctx.nowIso, outcome });
}

/** Stop the VM so its disk is thrown away, confirm the instance is gone, then release the lease. */
function scratching(ctx: Ctx, state: RunState): Step {
  const outcome = state.outcome ?? failure("ControllerRestarted", "Scratch without an outcome.");
  const actions: Action[] = [];
  if (ctx.obs.job?.state === "running") actions.push({ kind: "cancelJob" });
  const lease = heldVMName(ctx, state);
  if (!lease) {
    if (ctx.obs.job?.state === "running") return { actions, state, condition: scratchCondition(ctx, state) };
    return finish(ctx, state, outcome);
  }
  const vm = ctx.obs.pool?.found ? ctx.obs.pool.vms.find((v) => v.name === lease) : undefined;
  // Stop first, then delete the instance once the VM is seen stopped: deleting the instance of a VM that still
  // wants to run makes KubeVirt start a new one.
  if (vm?.wantsRunning) actions.push({ kind: "stopVM", vm: lease });
  else if (vm?.vmi && !vm.vmi.deleting) actions.push({ kind: "deleteVMI", vm: lease });
  const gone = !vm || (!vm.wantsRunning && !vm.vmi);
  if (gone && ctx.obs.job?.state !== "running") {
    actions.push({ kind: "releaseLease", vm: lease, holder: holderIdentity(ctx.run.metadata, state.attempt) });
    const released: Ctx = { ...ctx, obs: { ...ctx.obs, heldLease: undefined, job: undefined } };
    const step = finish(released, state, outcome);
    return { ...step, actions: [...actions, ...step.actions] };
  }
  return { actions, state, condition: scratchCondition(ctx, state) };
}

function scratchCondition(ctx: Ctx, state: RunState): Condition {
  const why = state.outcome?.condition;
  return progress(ctx, "Scratching", `Scratching VM ${state.vm ?? "?"} (${why?.reason ?? ""}): ${why?.message ?? ""}`);
}

/** The attempt is over and holds nothing: retry, try another VM, or write the final condition. */
function finish(ctx: Ctx, state: RunState, outcome: Outcome): Step {
  const { run, nowIso } = ctx;
  const settings = ctx.obs.settings.ok ? ctx.obs.settings.settings : undefined;
  if (outcome.next === "retryVM" && settings) {
    const requeued: RunState = { ...state, phase: "Queued", vm: undefined, lease: undefined, outcome: undefined, phaseSince: nowIso };
    const step = queued(ctx, requeued, settings);
    if (step.condition.reason === "WaitingForVM") step.condition = { ...outcome.condition, lastTransitionTime: nowIso };
    return step;
  }
  const failed = outcome.condition.status === "False";
  const retryable = failed && outcome.condition.reason !== "CustomRunCancelled" && !run.metadata.deletionTimestamp;
  if (retryable && settings && state.attempt < (run.spec.retries ?? 0)) {
    const retriesStatus = [
      ...(ctx.base.retriesStatus ?? []),
      {
        conditions: [outcome.condition],
        startTime: ctx.base.startTime,
        completionTime: nowIso,
        ...(outcome.results.length > 0 ? { results: outcome.results } : {}),
      },
    ];
    const next: RunState = {
      phase: "Queued",
      attempt: state.attempt + 1,
      pool: state.pool,
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
  const young = elapsed(ctx.obs, ctx.base.startTime ?? ctx.nowIso) < NOT_FOUND_GRACE_MS;
  if (young && (problem.reason === "VMBuildNotFound" || problem.reason === "PoolNotFound")) {
    return { actions: [], condition: progress(ctx, "Started", `${problem.message} Waiting for it to appear.`), requeueAfterMs: 1000 };
  }
  return finishNow(ctx, failure(problem.reason, problem.message));
}

/** End a run that never held anything (invalid input, cancelled before it started). */
function finishNow(ctx: Ctx, outcome: Outcome): Step {
  return { actions: [], condition: { ...outcome.condition, lastTransitionTime: ctx.nowIso }, results: [], final: true };
}

/** A run attempt holds one VM at most; any other it holds (two replicas raced) is scratched and given back. */
function giveBackExtraLeases(ctx: Ctx): Action[] {
  const { pool, extraLeases } = ctx.obs;
  if (!pool?.found || !extraLeases) return [];
  const holder = holderIdentity(ctx.run.metadata, readRunState(ctx.base.extraFields)?.attempt ?? 0);
  return extraLeases.flatMap((name): Action[] => {
    const vm = pool.vms.find((v) => v.name === name);
    if (vm?.wantsRunning) return [{ kind: "stopVM", vm: name }];
    if (vm?.vmi) return vm.vmi.deleting ? [] : [{ kind: "deleteVMI", vm: name }];
    return [{ kind: "releaseLease", vm: name, holder }];
  });
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
  const requeueAfterMs = minDefined(step.requeueAfterMs, timeoutMatters ? timeoutRemaining(ctx, status) : undefined);
  return {
    actions: [...giveBackExtraLeases(ctx), ...step.actions],
    status,
    removeFinalizer: step.final === true && hasFinalizer(run),
    events,
    ...(requeueAfterMs !== undefined ? { requeueAfterMs: Math.max(0, requeueAfterMs) } : {}),
  };
}

function condition(ctx: Ctx, status: Condition["status"], reason: Reason, message: string): Condition {
  const previous = succeededCondition(ctx.base);
  const same = previous?.status === status && previous.reason === reason;
  return {
    type: "Succeeded",
    status,
    reason,
    message,
    lastTransitionTime: same && previous.lastTransitionTime ? previous.lastTransitionTime : ctx.nowIso,
  };
}

function progress(ctx: Ctx, reason: Reason, message: string): Condition {
  return condition(ctx, "Unknown", reason, message);
}

function failure(reason: Reason, message: string): Outcome {
  const info = REASONS[reason];
  return {
    condition: { type: "Succeeded", status: info.status === "True" ? "True" : "False", reason, message },
    results: [],
    next: "finish",
  };
}

function hasFinalizer(run: CustomRun): boolean {
  return run.metadata.finalizers?.includes(FINALIZER) ?? false;
}

function leasedTo(state: RunState, vm: string, nowIso: string): Pick<RunState, "vm" | "lease" | "leasedAt" | "phaseSince"> {
  const namespace = state.pool.split("/")[0] ?? "";
  return { vm, lease: `${namespace}/${leaseName(vm)}`, leasedAt: nowIso, phaseSince: nowIso };
}

/**
 * The VM this attempt holds: the one its lease names, or the one its status names while no other run's lease
 * shows on it. The status only ever names a VM after its lease was created, so a lease missing from the cache
 * there is the cache lagging behind our own write (or a lease already released by us), not a VM lost.
 */
function heldVMName(ctx: Ctx, state: RunState): string | undefined {
  if (ctx.obs.heldLease) return ctx.obs.heldLease;
  if (!state.vm || !ctx.obs.pool?.found) return undefined;
  const view = vmView(ctx, state.vm);
  return view?.leaseHolder ? undefined : state.vm;
}

function vmView(ctx: Ctx, name: string): VMView | undefined {
  return ctx.obs.pool?.found ? ctx.obs.pool.vms.find((vm) => vm.name === name) : undefined;
}

function freeVMs(obs: Observation, state: RunState): VMView[] {
  if (!obs.pool?.found) return [];
  const tried = new Set(state.tried.map((t) => t.vm));
  return obs.pool.vms
    .filter((vm) => !vm.leaseHolder && !vm.wantsRunning && !vm.vmi && !tried.has(vm.name))
    .sort((a, b) => a.name.localeCompare(b.name));
}

function poolSummary(obs: Observation): string {
  if (!obs.pool?.found) return "pool not found";
  const vms = obs.pool.vms;
  if (vms.length === 0) return "the pool has no VMs";
  const leased = vms.filter((vm) => vm.leaseHolder).length;
  const busy = vms.filter((vm) => !vm.leaseHolder && (vm.wantsRunning || vm.vmi)).length;
  return `${vms.length} VMs: ${leased} leased${busy ? `, ${busy} running without a lease` : ""}`;
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

function runTimeoutMs(run: CustomRun): number {
  return parseDuration(run.spec.timeout ?? DEFAULT_TIMEOUT) ?? (parseDuration(DEFAULT_TIMEOUT) as number);
}

function timeoutRemaining(ctx: Ctx, status: RunStatus): number | undefined {
  const timeout = runTimeoutMs(ctx.run);
  if (timeout <= 0 || !status.startTime) return undefined;
  return timeout - elapsed(ctx.obs, status.startTime);
}

function elapsed(obs: Observation, sinceIso: string): number {
  return obs.now.getTime() - Date.parse(sinceIso);
}

function minDefined(...values: (number | undefined)[]): number | undefined {
  const defined = values.filter((v): v is number => v !== undefined);
  return defined.length > 0 ? Math.min(...defined) : undefined;
}
