import type { BuildSettings } from "../../api/settings.js";
import { isFree, type VMView } from "../../kubevirt/vm.js";
import { splitPoolKey } from "../../kubevirt/pool-key.js";
import { holderIdentity, leaseName } from "../../lease/holder.js";
import { isWarmReady, WARM_HOLDER, warmCount } from "../../pools/warm.js";
import { statePools, type RunState, type SlotState } from "../../tekton/run-state.js";
import { elapsed, failure, progress } from "../../tekton/status.js";
import { formatDuration } from "../../timing/duration.js";
import type { Observation, PoolObservation } from "../observation.js";
import { heldVM, lastSeen, withLeased, type Action, type Ctx, type Next, type Step } from "./phase.js";
import { succeededCondition, type Condition } from "../../tekton/customrun.js";
import { LEASE_START_GRACE_MS, strayScratchStep } from "../../kubevirt/scratch.js";

// Queued: waiting for free VMs, in fair-queue order, and taking them.

/**
 * A run takes all its VMs in one decision or none: holding some while waiting for others could deadlock two
 * fan-out runs. Leases found that the status does not know (its write after acquiring them failed) are kept when
 * the rest can be leased now, and given back otherwise.
 */
export function queued(ctx: Ctx, state: RunState, settings: BuildSettings): Next<"starting" | "beginScratch"> {
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
  // Whoever leased a found VM starts it next: a give-back that released its Lease first would leave it running.
  const startOnTheWay = found.slots.some(
    (slot, i) => !state.slots[i]?.vm && slot.vm && strayScratchStep(lastSeen(obs, slot.pool, slot.vm), obs.now) === "wait",
  );

  const waited = elapsed(obs.now, state.queuedAt);
  if (waited >= settings.queueTimeout) {
    if (startOnTheWay) return holdForStart(state, succeededCondition(ctx.base) ?? progress(ctx, "WaitingForVM", "Queued."));
    const pools = statePools(state);
    return {
      to: "beginScratch",
      state: found,
      outcome: failure(
        "QueueTimeout",
        `No VM of pool ${pools.join(", ")} became free within ${formatDuration(settings.queueTimeout)} (${pools.map((pool) => poolSummary(obs.pools[pool])).join("; ")}).`,
      ),
    };
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
      // The scheduler (the leader) leases; a replica of its choosing executes from here on.
      ...(obs.replica ? { owner: obs.replica.assignee } : {}),
    };
    const holder = holderIdentity(ctx.run.metadata, state.attempt);
    const acquire: Action[] = [...picks].map(([i, vm]) => ({
      kind: "acquireLease",
      pool: found.slots[i]?.pool ?? "",
      vm: vm.name,
      holder,
      fromWarm: isWarmReady(vm),
    }));
    const held = withLeased(ctx.held, [...picks.values()].map((vm) => vm.name));
    return { to: "starting", state: next, settings, actions: acquire, held };
  }
  const waiting = progress(ctx, "WaitingForVM", waitingMessage(chosen.lacking));
  if (startOnTheWay) return holdForStart(state, waiting);
  if (holdsSome) return { to: "beginScratch", state: found, outcome: { condition: waiting, results: [], next: "requeue" } };
  return { actions: [], state, condition: waiting, requeueAfterMs: settings.queueTimeout - waited };
}

/** Queued as it was (the found VMs not written down), looked at again once a start on its way has landed. */
function holdForStart(state: RunState, condition: Condition): Step {
  return { actions: [], state, condition, requeueAfterMs: LEASE_START_GRACE_MS };
}

function leasedSlot(slot: SlotState, vm: string): Pick<SlotState, "vm" | "lease"> {
  return { vm, lease: `${splitPoolKey(slot.pool).namespace}/${leaseName(vm)}` };
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
  const cold = usable.filter(isFree);
  return [...warm, ...cold];
}

/**
 * A queue position changes at every lease turn, and so would "next in line": writing either would cost status
 * writes per waiting run. The web view and `kubectl vmbuild describe` show the live queue.
 */
function waitingMessage(lacking: readonly Lacking[]): string {
  const parts = lacking.map(({ pool, need }) => `${need > 1 ? `${need} free VMs` : "a free VM"} of pool ${pool}`);
  return `Waiting for ${parts.join("; ")}.`;
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
