import type { Logger } from "pino";
import type { Kube } from "../kube/client.js";
import { deleteVMI, setRunning } from "../kubevirt/client.js";
import { splitPoolKey } from "../kubevirt/pool-key.js";
import { VirtualMachineSchema } from "../kubevirt/vm.js";
import { acquireVMLease, LeaseTakenError, releaseVMLease, swapLeaseHolder } from "../lease/leases.js";
import type { Expectations } from "../cache/expectations.js";
import { leaseName } from "../lease/holder.js";
import {
  keeperActions,
  nextIdleCheckMs,
  readWarmConfig,
  RETIRING_HOLDER,
  WARM_HOLDER,
  type KeeperAction,
} from "./warm.js";
import { poolVMs, type Caches } from "../cache/caches.js";

// The imperative side of warm pools: one pass over one pool (NAMESPACE/NAME) carries out keeperActions().

export interface KeeperDeps {
  kube: Kube;
  caches: Caches;
  /** The keeper's own Lease and VM writes, shown to the runs' decisions before the informers have them. */
  expectations: Expectations;
  log: Logger;
  now: () => Date;
  /** Problems already reported per pool, so a bad annotation is logged once, not on every pass. */
  reported: Map<string, string>;
}

export async function keepWarm(deps: KeeperDeps, key: string): Promise<{ requeueAfterMs?: number }> {
  const { namespace, name } = splitPoolKey(key);
  const pool = deps.caches.pools.get(name, namespace);
  if (!pool) return {};
  const { config, problem } = readWarmConfig(pool.metadata?.annotations);
  if (problem && deps.reported.get(key) !== problem) {
    deps.log.warn({ pool: key, problem }, "pool's warm settings ignored");
    deps.reported.set(key, problem);
  }
  const vms = poolVMs(deps.caches, namespace, name);
  const waiting = deps.caches.queue(key).reduce((sum, w) => sum + w.demand, 0);
  const now = deps.now();
  for (const action of keeperActions(config, vms, waiting, now)) {
    try {
      await carryOut(deps, namespace, name, action, now);
    } catch (err) {
      // Another party moved first (a run took the VM): the next pass sees the new state.
      if (err instanceof LeaseTakenError) return { requeueAfterMs: 100 };
      throw err;
    }
  }
  const next = nextIdleCheckMs(config, vms, now);
  return next !== undefined ? { requeueAfterMs: next + 100 } : {};
}

async function carryOut(deps: KeeperDeps, namespace: string, pool: string, action: KeeperAction, now: Date): Promise<void> {
  const { kube } = deps;
  const log = deps.log.child({ pool: `${namespace}/${pool}`, vm: action.vm });
  // Shown as written until the informer has it, as for the runs' starts and stops.
  const setVM = async (running: boolean) =>
    deps.expectations.wroteVM(await setRunning(kube, VirtualMachineSchema.parse(deps.caches.vms.get(action.vm, namespace)), running));
  switch (action.kind) {
    case "claim":
      deps.expectations.wrote(await acquireVMLease(kube.coordination, { namespace, pool, vm: action.vm }, WARM_HOLDER, now));
      await setVM(true);
      log.info("warming VM");
      return;
    case "start":
      await setVM(true);
      log.info("booting warm VM afresh");
      return;
    case "retire":
      deps.expectations.wrote(await swapLeaseHolder(kube.coordination, { namespace, vm: action.vm }, WARM_HOLDER, RETIRING_HOLDER, now));
      log.info({ why: action.why }, "retiring warm VM");
      return;
    case "stop":
      await setVM(false);
      return;
    case "deleteVMI":
      await deleteVMI(kube, namespace, action.vm);
      return;
    case "release": {
      const gone = await releaseVMLease(kube.coordination, { namespace, vm: action.vm }, RETIRING_HOLDER);
      deps.expectations.deletedLease(namespace, leaseName(action.vm), gone);
      log.info("warm VM retired");
      return;
    }
  }
}
