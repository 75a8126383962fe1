import type { Logger } from "pino";
import type { Kube } from "../kube/client.js";
import { describeApiError } from "../kube/errors.js";
import { deleteVMI, setRunning } from "../kubevirt/client.js";
import { strayScratchStep } from "../kubevirt/scratch.js";
import { VirtualMachineSchema } from "../kubevirt/vm.js";
import { readRunState } from "../tekton/run-state.js";
import { CustomRunSchema, isFinished } from "../tekton/customrun.js";
import { readVMLease, releaseVMLease } from "../lease/leases.js";
import { orphanedLeases, type HeldLease, type RunSummary } from "./sweep.js";
import type { Metrics } from "../metrics/metrics.js";
import { cachedVM, type Caches } from "../cache/caches.js";

// The safety net behind every run: VMs whose lease no live, unfinished run stands behind (the run was deleted
// while the controller was down and its finalizer forced off, a crash between two writes, ...) are scratched and
// their leases released. Runs at start and periodically on the leader.

export interface SweepResult {
  orphans: number;
  released: number;
}

export async function sweep(
  kube: Kube,
  caches: Caches,
  log: Logger,
  metrics: Pick<Metrics, "leakedVMs">,
): Promise<SweepResult> {
  const leases: HeldLease[] = caches.leases.list().flatMap((raw) => {
    const lease = readVMLease(raw);
    return lease?.vm ? [{ namespace: lease.namespace, pool: lease.pool ?? "", vm: lease.vm, holder: lease.holder }] : [];
  });
  const orphans = orphanedLeases(leases, (namespace, name) => summarize(caches.runs.get(name, namespace)));
  let released = 0;
  for (const { lease, why } of orphans) {
    try {
      if (await scratch(kube, caches, lease)) {
        await releaseVMLease(kube.coordination, lease, lease.holder);
        released += 1;
        metrics.leakedVMs(`${lease.namespace}/${lease.pool}`, 1);
        log.warn({ vm: `${lease.namespace}/${lease.vm}`, holder: lease.holder, why }, "sweeper scratched a leaked VM");
      } else {
        log.info({ vm: `${lease.namespace}/${lease.vm}`, why }, "sweeper is scratching a leaked VM");
      }
    } catch (err) {
      log.warn({ vm: `${lease.namespace}/${lease.vm}`, err: describeApiError(err) }, "sweeper could not scratch VM");
    }
  }
  return { orphans: orphans.length, released };
}

/** Takes the VM's next scratch step; true once it is gone and the lease may go. */
async function scratch(kube: Kube, caches: Caches, lease: HeldLease): Promise<boolean> {
  const step = strayScratchStep(cachedVM(caches, lease.namespace, lease.vm), new Date());
  if (step === "stop") await setRunning(kube, VirtualMachineSchema.parse(caches.vms.get(lease.vm, lease.namespace)), false);
  else if (step === "deleteVMI") await deleteVMI(kube, lease.namespace, lease.vm);
  return step === "gone";
}

function summarize(raw: unknown): RunSummary | undefined {
  const run = CustomRunSchema.safeParse(raw);
  if (!run.success) return undefined;
  return {
    uid: run.data.metadata.uid,
    attempt: readRunState(run.data.status?.extraFields)?.attempt ?? 0,
    finished: isFinished(run.data.status),
  };
}
