import type { BuildSettings } from "../../api/settings.js";
import type { JobRef, JobView, JobVM } from "../../jobs/jobs.js";
import type { VMView } from "../../kubevirt/vm.js";
import { logURL } from "../../api/log-url.js";
import { splitPoolKey } from "../../kubevirt/pool-key.js";
import type { Condition, CustomRun, RunResult, RunStatus } from "../../tekton/customrun.js";
import type { Outcome, RunState } from "../../tekton/run-state.js";
import type { Observation } from "../observation.js";

// What every phase of a decision works from (Ctx, and in it the VMs the attempt holds) and what it returns: the
// Step the decision ends in, or a HandOn to a later phase.

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
  /** Every VM of the job has an address: where each one answers, in the job's VM order; ready once all are Ready. */
  | { kind: "connectJob"; job: JobRef; addresses: string[]; ready: boolean }
  | { kind: "cancelJob"; job: JobRef };

export interface Ctx {
  run: CustomRun;
  obs: Observation;
  nowIso: string;
  /** The status this decision builds on (startTime already set). */
  base: RunStatus;
  held: Held;
}

/** What a decision writes when it ends in this phase. */
export interface Step {
  actions: Action[];
  state?: RunState;
  condition: Condition;
  results?: RunStatus["results"];
  final?: boolean;
  retriesStatus?: RunStatus["retriesStatus"];
  startTime?: string;
  requeueAfterMs?: number;
}

/** Go on to phase `to` in this same decision, from `state`. */
export type HandOn = (
  | { to: "queued"; settings: BuildSettings }
  | { to: "starting"; settings: BuildSettings }
  | { to: "building"; settings: BuildSettings }
  | { to: "beginScratch"; outcome: Outcome }
  | { to: "scratching" }
  | { to: "finish"; outcome: Outcome }
) & {
  state: RunState;
  /** Done before whatever the phases after it decide. */
  actions?: Action[];
  /** What the attempt holds from here on, when this hand-on leased or released VMs. */
  held?: Held;
  /** The status the phases after it build on, when this hand-on begins a new attempt. */
  base?: RunStatus;
  /** Applied to the step the decision ends in. */
  amend?: (step: Step) => Step;
};

/** A phase's answer: the step the decision ends in, or a hand-on to one of the phases `To`. */
export type Next<To extends HandOn["to"]> = Step | Extract<HandOn, { to: To }>;

/**
 * What the attempt holds, as one decision sees it: observed once, then replaced when the decision leases or
 * releases VMs. Every phase reads it through heldVM.
 */
export interface Held {
  /** Per slot of the run's status: the VM whose lease observe found for this attempt. */
  leases: readonly (string | undefined)[];
  /** VMs leased in this very decision: held, though their leases are not observed yet. */
  leasedNow: ReadonlySet<string>;
  /** The build job of the held VMs: none for VMs leased in this decision, nor once they are released. */
  job?: JobView;
}

export function observedHeld(obs: Observation): Held {
  return { leases: obs.held, leasedNow: new Set(), ...(obs.job ? { job: obs.job } : {}) };
}

/** After leasing `vms` in this decision: held, with no job yet. */
export function withLeased(held: Held, vms: readonly string[]): Held {
  if (vms.length === 0) return held;
  return { leases: held.leases, leasedNow: new Set([...held.leasedNow, ...vms]) };
}

/** After releasing every VM: nothing held, no job. */
export const RELEASED: Held = { leases: [], leasedNow: new Set() };

/**
 * The VM slot i of `state` holds: one leased in this decision, the one its observed lease names, or the one the
 * status names while no other run's lease shows on it. The status only ever names a VM after its lease was
 * created, so a lease missing from the cache there is the cache lagging behind our own write (or a lease already
 * released by us), not a VM lost.
 */
export function heldVM(ctx: Ctx, state: RunState, i: number): string | undefined {
  const slot = state.slots[i];
  if (slot?.vm && ctx.held.leasedNow.has(slot.vm)) return slot.vm;
  const lease = ctx.held.leases[i];
  if (lease) return lease;
  if (!slot?.vm) return undefined;
  return lastSeen(ctx.obs, slot.pool, slot.vm)?.leaseHolder ? undefined : slot.vm;
}

/** What the observation saw of VM `name` in `pool`. */
export function seenVM(obs: Observation, pool: string, name: string): VMView | undefined {
  const found = obs.pools[pool];
  return found?.found ? found.vms.find((vm) => vm.name === name) : undefined;
}

/**
 * What is left of VM `name` of `pool`: as its pool shows it, or, once the VM or the pool was deleted, what is still
 * seen by name (an instance still to delete). What a scratch works from.
 */
export function lastSeen(obs: Observation, pool: string, name: string): VMView | undefined {
  return seenVM(obs, pool, name) ?? obs.unpooled?.[`${splitPoolKey(pool).namespace}/${name}`];
}

export function vmsOf(state: RunState): string {
  return state.slots.map((s) => s.vm ?? "?").join(", ");
}

/**
 * What a run reports however it ends (a `finally` task may read them): the attempt's results so far, with LOG_URL
 * and BUILD_VM filled in where the build job did not get to say them.
 */
export function endingResults(ctx: Ctx, attempt: number, state: RunState | undefined, results: readonly RunResult[]): RunResult[] {
  const { namespace, name } = ctx.run.metadata;
  const vms = (state?.slots ?? []).flatMap((slot) => (slot.vm ? [`${splitPoolKey(slot.pool).namespace}/${slot.vm}`] : []));
  const filled = [...results];
  if (vms.length > 0 && !filled.some((r) => r.name === "BUILD_VM")) filled.push({ name: "BUILD_VM", value: vms.join(",") });
  if (!filled.some((r) => r.name === "LOG_URL")) filled.push({ name: "LOG_URL", value: logURL(ctx.obs.publicURL, namespace, name, attempt) });
  return filled;
}
