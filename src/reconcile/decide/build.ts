import type { BuildSettings } from "../../api/settings.js";
import type { Reason } from "../../tekton/reasons.js";
import type { RunState } from "../../tekton/run-state.js";
import { condition, elapsed, failure, progress } from "../../tekton/status.js";
import { formatDuration } from "../../timing/duration.js";
import { lastSeen, type Ctx, type Next } from "./phase.js";
import { recover } from "./recover.js";

// Building: the job builds and pushes; its end, whatever it is, begins the scratch.

export function building(ctx: Ctx, state: RunState, settings: BuildSettings): Next<"beginScratch"> {
  const job = ctx.held.job;
  // The process that ran the build is gone (this replica was restarted under the same name, or the run predates
  // owners): the build cannot be re-attached (docs/architecture.md), so it runs again.
  if (!job) return recover(ctx, state, "The controller process that ran the build is gone");
  if (job.state === "succeeded") {
    return {
      to: "beginScratch",
      state,
      outcome: { condition: condition(ctx, "True", "Succeeded", job.summary), results: job.results, next: "finish" },
    };
  }
  if (job.state === "failed") {
    const gone = vmsGone(ctx, state);
    const message = gone ? `${gone} during the ${job.stage === "pushing" ? "push" : "build"}: ${job.message}` : job.message;
    return { to: "beginScratch", state, outcome: { ...failure(job.reason, message), results: job.results } };
  }
  const waited = elapsed(ctx.obs.now, state.phaseSince);
  if (settings.buildTimeout > 0 && waited >= settings.buildTimeout) {
    return {
      to: "beginScratch",
      state,
      outcome: failure("BuildTimedOut", `The build did not finish within buildTimeout ${formatDuration(settings.buildTimeout)}.`),
    };
  }
  const reason: Reason = job.stage === "pushing" ? "Pushing" : "Building";
  return {
    actions: [],
    state,
    condition: progress(ctx, reason, job.detail),
    ...(settings.buildTimeout > 0 ? { requeueAfterMs: settings.buildTimeout - waited } : {}),
  };
}

/**
 * The run's VMs that the caches show gone or going: a build cut off with its VM fails on a closed connection,
 * which says nothing of why. Someone deleted or stopped the VM, or its instance failed.
 */
function vmsGone(ctx: Ctx, state: RunState): string | undefined {
  const gone = state.slots.flatMap((slot) => {
    if (!slot.vm) return [];
    const seen = lastSeen(ctx.obs, slot.pool, slot.vm);
    if (!seen) return [`VM ${slot.vm} was deleted`];
    if (!seen.vmi) return [`VM ${slot.vm}'s instance was deleted`];
    if (seen.vmi.deleting) return [`VM ${slot.vm}'s instance is being deleted`];
    if (seen.vmi.phase === "Failed") return [`VM ${slot.vm}'s instance failed`];
    return [];
  });
  return gone.length > 0 ? gone.join(", ") : undefined;
}
