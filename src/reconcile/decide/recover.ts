import type { RunState } from "../../tekton/run-state.js";
import { failure, progress } from "../../tekton/status.js";
import { vmsOf, type Ctx, type HandOn, type Next } from "./phase.js";

// Ownership: each run from Starting to the end of its scratch is executed by one replica (extraFields.owner). When
// that replica is lost, the leader adopts the run: a build that may have begun on the VM is not trusted, so its VM
// is scratched and the attempt queued again, at most MAX_RECOVERIES times per run and without using spec.retries:
// the failure was the controller's, not the build's.

export const MAX_RECOVERIES = 2;

/** Another replica executes the run and is alive: nothing here may act on it. */
export function ownedElsewhere(ctx: Pick<Ctx, "obs">, state: RunState): boolean {
  const replica = ctx.obs.replica;
  return replica !== undefined && state.owner !== undefined && state.owner !== replica.me && replica.ownerAlive;
}

/**
 * Makes an unfinished run this replica's when its owner is gone (or it predates owners): a queued run stays
 * unowned, a scratch simply goes on here, a start or a build is recovered.
 */
export function adopt(ctx: Ctx, state: RunState): RunState | Extract<HandOn, { to: "beginScratch" }> {
  const me = ctx.obs.replica?.me;
  if (!me || state.owner === me || state.phase === "Queued" || state.phase === "Done") return state;
  const lost = state.owner;
  const mine: RunState = { ...state, owner: me };
  if (lost === undefined || state.phase === "Scratching") return mine;
  return recover(ctx, mine, `Controller replica ${lost}, which executed the run, was lost`);
}

/** Scratch what the attempt holds and queue it again, or, past MAX_RECOVERIES, end it ControllerRestarted. */
export function recover(ctx: Ctx, state: RunState, why: string): Extract<Next<"beginScratch">, { to: "beginScratch" }> {
  const done = state.recoveries ?? 0;
  const where = `${state.phase === "Building" ? "building" : "starting"} on VM ${vmsOf(state)}`;
  if (done >= MAX_RECOVERIES) {
    return {
      to: "beginScratch",
      state,
      outcome: failure("ControllerRestarted", `${why} while ${where}; the run was already run again ${done} times after such losses.`),
    };
  }
  const n = done + 1;
  return {
    to: "beginScratch",
    state: { ...state, recoveries: n },
    outcome: {
      condition: progress(
        ctx,
        "Recovering",
        `${why} while ${where}: its VM is scratched and the attempt runs again on a fresh VM (re-run ${n} of ${MAX_RECOVERIES}; spec.retries is not used).`,
      ),
      results: [],
      next: "requeue",
    },
  };
}
