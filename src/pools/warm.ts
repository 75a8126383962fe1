import { formatDuration, parseDuration } from "../timing/duration.js";
import { scratchStep } from "../kubevirt/scratch.js";
import { isFree, type VMView } from "../kubevirt/vm.js";

// Warm pools: VMs booted ahead of demand, each held by a Lease whose holder is the keeper, so neither a run nor the
// sweeper mistakes it for free or leaked. A run takes a warm VM by swapping the holder (compare-and-swap on the
// Lease); after its scratch the VM is handed back and booted again from a fresh disk. Pure.

/** Holder of the Lease of a warm VM: booted (or booting) and not leased by any run. */
export const WARM_HOLDER = "vmbuild/warm";
/** Holder of the Lease of a warm VM being stopped for idleness: nobody may take it. */
export const RETIRING_HOLDER = "vmbuild/retiring";

export const WARM_MIN_ANNOTATION = "vmbuild.dev/warm-min";
export const WARM_MAX_ANNOTATION = "vmbuild.dev/warm-max";
export const WARM_IDLE_ANNOTATION = "vmbuild.dev/warm-idle";
export const DEFAULT_WARM_IDLE = "30m";

export interface WarmConfig {
  /** Booted, unleased VMs kept ready. */
  min: number;
  /** Most booted, unleased VMs: scratched VMs rejoin the warm set up to this many. */
  max: number;
  /** Warm VMs above `min` idle this long are stopped. */
  idleMs: number;
}

export type WarmParse = { config?: WarmConfig; problem?: string };

/** A pool's warm settings from its annotations; no warm-min annotation means no warm VMs. */
export function readWarmConfig(annotations: Readonly<Record<string, string>> | undefined): WarmParse {
  const rawMin = annotations?.[WARM_MIN_ANNOTATION];
  if (rawMin === undefined) return {};
  const min = count(rawMin);
  if (min === undefined) return { problem: `${WARM_MIN_ANNOTATION}: expected a whole number, got "${rawMin.slice(0, 32)}"` };
  const rawMax = annotations?.[WARM_MAX_ANNOTATION];
  const max = rawMax === undefined ? min : count(rawMax);
  if (max === undefined || max < min) {
    return { problem: `${WARM_MAX_ANNOTATION}: expected a whole number not below ${WARM_MIN_ANNOTATION} (${min})` };
  }
  const rawIdle = annotations?.[WARM_IDLE_ANNOTATION] ?? DEFAULT_WARM_IDLE;
  const idleMs = parseDuration(rawIdle);
  if (idleMs === undefined || idleMs <= 0) {
    return { problem: `${WARM_IDLE_ANNOTATION}: expected a duration such as "10m", got "${rawIdle.slice(0, 32)}"` };
  }
  return { config: { min, max, idleMs } };
}

function count(raw: string): number | undefined {
  if (!/^\d{1,4}$/.test(raw.trim())) return undefined;
  return Number(raw.trim());
}

/** Warm and ready: a run may take it now. */
export function isWarmReady(vm: VMView): boolean {
  return vm.leaseHolder === WARM_HOLDER && vm.wantsRunning && !!vm.vmi?.ready && !!vm.vmi.address && !vm.vmi.deleting;
}

export function warmCount(vms: readonly VMView[]): number {
  return vms.filter((vm) => vm.leaseHolder === WARM_HOLDER).length;
}

export type KeeperAction =
  /** Take a free VM into the warm set: create its Lease for the keeper, then start it. */
  | { kind: "claim"; vm: string }
  /** A warm VM that is not running (handed back after a scratch): boot it from a fresh disk. */
  | { kind: "start"; vm: string }
  /** Swap the holder warm → retiring, so no run takes it while it stops. */
  | { kind: "retire"; vm: string; why: string }
  | { kind: "stop"; vm: string }
  | { kind: "deleteVMI"; vm: string }
  /** The retired VM is gone: delete its Lease; the VM is free (cold) again. */
  | { kind: "release"; vm: string };

/**
 * What the keeper does next for one pool. `waiting`: VMs that queued runs still need from this pool; while runs
 * wait, they take free VMs themselves and the keeper does not compete for them.
 */
export function keeperActions(
  config: WarmConfig | undefined,
  vms: readonly VMView[],
  waiting: number,
  now: Date,
): KeeperAction[] {
  const actions: KeeperAction[] = [];
  // A retiring VM is scratched like a run's; once it is gone its lease goes and the VM is cold again.
  for (const vm of vms) {
    if (vm.leaseHolder !== RETIRING_HOLDER) continue;
    const step = scratchStep(vm);
    if (step === "stop") actions.push({ kind: "stop", vm: vm.name });
    else if (step === "deleteVMI") actions.push({ kind: "deleteVMI", vm: vm.name });
    else if (step === "gone") actions.push({ kind: "release", vm: vm.name });
  }
  const warm = vms.filter((vm) => vm.leaseHolder === WARM_HOLDER).sort(byName);
  if (!config) {
    // Warm VMs of a pool no longer configured for them are stopped.
    for (const vm of warm) actions.push({ kind: "retire", vm: vm.name, why: "the pool has no warm-min any more" });
    return actions;
  }
  for (const vm of warm) {
    if (!vm.wantsRunning && !vm.vmi) actions.push({ kind: "start", vm: vm.name });
  }
  if (warm.length < config.min && waiting === 0) {
    const free = vms.filter(isFree).sort(byName);
    for (const vm of free.slice(0, config.min - warm.length)) actions.push({ kind: "claim", vm: vm.name });
  }
  // Above min: the longest idle go first, when over max or idle too long.
  const idleFirst = [...warm].sort((a, b) => (a.leasedSince ?? "").localeCompare(b.leasedSince ?? ""));
  let remaining = warm.length;
  for (const vm of idleFirst) {
    if (remaining <= config.min) break;
    const idle = now.getTime() - Date.parse(vm.leasedSince ?? now.toISOString());
    if (remaining > config.max) actions.push({ kind: "retire", vm: vm.name, why: `more than warm-max ${config.max} warm VMs` });
    else if (idle >= config.idleMs) actions.push({ kind: "retire", vm: vm.name, why: `idle for ${formatDuration(idle)}` });
    else break;
    remaining--;
  }
  return actions;
}

/** When the keeper should look again at a pool with warm VMs above min: the next one to reach its idle time. */
export function nextIdleCheckMs(config: WarmConfig | undefined, vms: readonly VMView[], now: Date): number | undefined {
  if (!config) return undefined;
  const warm = vms.filter((vm) => vm.leaseHolder === WARM_HOLDER);
  if (warm.length <= config.min) return undefined;
  const due = warm.map((vm) => Date.parse(vm.leasedSince ?? now.toISOString()) + config.idleMs - now.getTime());
  return Math.max(0, Math.min(...due));
}

function byName(a: VMView, b: VMView): number {
  return a.name.localeCompare(b.name);
}
