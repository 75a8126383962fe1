import { parseDuration } from "../timing/duration.js";
import { cutMiddle } from "../api/cut-middle.js";
import { DEFAULT_TIMEOUT, FINALIZER, succeededCondition, type Condition, type CustomRun, type RunStatus } from "./customrun.js";
import { REASONS, type Reason } from "./reasons.js";
import type { Outcome } from "./run-state.js";

// The pieces of a CustomRun's status a decision writes: its Succeeded condition, an attempt's outcome, timeouts
// and retries. Pure: the time is passed in.

/** The status a decision builds on, and the time it decides at. */
export interface StatusBase {
  base: RunStatus;
  nowIso: string;
}

/** A condition message is read in `tkn`, dashboards and the PipelineRun's own status; the full text is in the log. */
export const boundedMessage = (message: string): string => cutMiddle(message, 2_000);

/** The run's Succeeded condition; lastTransitionTime stays while status and reason stay the same. */
export function condition(at: StatusBase, status: Condition["status"], reason: Reason, message: string): Condition {
  const previous = succeededCondition(at.base);
  const same = previous?.status === status && previous.reason === reason;
  return {
    type: "Succeeded",
    status,
    reason,
    message: boundedMessage(message),
    lastTransitionTime: same && previous.lastTransitionTime ? previous.lastTransitionTime : at.nowIso,
  };
}

/** The run still works: condition Unknown. */
export function progress(at: StatusBase, reason: Reason, message: string): Condition {
  return condition(at, "Unknown", reason, message);
}

/** An outcome that ends the attempt with `reason`, written once its VMs are scratched. */
export function failure(reason: Reason, message: string): Outcome {
  const info = REASONS[reason];
  return {
    condition: { type: "Succeeded", status: info.status === "True" ? "True" : "False", reason, message: boundedMessage(message) },
    results: [],
    next: "finish",
  };
}

export function hasFinalizer(run: CustomRun): boolean {
  return run.metadata.finalizers?.includes(FINALIZER) ?? false;
}

/** spec.timeout in ms (Tekton's default when absent); 0 means no timeout. */
export function runTimeoutMs(run: CustomRun): number {
  return parseDuration(run.spec.timeout ?? DEFAULT_TIMEOUT) ?? (parseDuration(DEFAULT_TIMEOUT) as number);
}

/** What is left of the run's timeout for the attempt that started at status.startTime. */
export function timeoutRemaining(run: CustomRun, status: RunStatus, now: Date): number | undefined {
  const timeout = runTimeoutMs(run);
  if (timeout <= 0 || !status.startTime) return undefined;
  return timeout - elapsed(now, status.startTime);
}

export function elapsed(now: Date, sinceIso: string): number {
  return now.getTime() - Date.parse(sinceIso);
}

/** The retriesStatus entry of the attempt that started at base.startTime and ended now with `outcome`. */
export function retryEntry(base: RunStatus, outcome: Outcome, nowIso: string): Record<string, unknown> {
  return {
    conditions: [{ ...outcome.condition, lastTransitionTime: nowIso }],
    startTime: base.startTime,
    completionTime: nowIso,
    ...(outcome.results.length > 0 ? { results: outcome.results } : {}),
  };
}
