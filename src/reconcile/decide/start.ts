import type { BuildSettings } from "../../api/settings.js";
import type { JobRef, JobView } from "../../jobs/jobs.js";
import type { VMView } from "../../kubevirt/vm.js";
import type { RunState } from "../../tekton/run-state.js";
import { elapsed, failure, progress } from "../../tekton/status.js";
import { formatDuration } from "../../timing/duration.js";
import { heldVM, seenVM, type Action, type Ctx, type Next } from "./phase.js";

// Starting: the VMs are leased and boot while the job fetches the source; once every VM has an address the job is
// told where each answers (and opens its sessions), once every one is Ready it is told so, and the run builds once
// podman answers.

export function starting(ctx: Ctx, state: RunState, settings: BuildSettings): Next<"building" | "beginScratch"> {
  const { obs } = ctx;
  const slotVMs = state.slots.map((_, i) => heldVM(ctx, state, i));
  if (slotVMs.some((name) => !name)) {
    // Another run holds a VM our status names: we may not touch it any more; give back the rest and queue again.
    const lost = state.slots.filter((_, i) => !slotVMs[i]).map((slot) => slot.vm ?? "?");
    return {
      to: "beginScratch",
      state,
      outcome: {
        condition: progress(ctx, "WaitingForVM", `VM ${lost.join(", ")} was leased by another run; queueing again.`),
        results: [],
        next: "requeue",
      },
    };
  }
  const names = slotVMs as string[];
  const vms = names.map((name, i) => seenVM(obs, state.slots[i]?.pool ?? "", name));
  const waited = elapsed(obs.now, state.phaseSince);
  const job = ctx.held.job;
  // podman not answering is what readyTimeout bounds; a job that failed here failed for another reason
  // (the run's credentials, say) and ends the run like any build failure.
  if (job?.state === "failed") return { to: "beginScratch", state, outcome: { ...failure(job.reason, job.message), results: job.results } };
  const deleted = names.filter((_, i) => !vms[i]);
  if (deleted.length > 0) {
    // Deleted under the run (by hand, a scale-down): not a VM that failed to get ready, so not one tried. Scratch
    // what is left of it and queue again, for any VM of the pool (a new one of the same name too).
    return {
      to: "beginScratch",
      state,
      outcome: {
        condition: progress(ctx, "WaitingForVM", `VM ${deleted.join(", ")} was deleted while starting; queueing again.`),
        results: [],
        next: "requeue",
      },
    };
  }
  // readyTimeout bounds the VMs, not a source fetch that outlasts their boot.
  const fetching = job?.state === "running" && job.stage === "fetching";
  const allReady = vms.every((vm) => vm?.vmi?.ready);
  if (waited >= settings.readyTimeout && !(allReady && fetching)) {
    const unready = names.filter((_, i) => !vms[i]?.vmi?.ready);
    const blamed = (unready.length > 0 ? unready : names).map((name) => ({
      vm: name,
      lastSeen: describeVM(vms[names.indexOf(name)] as VMView, job),
    }));
    const tried = [...state.tried, ...blamed];
    const seen = blamed.map((b) => `${b.vm} (${b.lastSeen})`).join("; ");
    if (state.tried.length === 0) {
      return {
        to: "beginScratch",
        state: { ...state, tried },
        outcome: {
          condition: progress(
            ctx,
            "StartingVM",
            `${blamed.length > 1 ? "VMs" : "VM"} ${seen} did not get ready within ${formatDuration(settings.readyTimeout)}; trying another VM.`,
          ),
          results: [],
          next: "retryVM",
        },
      };
    }
    const all = tried.map((t) => `${t.vm} (${t.lastSeen})`).join("; ");
    return {
      to: "beginScratch",
      state: { ...state, tried },
      outcome: failure("VMNotReady", `No VM got ready within ${formatDuration(settings.readyTimeout)}: ${all}.`),
    };
  }
  if (job && !(job.state === "running" && (job.stage === "fetching" || job.stage === "connecting"))) {
    return { to: "building", state: { ...state, phase: "Building", phaseSince: ctx.nowIso }, settings };
  }
  const ready = vms as VMView[];
  const actions: Action[] = ready.flatMap((vm, i): Action[] =>
    vm.wantsRunning ? [] : [{ kind: "startVM", pool: state.slots[i]?.pool ?? "", vm: vm.name }],
  );
  const booting = `Starting ${ready.map((vm, i) => `VM ${vm.name} of pool ${state.slots[i]?.pool ?? "?"}`).join("; ")}.`;
  // Leased here for another replica: the VMs boot at once, the job is that replica's.
  if (ctx.obs.replica && state.owner !== undefined && state.owner !== ctx.obs.replica.me) {
    return { actions, state, condition: progress(ctx, "StartingVM", booting) };
  }
  const ref: JobRef = { attempt: state.attempt, vms: names };
  if (!job) {
    actions.push({
      kind: "startJob",
      job: ref,
      vms: ready.map((vm, i) => ({
        pool: state.slots[i]?.pool ?? "",
        vm: vm.name,
        platforms: state.slots[i]?.platforms.length ? (state.slots[i]?.platforms ?? []) : settings.platforms,
      })),
    });
  }
  // A VMI has its address before it is Ready (its guest still boots): the job opens its ssh sessions meanwhile.
  const addressed = ready.every((vm) => vm.vmi?.address && !vm.vmi.deleting);
  if (addressed) actions.push({ kind: "connectJob", job: ref, addresses: ready.map((vm) => vm.vmi?.address ?? ""), ready: allReady });
  const allUp = allReady && addressed;
  // One message for the whole phase: each VMI transition, the VMs' addresses and the fetch ending are in the web
  // view and the log, not in a status write of their own (each would cost a write per run).
  return {
    actions,
    state,
    condition: progress(ctx, "StartingVM", booting),
    // The job's end of fetching wakes the run; a timer past readyTimeout would spin.
    ...(allUp && fetching ? {} : { requeueAfterMs: settings.readyTimeout - waited }),
  };
}

/** What was last seen of a VM that did not get ready, for the run's message. */
function describeVM(vm: VMView, job: JobView | undefined): string {
  const vmi = vm.vmi;
  const seen = !vmi
    ? vm.wantsRunning
      ? "no VMI yet"
      : "not started"
    : `VMI ${vmi.phase || "Pending"}${vmi.ready ? ", ready" : ", not ready"}${vmi.address ? ` at ${vmi.address}` : ""}`;
  return job?.state === "failed" ? `${seen}; ${job.message}` : seen;
}
