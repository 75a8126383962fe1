import { describe, expect, it } from "vitest";
import { decide, type Action, type Decision } from "../../../src/reconcile/decide/index.js";
import { SCRATCH_RECHECK_MS } from "../../../src/reconcile/decide/scratch.js";
import { LEASE_START_GRACE_MS, VMI_DELETE_GRACE_MS } from "../../../src/kubevirt/scratch.js";
import type { Observation, PoolObservation } from "../../../src/reconcile/observation.js";
import type { RunState } from "../../../src/tekton/run-state.js";
import { FINALIZER, type CustomRun, type RunStatus } from "../../../src/tekton/customrun.js";
import { resolveSettings } from "../../../src/api/resolve.js";
import { holderIdentity } from "../../../src/lease/holder.js";
import type { JobView } from "../../../src/jobs/jobs.js";
import type { VMView } from "../../../src/kubevirt/vm.js";

const T0 = "2026-01-01T00:00:00.000Z";
const at = (seconds: number) => new Date(Date.parse(T0) + seconds * 1000);
const iso = (seconds: number) => at(seconds).toISOString();

const resolved = resolveSettings(
  { pool: "builders", image: "registry.test/app:1", gitUrl: "https://git.test/app.git" },
  [{ name: "platforms", value: "linux/amd64,linux/arm64" }, { name: "readyTimeout", value: "60s" }],
);
if (!resolved.ok) throw new Error(resolved.message);
const settings = resolved.settings;

const RUN_ID = { namespace: "team-a", name: "build-1", uid: "uid-1" };
const ME = holderIdentity(RUN_ID, 0);

function run(overrides: { status?: RunStatus; spec?: Partial<CustomRun["spec"]>; deleting?: boolean; finalizer?: boolean } = {}): CustomRun {
  return {
    metadata: {
      ...RUN_ID,
      generation: 1,
      finalizers: overrides.finalizer === false ? [] : [FINALIZER],
      ...(overrides.deleting ? { deletionTimestamp: T0 } : {}),
    },
    spec: {
      customRef: { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild" },
      params: [],
      ...overrides.spec,
    },
    ...(overrides.status ? { status: overrides.status } : {}),
  };
}

const POOL = "team-a/builders";
const CONTROLLER_URL = "http://vmbuild.test:8080";

/** A one-VM run's state; `vm` is the VM its slot names. */
function state(phase: RunState["phase"], extra: Partial<Omit<RunState, "slots">> & { vm?: string } = {}): RunState {
  const { vm, ...rest } = extra;
  const slot = { platforms: settings.platforms, pool: POOL, ...(vm ? { vm } : {}) };
  return { phase, attempt: 0, slots: [slot], queuedAt: T0, phaseSince: T0, tried: [], ...rest };
}

/** A run scratching builders-0 on its way to `outcome`. */
function scratchingOn(
  reason: string,
  condStatus: "True" | "False" | "Unknown" = "False",
  extra: { results?: { name: string; value: string }[]; next?: "finish" | "retryVM"; tried?: RunState["tried"] } = {},
): RunState {
  return state("Scratching", {
    vm: "builders-0",
    ...(extra.tried ? { tried: extra.tried } : {}),
    outcome: {
      condition: { type: "Succeeded", status: condStatus, reason, message: reason === "Succeeded" ? "ok" : "boom" },
      results: extra.results ?? [],
      next: extra.next ?? "finish",
    },
  });
}

function status(st: RunState, reason = "Started"): RunStatus {
  return {
    startTime: T0,
    conditions: [{ type: "Succeeded", status: "Unknown", reason, message: "", lastTransitionTime: T0 }],
    extraFields: st,
  };
}

function finished(st: RunState): RunStatus {
  return {
    startTime: T0,
    completionTime: T0,
    conditions: [{ type: "Succeeded", status: "True", reason: "Succeeded", message: "ok", lastTransitionTime: T0 }],
    extraFields: st,
  };
}

const stopped = (name: string, leaseHolder?: string): VMView => ({
  name,
  wantsRunning: false,
  ...(leaseHolder ? { leaseHolder } : {}),
});
const booting = (name: string): VMView => ({
  name,
  wantsRunning: true,
  vmi: { phase: "Scheduling", ready: false, deleting: false },
  leaseHolder: ME,
});
const ready = (name: string): VMView => ({
  name,
  wantsRunning: true,
  vmi: { phase: "Running", ready: true, address: "127.0.0.10", deleting: false },
  leaseHolder: ME,
});
const halted = (name: string): VMView => ({ name, wantsRunning: false, leaseHolder: ME });
/** Running with the pod network's address, its readiness probe not passed yet (the guest still boots). */
const addressed = (name: string): VMView => ({
  name,
  wantsRunning: true,
  vmi: { phase: "Running", ready: false, address: "127.0.0.10", deleting: false },
  leaseHolder: ME,
});

interface ObservationExtra extends Partial<Omit<Observation, "held" | "extraLeases" | "demandAhead" | "pools">> {
  /** The VM whose lease the run's one slot holds. */
  heldLease?: string;
  /** Runs ahead in the pool's queue, each needing one VM. */
  queueAhead?: number;
  extraLeases?: string[];
  pool?: PoolObservation;
}

/** What a one-VM run observes of the pool team-a/builders. */
function observe(seconds: number, vms: VMView[], extra: ObservationExtra = {}): Observation {
  const { heldLease, queueAhead, extraLeases, pool, ...rest } = extra;
  const found: PoolObservation = pool ?? { found: true, namespace: "team-a", name: "builders", vms };
  return {
    now: at(seconds),
    publicURL: CONTROLLER_URL,
    settings: { ok: true, settings, inputs: { params: [] } },
    plan: found.found
      ? { ok: true, slots: [{ platforms: settings.platforms, pool: POOL }] }
      : { ok: false, reason: found.reason, message: found.message },
    pools: { [POOL]: found },
    held: [heldLease],
    demandAhead: { [POOL]: queueAhead ?? 0 },
    ...(extraLeases ? { extraLeases: extraLeases.map((vm) => ({ pool: POOL, vm })) } : {}),
    ...rest,
  };
}

const building: JobView = { state: "running", stage: "building", detail: "[linux/arm64] STEP 2/3: RUN uname -m" };
const connecting: JobView = { state: "running", stage: "connecting", detail: "" };
const fetching: JobView = { state: "running", stage: "fetching", detail: "Fetching http://git.test/app.git main" };
const succeeded: JobView = {
  state: "succeeded",
  results: [{ name: "IMAGE_DIGEST", value: "sha256:abc" }],
  summary: "Built and pushed registry.test/app:1",
};
const buildFailed: JobView = { state: "failed", stage: "building", reason: "BuildFailed", message: "RUN false: exit 1", results: [] };

function kinds(d: Decision): string[] {
  return d.actions.map((a: Action) =>
    "vm" in a ? `${a.kind}:${a.vm}` : "vms" in a ? `${a.kind}:${a.vms.map((v) => v.vm).join("+")}` : a.kind,
  );
}
const cond = (d: Decision) => d.status?.conditions?.[0];
const phase = (d: Decision) => (d.status?.extraFields as RunState | undefined)?.phase;

interface Row {
  name: string;
  run: CustomRun;
  obs: Observation;
  actions: string[];
  reason: string;
  status?: "True" | "False" | "Unknown";
  phase?: string;
  removeFinalizer?: boolean;
  message?: RegExp;
}

const rows: Row[] = [
  // New runs
  {
    name: "new run with a free VM: finalizer, lease, start, and the job (its fetch overlaps the boot), in one go",
    run: run({ finalizer: false }),
    obs: observe(0, [stopped("builders-0")]),
    actions: ["addFinalizer", "acquireLease:builders-0", "startVM:builders-0", "startJob:builders-0"],
    reason: "StartingVM",
    phase: "Starting",
  },
  {
    name: "new run, pool full, first in the queue: the same message as behind others (no status write as the queue moves)",
    run: run(),
    obs: observe(0, [stopped("builders-0", "team-b/x/uid-9/0"), stopped("builders-1", "team-b/y/uid-8/0")]),
    actions: [],
    reason: "WaitingForVM",
    phase: "Queued",
    message: /^Waiting for a free VM of pool team-a\/builders\.$/,
  },
  {
    name: "new run, pool full, runs ahead: a message that stays put as the queue moves (no position)",
    run: run(),
    obs: observe(0, [stopped("builders-0", "team-b/x/uid-9/0"), stopped("builders-1", "team-b/y/uid-8/0")], { queueAhead: 1 }),
    actions: [],
    reason: "WaitingForVM",
    phase: "Queued",
    message: /^Waiting for a free VM of pool team-a\/builders\.$/,
  },
  {
    name: "new run, second in line takes the second free VM",
    run: run(),
    obs: observe(0, [stopped("builders-0"), stopped("builders-1")], { queueAhead: 1 }),
    actions: ["acquireLease:builders-1", "startVM:builders-1", "startJob:builders-1"],
    reason: "StartingVM",
  },
  {
    name: "new run with invalid params fails at once",
    run: run({ finalizer: false }),
    obs: { ...observe(0, []), settings: { ok: false, reason: "InvalidParams", message: 'param "x": unknown' } },
    actions: [],
    reason: "InvalidParams",
    status: "False",
    message: /param "x"/,
  },
  {
    name: "new run with a missing VMBuild waits a moment for it (caches may lag)",
    run: run({ finalizer: false }),
    obs: { ...observe(0, []), settings: { ok: false, reason: "VMBuildNotFound", message: "no VMBuild" } },
    actions: [],
    reason: "Started",
    status: "Unknown",
    message: /no VMBuild Waiting for it to appear/,
  },
  {
    name: "a VMBuild still missing after the grace period fails the run",
    run: run({ finalizer: false, status: { startTime: T0 } }),
    obs: { ...observe(11, []), settings: { ok: false, reason: "VMBuildNotFound", message: "no VMBuild" } },
    actions: [],
    reason: "VMBuildNotFound",
    status: "False",
  },
  {
    name: "new run with a missing pool fails after the grace period",
    run: run({ finalizer: false, status: { startTime: T0 } }),
    obs: observe(11, [], { pool: { found: false, reason: "PoolNotFound", message: "no pool team-a/builders" } }),
    actions: [],
    reason: "PoolNotFound",
    status: "False",
  },
  {
    name: "cancelled before it started: cancelled, nothing started",
    run: run({ finalizer: false, spec: { status: "RunCancelled", statusMessage: "PipelineRun cancelled" } }),
    obs: observe(0, [stopped("builders-0")]),
    actions: [],
    reason: "CustomRunCancelled",
    status: "False",
    message: /^PipelineRun cancelled$/,
  },
  // Queued
  {
    name: "queued past queueTimeout fails",
    run: run({ status: status(state("Queued"), "WaitingForVM") }),
    obs: observe(1801, [stopped("builders-0", "other/x/u/0")]),
    actions: [],
    reason: "QueueTimeout",
    status: "False",
    removeFinalizer: true,
  },
  {
    name: "queued, lease already ours (status write was lost): goes on starting",
    run: run({ status: status(state("Queued"), "WaitingForVM") }),
    obs: observe(5, [halted("builders-0")], { heldLease: "builders-0" }),
    actions: ["startVM:builders-0", "startJob:builders-0"],
    reason: "StartingVM",
  },
  // Starting
  {
    name: "starting, VMI ready, the job fetching: the job is told where the VM answers; the message stays (no write)",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(5, [ready("builders-0")], { heldLease: "builders-0", job: fetching }),
    actions: ["connectJob"],
    reason: "StartingVM",
    message: /^Starting VM builders-0 of pool team-a\/builders\.$/,
  },
  {
    name: "starting, VMI not ready yet, the job fetching: one message while the VM boots, whatever its VMI's phase",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(5, [booting("builders-0")], { heldLease: "builders-0", job: fetching }),
    actions: [],
    reason: "StartingVM",
    message: /^Starting VM builders-0 of pool team-a\/builders\.$/,
  },
  {
    name: "starting, VMI addressed but not Ready: the job is told where the VM answers, to open its session meanwhile",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(5, [addressed("builders-0")], { heldLease: "builders-0", job: fetching }),
    actions: ["connectJob"],
    reason: "StartingVM",
    message: /^Starting VM builders-0 of pool team-a\/builders\.$/,
  },
  {
    name: "starting, VMI addressed (the job connecting) but not Ready past readyTimeout: scratch it, try another VM",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(61, [addressed("builders-0"), stopped("builders-1")], { heldLease: "builders-0", job: connecting }),
    actions: ["cancelJob", "stopVM:builders-0"],
    reason: "Scratching",
    phase: "Scratching",
    message: /builders-0 \(VMI Running, not ready at 127\.0\.0\.10\) did not get ready within 1m0s.*trying another VM/,
  },
  {
    name: "starting, VM up long ago but the fetch still going: not a VM that failed to get ready",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(120, [ready("builders-0"), stopped("builders-1")], { heldLease: "builders-0", job: fetching }),
    actions: ["connectJob"],
    reason: "StartingVM",
    phase: "Starting",
    message: /^Starting VM builders-0 of pool team-a\/builders\.$/,
  },
  {
    name: "starting, the job failed before the build (the run's credentials): the run fails, no other VM is tried",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(5, [ready("builders-0"), stopped("builders-1")], {
      heldLease: "builders-0",
      job: { state: "failed", stage: "connecting", reason: "InvalidSecret", message: "ServiceAccount x/default not found", results: [] },
    }),
    actions: ["stopVM:builders-0"],
    reason: "Scratching",
    message: /InvalidSecret.*ServiceAccount x\/default not found/,
  },
  {
    name: "starting, job waits for podman",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(5, [ready("builders-0")], { heldLease: "builders-0", job: connecting }),
    actions: ["connectJob"],
    reason: "StartingVM",
    message: /^Starting VM builders-0 of pool team-a\/builders\.$/,
  },
  {
    name: "starting, podman answered: building",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(5, [ready("builders-0")], { heldLease: "builders-0", job: building }),
    actions: [],
    reason: "Building",
    phase: "Building",
    message: /\[linux\/arm64\] STEP 2\/3/,
  },
  {
    name: "starting, not ready in time: scratch it and try another VM",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(61, [booting("builders-0"), stopped("builders-1")], { heldLease: "builders-0" }),
    actions: ["stopVM:builders-0"],
    reason: "Scratching",
    phase: "Scratching",
    message: /did not get ready within 1m0s.*trying another VM/,
  },
  {
    name: "not-ready VM scratched: lease released and the next free VM leased",
    run: run({
      status: status(
        state("Scratching", {
          vm: "builders-0",
          tried: [{ vm: "builders-0", lastSeen: "VMI Scheduling, not ready" }],
          outcome: {
            condition: { type: "Succeeded", status: "Unknown", reason: "StartingVM", message: "trying another" },
            results: [],
            next: "retryVM",
          },
        }),
        "StartingVM",
      ),
    }),
    obs: observe(62, [halted("builders-0"), stopped("builders-1")], { heldLease: "builders-0" }),
    actions: ["releaseLease:builders-0", "acquireLease:builders-1", "startVM:builders-1", "startJob:builders-1"],
    reason: "StartingVM",
    phase: "Starting",
  },
  {
    name: "second VM not ready either: fails naming both",
    run: run({
      status: status(
        state("Starting", { vm: "builders-1", tried: [{ vm: "builders-0", lastSeen: "VMI Scheduling, not ready" }] }),
        "StartingVM",
      ),
    }),
    obs: observe(200, [stopped("builders-0"), booting("builders-1")], { heldLease: "builders-1" }),
    actions: ["stopVM:builders-1"],
    reason: "Scratching",
    phase: "Scratching",
  },
  {
    name: "starting, our new lease not in the cache yet: the status's VM is still ours",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(1, [stopped("builders-0"), stopped("builders-1")]),
    actions: ["startVM:builders-0", "startJob:builders-0"],
    reason: "StartingVM",
    phase: "Starting",
  },
  {
    name: "lease lost while starting: back to the queue, the VM is not touched",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(5, [stopped("builders-0", "team-b/y/uid-2/0")]),
    actions: [],
    reason: "WaitingForVM",
    phase: "Queued",
  },
  {
    name: "VM deleted while starting (by hand, a scale-down): queue again, for any VM, without counting it as tried",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(5, [stopped("builders-1")], {
      heldLease: "builders-0",
      unpooled: { "team-a/builders-0": { name: "builders-0", wantsRunning: false, leaseHolder: ME } },
    }),
    actions: ["releaseLease:builders-0", "acquireLease:builders-1", "startVM:builders-1", "startJob:builders-1"],
    reason: "StartingVM",
    phase: "Starting",
  },
  {
    name: "VM deleted while starting, its instance still there: KubeVirt is left to delete it, the lease kept",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(5, [stopped("builders-1")], {
      heldLease: "builders-0",
      unpooled: {
        "team-a/builders-0": { ...halted("builders-0"), vmi: { phase: "Scheduling", ready: false, deleting: false } },
      },
    }),
    actions: [],
    reason: "Scratching",
    phase: "Scratching",
    message: /VM builders-0 was deleted while starting; queueing again/,
  },
  {
    name: "one attempt holding two VMs (two replicas raced): the one not in the status is stopped",
    run: run({ status: status(state("Starting", { vm: "builders-1" }), "StartingVM") }),
    obs: observe(5, [ready("builders-0"), ready("builders-1")], { heldLease: "builders-1", extraLeases: ["builders-0"] }),
    actions: ["stopVM:builders-0", "startJob:builders-1", "connectJob"],
    reason: "StartingVM",
  },
  {
    name: "…and once it is stopped and its instance gone, its lease is released",
    run: run({ status: status(state("Starting", { vm: "builders-1" }), "StartingVM") }),
    obs: observe(6, [halted("builders-0"), ready("builders-1")], { heldLease: "builders-1", extraLeases: ["builders-0"] }),
    actions: ["releaseLease:builders-0", "startJob:builders-1", "connectJob"],
    reason: "StartingVM",
  },
  // Building
  {
    name: "building: progress line in the message",
    run: run({ status: status(state("Building", { vm: "builders-0" }), "Building") }),
    obs: observe(9, [ready("builders-0")], { heldLease: "builders-0", job: building }),
    actions: [],
    reason: "Building",
    message: /STEP 2\/3/,
  },
  {
    name: "pushing",
    run: run({ status: status(state("Building", { vm: "builders-0" }), "Building") }),
    obs: observe(9, [ready("builders-0")], {
      heldLease: "builders-0",
      job: { state: "running", stage: "pushing", detail: "Pushing registry.test/app:1" },
    }),
    actions: [],
    reason: "Pushing",
  },
  {
    name: "build succeeded: scratch before reporting",
    run: run({ status: status(state("Building", { vm: "builders-0" }), "Building") }),
    obs: observe(9, [ready("builders-0")], { heldLease: "builders-0", job: succeeded }),
    actions: ["stopVM:builders-0"],
    reason: "Scratching",
    phase: "Scratching",
  },
  {
    name: "build failed: scratch",
    run: run({ status: status(state("Building", { vm: "builders-0" }), "Building") }),
    obs: observe(9, [ready("builders-0")], { heldLease: "builders-0", job: buildFailed }),
    actions: ["stopVM:builders-0"],
    reason: "Scratching",
    message: /BuildFailed/,
  },
  {
    name: "build failed as its VM's instance went away: the message says so before the closed connection",
    run: run({ status: status(state("Building", { vm: "builders-0" }), "Building") }),
    obs: observe(9, [{ name: "builders-0", wantsRunning: true, leaseHolder: ME }], { heldLease: "builders-0", job: buildFailed }),
    actions: ["stopVM:builders-0"],
    reason: "Scratching",
    message: /\(BuildFailed\): VM builders-0's instance was deleted during the build: RUN false: exit 1$/,
  },
  {
    name: "build failed as its VM was deleted: nothing left to scratch, and the message says so",
    run: run({ status: status(state("Building", { vm: "builders-0" }), "Building") }),
    obs: observe(9, [], { heldLease: "builders-0", job: buildFailed }),
    actions: ["releaseLease:builders-0"],
    reason: "BuildFailed",
    status: "False",
    message: /^VM builders-0 was deleted during the build: RUN false: exit 1$/,
    removeFinalizer: true,
  },
  {
    name: "push cut off as its VM's instance failed: the message says so",
    run: run({ status: status(state("Building", { vm: "builders-0" }), "Pushing") }),
    obs: observe(9, [{ ...ready("builders-0"), vmi: { phase: "Failed", ready: false, deleting: false } }], {
      heldLease: "builders-0",
      job: { state: "failed", stage: "pushing", reason: "PushFailed", message: "socket closed", results: [] },
    }),
    actions: ["stopVM:builders-0"],
    reason: "Scratching",
    message: /\(PushFailed\): VM builders-0's instance failed during the push: socket closed$/,
  },
  {
    name: "build failed, its VM still up: the job's message alone",
    run: run({ status: status(state("Building", { vm: "builders-0" }), "Building") }),
    obs: observe(9, [ready("builders-0")], { heldLease: "builders-0", job: buildFailed }),
    actions: ["stopVM:builders-0"],
    reason: "Scratching",
    message: /\(BuildFailed\): RUN false: exit 1$/,
  },
  {
    name: "push failed: scratch",
    run: run({ status: status(state("Building", { vm: "builders-0" }), "Pushing") }),
    obs: observe(9, [ready("builders-0")], {
      heldLease: "builders-0",
      job: { state: "failed", stage: "pushing", reason: "PushFailed", message: "unauthorized", results: [] },
    }),
    actions: ["stopVM:builders-0"],
    reason: "Scratching",
    message: /PushFailed/,
  },
  {
    name: "controller restarted mid-build (no job): scratch, and run the attempt again (Recovering)",
    run: run({ status: status(state("Building", { vm: "builders-0" }), "Building") }),
    obs: observe(9, [ready("builders-0")], { heldLease: "builders-0" }),
    actions: ["stopVM:builders-0"],
    reason: "Scratching",
    message: /\(Recovering\).*re-run 1 of 2/,
  },
  {
    name: "controller restarted mid-build a third time: scratch, ControllerRestarted",
    run: run({ status: status(state("Building", { vm: "builders-0", recoveries: 2 }), "Building") }),
    obs: observe(9, [ready("builders-0")], { heldLease: "builders-0" }),
    actions: ["stopVM:builders-0"],
    reason: "Scratching",
    message: /\(ControllerRestarted\).*already run again 2 times/,
  },
  {
    name: "controller restarted while starting: the job is simply started again",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(9, [ready("builders-0")], { heldLease: "builders-0" }),
    actions: ["startJob:builders-0", "connectJob"],
    reason: "StartingVM",
  },
  // Cancel, timeout, deletion in each phase
  ...(["Queued", "Starting", "Building"] as const).flatMap((p): Row[] => {
    const holds = p !== "Queued";
    const vms = holds ? [ready("builders-0")] : [stopped("builders-0", "x/y/z/0")];
    const extra = holds ? { heldLease: "builders-0", job: p === "Building" ? building : undefined } : {};
    const scratchActions = holds
      ? [...(p === "Building" ? ["cancelJob"] : []), "stopVM:builders-0"]
      : [];
    const st = status(state(p, holds ? { vm: "builders-0" } : {}));
    return [
      {
        name: `cancel while ${p}`,
        run: run({ status: st, spec: { status: "RunCancelled", statusMessage: "cancelled by user" } }),
        obs: observe(10, vms, extra),
        actions: scratchActions,
        reason: holds ? "Scratching" : "CustomRunCancelled",
        status: holds ? "Unknown" : "False",
        removeFinalizer: !holds,
      },
      {
        name: `timeout while ${p}`,
        run: run({ status: st, spec: { timeout: "5m" } }),
        obs: observe(301, vms, extra),
        actions: scratchActions,
        reason: holds ? "Scratching" : "CustomRunTimedOut",
        status: holds ? "Unknown" : "False",
        removeFinalizer: !holds,
      },
      {
        name: `deletion while ${p}`,
        run: run({ status: st, deleting: true }),
        obs: observe(10, vms, extra),
        actions: scratchActions,
        reason: holds ? "Scratching" : "CustomRunCancelled",
        removeFinalizer: !holds,
      },
    ];
  }),
  {
    name: "cancel while queued, a lease of its own found on a VM not started yet, leased just now: scratching waits for its start",
    run: run({ status: status(state("Queued")), spec: { status: "RunCancelled" } }),
    obs: observe(10, [{ ...halted("builders-0"), leasedSince: iso(9) }], { heldLease: "builders-0" }),
    actions: [],
    reason: "Scratching",
  },
  {
    name: "…and once the lease is older than the grace, it is released and the run ends",
    run: run({ status: status(state("Queued")), spec: { status: "RunCancelled" } }),
    obs: observe(15, [{ ...halted("builders-0"), leasedSince: iso(9) }], { heldLease: "builders-0" }),
    actions: ["releaseLease:builders-0"],
    reason: "CustomRunCancelled",
    status: "False",
    removeFinalizer: true,
  },
  // Scratching
  {
    name: "scratching: VM seen stopped, its instance still there past the grace KubeVirt gets: delete it with grace 0",
    run: run({
      status: status(
        scratchingOn("Succeeded", "True"),
        "Scratching",
      ),
    }),
    obs: observe(10, [{ ...halted("builders-0"), vmi: { phase: "Running", ready: true, deleting: false } }], {
      heldLease: "builders-0",
    }),
    actions: ["deleteVMI:builders-0"],
    reason: "Scratching",
  },
  {
    name: "scratching: VMI still terminating, wait",
    run: run({
      status: status(
        scratchingOn("Succeeded", "True"),
        "Scratching",
      ),
    }),
    obs: observe(10, [{ ...halted("builders-0"), vmi: { phase: "Running", ready: true, deleting: true } }], {
      heldLease: "builders-0",
    }),
    actions: [],
    reason: "Scratching",
  },
  {
    name: "scratched: release the lease, write the outcome with results, drop the finalizer",
    run: run({
      status: status(
        state("Scratching", {
          vm: "builders-0",
          outcome: {
            condition: { type: "Succeeded", status: "True", reason: "Succeeded", message: "ok" },
            results: [{ name: "IMAGE_DIGEST", value: "sha256:abc" }],
            next: "finish",
          },
        }),
        "Scratching",
      ),
    }),
    obs: observe(11, [halted("builders-0")], { heldLease: "builders-0" }),
    actions: ["releaseLease:builders-0"],
    reason: "Succeeded",
    status: "True",
    phase: "Done",
    removeFinalizer: true,
  },
  {
    name: "scratched, its Lease seen gone (deleted by hand): nothing to release, the outcome written",
    run: run({ status: status(scratchingOn("BuildFailed", "False"), "Scratching") }),
    obs: observe(11, [stopped("builders-0")]),
    actions: [],
    reason: "BuildFailed",
    status: "False",
    phase: "Done",
    removeFinalizer: true,
  },
  {
    name: "scratching continues even if the run is cancelled meanwhile",
    run: run({
      spec: { status: "RunCancelled" },
      status: status(
        scratchingOn("BuildFailed", "False"),
        "Scratching",
      ),
    }),
    obs: observe(11, [halted("builders-0")], { heldLease: "builders-0" }),
    actions: ["releaseLease:builders-0"],
    reason: "BuildFailed",
    status: "False",
    removeFinalizer: true,
  },
  // The pool deleted under a run: its VMs are still seen by name (unpooled) until they are gone
  {
    name: "pool deleted mid-build: the job cancelled and the VM, still seen by name, stopped",
    run: run({ status: status(state("Building", { vm: "builders-0" }), "Building") }),
    obs: observe(9, [], {
      pool: { found: false, reason: "PoolNotFound", message: "VirtualMachinePool team-a/builders not found." },
      heldLease: "builders-0",
      job: building,
      unpooled: { "team-a/builders-0": ready("builders-0") },
    }),
    actions: ["cancelJob", "stopVM:builders-0"],
    reason: "Scratching",
    phase: "Scratching",
    message: /PoolNotFound/,
  },
  {
    name: "pool deleted while scratching, its instance still going away: wait for it",
    run: run({ status: status(scratchingOn("CustomRunCancelled", "False"), "Scratching") }),
    obs: observe(12, [], {
      pool: { found: false, reason: "PoolNotFound", message: "VirtualMachinePool team-a/builders not found." },
      heldLease: "builders-0",
      unpooled: { "team-a/builders-0": { ...halted("builders-0"), vmi: { phase: "Running", ready: true, deleting: true } } },
    }),
    actions: [],
    reason: "Scratching",
  },
  {
    name: "pool deleted while scratching, nothing of the VM seen: the run lets go of its lease and ends",
    run: run({ status: status(scratchingOn("CustomRunCancelled", "False"), "Scratching") }),
    obs: observe(12, [], {
      pool: { found: false, reason: "PoolNotFound", message: "VirtualMachinePool team-a/builders not found." },
    }),
    actions: ["releaseLease:builders-0"],
    reason: "CustomRunCancelled",
    status: "False",
    phase: "Done",
    removeFinalizer: true,
  },
  // Finished
  {
    name: "finished run is never rewritten, even when Tekton cancels it afterwards",
    run: run({
      spec: { status: "RunCancelled" },
      status: { startTime: T0, conditions: [{ type: "Succeeded", status: "True", reason: "Succeeded" }] },
    }),
    obs: observe(100, []),
    actions: [],
    reason: "none",
    removeFinalizer: true,
  },
  {
    name: "finished run still holding a VM its status does not name (a replica behind leased it): stopped, finalizer kept",
    run: run({ status: finished(state("Done", { vm: "builders-0" })) }),
    obs: observe(100, [halted("builders-0"), ready("builders-1")], { extraLeases: ["builders-1"] }),
    actions: ["stopVM:builders-1"],
    reason: "none",
  },
  {
    name: "…and once its instance is gone, its lease is released",
    run: run({ status: finished(state("Done", { vm: "builders-0" })) }),
    obs: observe(101, [stopped("builders-0"), halted("builders-1")], { extraLeases: ["builders-1"] }),
    actions: ["releaseLease:builders-1"],
    reason: "none",
  },
  {
    name: "finished run, a VM leased for it just now and not started yet: waited for (its start may be on the way)",
    run: run({ status: finished(state("Done", { vm: "builders-0" })) }),
    obs: observe(100, [stopped("builders-0"), { ...halted("builders-1"), leasedSince: iso(99) }], { extraLeases: ["builders-1"] }),
    actions: [],
    reason: "none",
  },
  {
    name: "finished run that never got a VM, a lease found for its slot: the VM is scratched",
    run: run({ status: finished(state("Done")) }),
    obs: observe(100, [ready("builders-1")], { heldLease: "builders-1" }),
    actions: ["stopVM:builders-1"],
    reason: "none",
  },
  {
    name: "finished run whose named VM still shows its lease (a cache behind its own release): left alone",
    run: run({ status: finished(state("Done", { vm: "builders-0" })) }),
    obs: observe(100, [ready("builders-0")], { heldLease: "builders-0" }),
    actions: [],
    reason: "none",
    removeFinalizer: true,
  },
];

describe("decide: every phase × event", () => {
  for (const row of rows) {
    it(row.name, () => {
      const d = decide(row.run, row.obs);
      expect(kinds(d)).toEqual(row.actions);
      if (row.reason === "none") {
        expect(d.status).toBeUndefined();
      } else {
        expect(cond(d)?.reason).toBe(row.reason);
        if (row.status) expect(cond(d)?.status).toBe(row.status);
      }
      if (row.phase) expect(phase(d)).toBe(row.phase);
      if (row.message) expect(cond(d)?.message).toMatch(row.message);
      expect(d.removeFinalizer).toBe(row.removeFinalizer ?? false);
    });
  }
});

describe("decide: the job hears where its VMs answer, then that they are Ready", () => {
  const starting = () => run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") });
  const connect = (vm: VMView) =>
    decide(starting(), observe(5, [vm], { heldLease: "builders-0", job: connecting })).actions.find((a) => a.kind === "connectJob");

  it("addressed, its readiness probe not passed: the address, not Ready", () => {
    expect(connect(addressed("builders-0"))).toMatchObject({ addresses: ["127.0.0.10"], ready: false });
  });

  it("Ready: the address, and Ready", () => {
    expect(connect(ready("builders-0"))).toMatchObject({ addresses: ["127.0.0.10"], ready: true });
  });

  it("no address yet: nothing", () => {
    expect(connect(booting("builders-0"))).toBeUndefined();
  });
});

describe("decide: status bookkeeping", () => {
  it("a finished run giving back a VM leased for it looks again after LEASE_START_GRACE_MS; with none, it never requeues", () => {
    const done = run({ status: finished(state("Done", { vm: "builders-0" })) });
    const young = { ...halted("builders-1"), leasedSince: iso(99) };
    expect(decide(done, observe(100, [stopped("builders-0"), young], { extraLeases: ["builders-1"] })).requeueAfterMs).toBe(LEASE_START_GRACE_MS);
    expect(decide(done, observe(100, [stopped("builders-0"), ready("builders-1")], { extraLeases: ["builders-1"] })).requeueAfterMs).toBe(LEASE_START_GRACE_MS);
    expect(decide(done, observe(100, [stopped("builders-0")])).requeueAfterMs).toBeUndefined();
  });

  it("records the VM and its lease in extraFields when it leases one", () => {
    const d = decide(run(), observe(0, [stopped("builders-0")]));
    expect(d.status?.extraFields).toMatchObject({
      phase: "Starting",
      slots: [{ pool: POOL, vm: "builders-0", lease: "team-a/vmbuild-vm-builders-0" }],
      attempt: 0,
    });
  });

  it("keeps the VMBuild spec and params a run was resolved from in extraFields from its admission on, and through a retry", () => {
    const vmbuild = { pool: "builders", image: "registry.test/app:1" };
    const params = [{ name: "gitRevision", value: "v1" }];
    const admitted = decide(run(), { ...observe(0, [stopped("builders-0")]), settings: { ok: true, settings, inputs: { vmbuild, params } } });
    expect(admitted.status?.extraFields).toMatchObject({ phase: "Starting", vmbuild, params });
    const st = status({ ...scratchingOn("BuildFailed"), vmbuild, params }, "Scratching");
    const retried = decide(run({ status: st, spec: { retries: 1 } }), observe(20, [halted("builders-0")], { heldLease: "builders-0" }));
    expect(retried.status?.extraFields).toMatchObject({ phase: "Queued", attempt: 1, vmbuild, params });
  });

  it("a VM deleted while starting is not written down as tried: a new VM of that name may be taken later", () => {
    const d = decide(
      run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
      observe(5, [stopped("builders-1")]),
    );
    expect(d.status?.extraFields).toMatchObject({ phase: "Starting", tried: [], slots: [{ vm: "builders-1" }] });
  });

  it("sets startTime on first reconcile and completionTime only at the end", () => {
    const first = decide(run(), observe(0, [stopped("builders-0")]));
    expect(first.status?.startTime).toBe(T0);
    expect(first.status?.completionTime).toBeUndefined();
    expect(first.status?.observedGeneration).toBe(1);
  });

  it("records an Event for the VM a run got and for its ending, none for a progress line or the phases between", () => {
    const st = status(state("Building", { vm: "builders-0" }), "Building");
    const d = decide(run({ status: st }), observe(9, [ready("builders-0")], { heldLease: "builders-0", job: building }));
    expect(d.events).toEqual([]);
    const started = decide(run(), observe(0, [stopped("builders-0")]));
    expect(started.events).toEqual([expect.objectContaining({ type: "Normal", reason: "StartingVM" })]);
    const waiting = decide(run(), observe(0, [stopped("builders-0", "team-b/x/uid-9/0")]));
    expect(cond(waiting)?.reason).toBe("WaitingForVM");
    expect(waiting.events).toEqual([]);
    const starting = status(state("Starting", { vm: "builders-0" }), "StartingVM");
    const built = decide(run({ status: starting }), observe(5, [ready("builders-0")], { heldLease: "builders-0", job: building }));
    expect(cond(built)?.reason).toBe("Building");
    expect(built.events).toEqual([]);
    const ended = decide(run({ status: st }), observe(9, [ready("builders-0")], { heldLease: "builders-0", job: succeeded }));
    expect(cond(ended)?.reason).toBe("Scratching");
    expect(ended.events).toEqual([]);
    const scratched = decide(run({ status: status(scratchingOn("Succeeded", "True"), "Scratching") }), observe(11, [halted("builders-0")], { heldLease: "builders-0" }));
    expect(scratched.events).toEqual([expect.objectContaining({ type: "Normal", reason: "Succeeded" })]);
    const failed = decide(run({ status: status(scratchingOn("BuildFailed"), "Scratching") }), observe(11, [halted("builders-0")], { heldLease: "builders-0" }));
    expect(failed.events).toEqual([expect.objectContaining({ type: "Warning", reason: "BuildFailed" })]);
  });

  it("an Event of a long ending message keeps its start, what failed at its end and the log's URL, under 1 KiB", () => {
    const message = `building at STEP "RUN ${"x".repeat(3_000)}": exit status 3\nFull log: ${CONTROLLER_URL}/logs/team-a/build/0`;
    const ending = scratchingOn("BuildFailed");
    const withMessage = { ...ending, outcome: { ...ending.outcome!, condition: { ...ending.outcome!.condition, message } } };
    const d = decide(run({ status: status(withMessage, "Scratching") }), observe(11, [halted("builders-0")], { heldLease: "builders-0" }));
    expect(cond(d)?.message).toBe(message);
    const [event] = d.events;
    expect(event?.message.length).toBeLessThanOrEqual(1_024);
    expect(event?.message).toMatch(/^building at STEP "RUN x+ \.\.\. \[\d+ characters cut\] \.\.\. x+": exit status 3\nFull log: \S+\/logs\/team-a\/build\/0$/);
  });

  it("keeps lastTransitionTime while the reason stays the same", () => {
    const st = status(state("Building", { vm: "builders-0" }), "Building");
    const d = decide(run({ status: st }), observe(9, [ready("builders-0")], { heldLease: "builders-0", job: building }));
    expect(cond(d)?.lastTransitionTime).toBe(T0);
  });

  it("leaves a stopped VM's instance to KubeVirt for VMI_DELETE_GRACE_MS, then deletes it; the lease goes only after", () => {
    const st = status(scratchingOn("Succeeded", "True"), "Scratching");
    const vmi = { phase: "Running", ready: true, deleting: false };
    const early = decide(run({ status: st }), observe(2, [{ ...halted("builders-0"), vmi }], { heldLease: "builders-0" }));
    expect(kinds(early)).toEqual([]);
    expect(early.requeueAfterMs).toBe(VMI_DELETE_GRACE_MS - 2_000);
    const late = decide(run({ status: st }), observe(5, [{ ...halted("builders-0"), vmi }], { heldLease: "builders-0" }));
    expect(kinds(late)).toEqual(["deleteVMI:builders-0"]);
    expect(late.requeueAfterMs).toBe(SCRATCH_RECHECK_MS);
  });

  it("a VM deleted under a starting run: its instance, if KubeVirt has not deleted it after the grace, then the lease", () => {
    const st = status(
      state("Scratching", {
        vm: "builders-0",
        outcome: { condition: { type: "Succeeded", status: "Unknown", reason: "WaitingForVM", message: "deleted" }, results: [], next: "requeue" },
      }),
      "Scratching",
    );
    const vmi = { phase: "Scheduling", ready: false, deleting: false };
    const unpooled = { "team-a/builders-0": { ...halted("builders-0"), vmi } };
    const lingering = decide(run({ status: st }), observe(6, [stopped("builders-1")], { heldLease: "builders-0", unpooled }));
    expect(kinds(lingering)).toEqual(["deleteVMI:builders-0"]);
    const gone = decide(run({ status: st }), observe(7, [stopped("builders-1")], { heldLease: "builders-0" }));
    expect(kinds(gone)[0]).toBe("releaseLease:builders-0");
  });

  it("does not requeue on the run's timeout once it is scratching, only to look at the scratch again", () => {
    const st = status(
      scratchingOn("CustomRunTimedOut", "False"),
    );
    const d = decide(
      run({ status: st, spec: { timeout: "5s" } }),
      observe(60, [{ ...halted("builders-0"), vmi: { phase: "Running", ready: true, deleting: true } }], { heldLease: "builders-0" }),
    );
    expect(d.requeueAfterMs).toBe(SCRATCH_RECHECK_MS);
  });

  it("requeues at the nearest deadline: queue wait or run timeout", () => {
    const d = decide(
      run({ status: status(state("Queued"), "WaitingForVM"), spec: { timeout: "10m" } }),
      observe(60, [stopped("builders-0", "x/y/z/0")]),
    );
    expect(d.requeueAfterMs).toBe(9 * 60_000);
  });

  it("retries a failed attempt: retriesStatus grows, startTime resets, attempt increments", () => {
    const st = status(
      scratchingOn("BuildFailed", "False"),
      "Scratching",
    );
    const d = decide(run({ status: st, spec: { retries: 1 } }), observe(30, [halted("builders-0"), stopped("builders-1")], { heldLease: "builders-0" }));
    expect(kinds(d)).toEqual(["releaseLease:builders-0", "acquireLease:builders-1", "startVM:builders-1", "startJob:builders-1"]);
    expect(d.status?.retriesStatus).toHaveLength(1);
    expect(d.status?.retriesStatus?.[0]).toMatchObject({ startTime: T0, completionTime: iso(30) });
    expect(d.status?.startTime).toBe(iso(30));
    expect((d.status?.extraFields as RunState).attempt).toBe(1);
    expect(d.status?.completionTime).toBeUndefined();
  });

  it("does not retry a cancelled run", () => {
    const st = status(
      scratchingOn("CustomRunCancelled", "False"),
      "Scratching",
    );
    const d = decide(run({ status: st, spec: { retries: 3 } }), observe(30, [halted("builders-0")], { heldLease: "builders-0" }));
    expect(cond(d)?.reason).toBe("CustomRunCancelled");
    expect(d.status?.completionTime).toBe(iso(30));
  });

  it("leases are held per attempt: released as attempt 0, acquired as attempt 1", () => {
    const st = status(
      scratchingOn("BuildFailed", "False"),
    );
    const d = decide(run({ status: st, spec: { retries: 1 } }), observe(30, [halted("builders-0"), stopped("builders-1")], { heldLease: "builders-0" }));
    expect(d.actions.filter((a) => "holder" in a)).toEqual([
      { kind: "releaseLease", pool: POOL, vm: "builders-0", holder: holderIdentity(RUN_ID, 0), toWarm: false },
      { kind: "acquireLease", pool: POOL, vm: "builders-1", holder: holderIdentity(RUN_ID, 1), fromWarm: false },
    ]);
  });

  it("the final status of a success carries the results", () => {
    const st = status(
      state("Scratching", {
        vm: "builders-0",
        outcome: {
          condition: { type: "Succeeded", status: "True", reason: "Succeeded", message: "ok" },
          results: [{ name: "IMAGE_DIGEST", value: "sha256:abc" }],
          next: "finish",
        },
      }),
    );
    const d = decide(run({ status: st }), observe(30, [halted("builders-0")], { heldLease: "builders-0" }));
    expect(d.status?.results).toEqual([
      { name: "IMAGE_DIGEST", value: "sha256:abc" },
      { name: "BUILD_VM", value: "team-a/builders-0" },
      { name: "LOG_URL", value: `${CONTROLLER_URL}/logs/team-a/build-1/0` },
    ]);
  });

  it("a failed build reports what its job knew, and the log and VM", () => {
    const failed: JobView = {
      ...buildFailed,
      results: [
        { name: "CHAINS-GIT_URL", value: "https://git.test/app.git" },
        { name: "CHAINS-GIT_COMMIT", value: "abc123" },
      ],
    };
    const building = status(state("Building", { vm: "builders-0" }), "Building");
    const scratching = decide(run({ status: building }), observe(9, [ready("builders-0")], { heldLease: "builders-0", job: failed }));
    const d = decide(run({ status: scratching.status }), observe(12, [halted("builders-0")], { heldLease: "builders-0" }));
    expect(cond(d)).toMatchObject({ status: "False", reason: "BuildFailed" });
    expect(d.status?.results).toEqual([
      { name: "CHAINS-GIT_URL", value: "https://git.test/app.git" },
      { name: "CHAINS-GIT_COMMIT", value: "abc123" },
      { name: "BUILD_VM", value: "team-a/builders-0" },
      { name: "LOG_URL", value: `${CONTROLLER_URL}/logs/team-a/build-1/0` },
    ]);
  });

  it("a run that never got a VM reports its LOG_URL, and no BUILD_VM", () => {
    const queued = decide(run({ status: status(state("Queued"), "WaitingForVM") }), observe(1801, [stopped("builders-0", "other/x/u/0")]));
    expect(cond(queued)?.reason).toBe("QueueTimeout");
    expect(queued.status?.results).toEqual([{ name: "LOG_URL", value: `${CONTROLLER_URL}/logs/team-a/build-1/0` }]);
    const cancelled = decide(run({ finalizer: false, spec: { status: "RunCancelled" } }), observe(0, [stopped("builders-0")]));
    expect(cancelled.status?.results).toEqual([{ name: "LOG_URL", value: `${CONTROLLER_URL}/logs/team-a/build-1/0` }]);
  });

  it("a retried attempt's entry in retriesStatus has its condition's lastTransitionTime and its results", () => {
    const st = status(scratchingOn("BuildFailed", "False"), "Scratching");
    const d = decide(run({ status: st, spec: { retries: 1 } }), observe(30, [halted("builders-0"), stopped("builders-1")], { heldLease: "builders-0" }));
    expect(d.status?.retriesStatus?.[0]).toMatchObject({
      conditions: [{ type: "Succeeded", status: "False", reason: "BuildFailed", lastTransitionTime: iso(30) }],
      results: [
        { name: "BUILD_VM", value: "team-a/builders-0" },
        { name: "LOG_URL", value: `${CONTROLLER_URL}/logs/team-a/build-1/0` },
      ],
    });
  });
});

describe("decide: fan-out over two pools (amd64 emulated, arm64 native)", () => {
  const EMU = "team-a/emu";
  const ARM = "team-a/arm";
  const fanout = resolveSettings(
    { pool: "emu", nativePools: ["arm"], strategy: "fanout", image: "registry.test/app:1", gitUrl: "https://git.test/app.git" },
    [{ name: "platforms", value: "linux/amd64,linux/arm64" }],
  );
  if (!fanout.ok) throw new Error(fanout.message);
  const slots = [
    { platforms: ["linux/amd64"], pool: EMU },
    { platforms: ["linux/arm64"], pool: ARM },
  ];
  const fanState = (phase: RunState["phase"], vms: [string?, string?], extra: Partial<RunState> = {}): RunState => ({
    ...state(phase, extra),
    slots: slots.map((slot, i) => (vms[i] ? { ...slot, vm: vms[i] } : slot)),
  });
  const pool = (key: string, vms: VMView[], warm?: { min: number; max: number }): Observation["pools"][string] => {
    const [namespace = "", name = ""] = key.split("/");
    return { found: true, namespace, name, vms, ...(warm ? { warm: { ...warm, idleMs: 600_000 } } : {}) };
  };
  const fanObserve = (
    seconds: number,
    emu: VMView[],
    arm: VMView[],
    extra: Partial<Observation> & { warm?: { min: number; max: number } } = {},
  ): Observation => {
    const { warm, ...rest } = extra;
    return {
      now: at(seconds),
      publicURL: CONTROLLER_URL,
      settings: { ok: true, settings: fanout.settings, inputs: { params: [] } },
      plan: { ok: true, slots },
      pools: { [EMU]: pool(EMU, emu, warm), [ARM]: pool(ARM, arm) },
      held: [],
      demandAhead: { [EMU]: 0, [ARM]: 0 },
      ...rest,
    };
  };

  it("leases one VM per platform in one decision and starts both", () => {
    const d = decide(run(), fanObserve(0, [stopped("emu-0")], [stopped("arm-0")]));
    expect(kinds(d)).toEqual(["acquireLease:emu-0", "acquireLease:arm-0", "startVM:emu-0", "startVM:arm-0", "startJob:emu-0+arm-0"]);
    expect(d.status?.extraFields).toMatchObject({
      phase: "Starting",
      slots: [
        { platforms: ["linux/amd64"], pool: EMU, vm: "emu-0", lease: "team-a/vmbuild-vm-emu-0" },
        { platforms: ["linux/arm64"], pool: ARM, vm: "arm-0", lease: "team-a/vmbuild-vm-arm-0" },
      ],
    });
  });

  it("takes nothing while one pool has no free VM (no VM held while waiting: no deadlock)", () => {
    const d = decide(run(), fanObserve(0, [stopped("emu-0")], [stopped("arm-0", "team-b/x/uid-9/0")]));
    expect(kinds(d)).toEqual([]);
    expect(cond(d)?.reason).toBe("WaitingForVM");
    expect(cond(d)?.message).toBe("Waiting for a free VM of pool team-a/arm.");
  });

  it("counts the VMs runs ahead need, per pool", () => {
    const d = decide(run(), fanObserve(0, [stopped("emu-0"), stopped("emu-1")], [stopped("arm-0")], { demandAhead: { [EMU]: 1, [ARM]: 1 } }));
    expect(kinds(d)).toEqual([]);
    expect(cond(d)?.message).toBe("Waiting for a free VM of pool team-a/arm.");
  });

  it("gives back a lease found without the rest (a lost status write) when the other pool is full", () => {
    const st = status(fanState("Queued", []), "WaitingForVM");
    const d = decide(
      run({ status: st }),
      fanObserve(5, [halted("emu-0")], [stopped("arm-0", "team-b/x/uid-9/0")], { held: ["emu-0", undefined] }),
    );
    expect(kinds(d)).toEqual(["releaseLease:emu-0"]);
    expect(phase(d)).toBe("Queued");
    expect(cond(d)?.reason).toBe("WaitingForVM");
  });

  it("waits before giving back a found lease whose VM is not started yet and was leased just now: its start may be on the way", () => {
    const st = status(fanState("Queued", []), "WaitingForVM");
    const young = { ...halted("emu-0"), leasedSince: iso(4) };
    const full = [stopped("arm-0", "team-b/x/uid-9/0")];
    const d = decide(run({ status: st }), fanObserve(5, [young], full, { held: ["emu-0", undefined] }));
    expect(kinds(d)).toEqual([]);
    expect(phase(d)).toBe("Queued");
    expect(d.requeueAfterMs).toBe(LEASE_START_GRACE_MS);
    // Started meanwhile: scratched as usual.
    const started = decide(run({ status: st }), fanObserve(6, [{ ...ready("emu-0"), leasedSince: iso(4) }], full, { held: ["emu-0", undefined] }));
    expect(kinds(started)).toEqual(["stopVM:emu-0"]);
    // Past its queue timeout: the timeout too waits for the start to land, the status unchanged.
    const late = decide(run({ status: st }), fanObserve(1801, [{ ...young, leasedSince: iso(1800) }], full, { held: ["emu-0", undefined] }));
    expect(kinds(late)).toEqual([]);
    expect(cond(late)).toEqual(st.conditions?.[0]);
    expect(late.status?.extraFields).toEqual(st.extraFields);
  });

  it("starts one job for both VMs, each with its platform, and tells it both addresses once both are ready", () => {
    const st = status(fanState("Starting", ["emu-0", "arm-0"]), "StartingVM");
    const d = decide(run({ status: st }), fanObserve(5, [ready("emu-0")], [ready("arm-0")], { held: ["emu-0", "arm-0"] }));
    const job = { attempt: 0, vms: ["emu-0", "arm-0"] };
    expect(d.actions).toEqual([
      {
        kind: "startJob",
        job,
        vms: [
          { pool: EMU, vm: "emu-0", platforms: ["linux/amd64"] },
          { pool: ARM, vm: "arm-0", platforms: ["linux/arm64"] },
        ],
      },
      { kind: "connectJob", job, addresses: ["127.0.0.10", "127.0.0.10"], ready: true },
    ]);
  });

  it("does not tell the job where its VMs answer until the slower one is up", () => {
    const st = status(fanState("Starting", ["emu-0", "arm-0"]), "StartingVM");
    const fetching: JobView = { state: "running", stage: "fetching", detail: "" };
    const d = decide(run({ status: st }), fanObserve(5, [ready("emu-0")], [booting("arm-0")], { held: ["emu-0", "arm-0"], job: fetching }));
    expect(kinds(d)).toEqual([]);
    expect(cond(d)?.message).toBe("Starting VM emu-0 of pool team-a/emu; VM arm-0 of pool team-a/arm.");
  });

  it("a failed platform scratches every VM and fails naming it", () => {
    const st = status(fanState("Building", ["emu-0", "arm-0"]), "Building");
    const failed: JobView = { state: "failed", stage: "building", reason: "BuildFailed", message: "linux/arm64 on VM arm-0: RUN false: exit 1", results: [] };
    const d = decide(run({ status: st }), fanObserve(9, [ready("emu-0")], [ready("arm-0")], { held: ["emu-0", "arm-0"], job: failed }));
    expect(kinds(d)).toEqual(["stopVM:emu-0", "stopVM:arm-0"]);
    expect(phase(d)).toBe("Scratching");
    expect(cond(d)?.message).toMatch(/linux\/arm64 on VM arm-0/);
  });

  it("releases each VM as soon as it is gone, and finishes once all are", () => {
    const outcome = { condition: { type: "Succeeded", status: "False" as const, reason: "BuildFailed", message: "boom" }, results: [], next: "finish" as const };
    const st = status(fanState("Scratching", ["emu-0", "arm-0"], { outcome }), "Scratching");
    const partly = decide(run({ status: st }), fanObserve(10, [halted("emu-0")], [{ ...halted("arm-0"), vmi: { phase: "Running", ready: true, deleting: true } }], { held: ["emu-0", "arm-0"] }));
    expect(kinds(partly)).toEqual(["releaseLease:emu-0"]);
    expect(partly.status?.completionTime).toBeUndefined();
    const done = decide(run({ status: st }), fanObserve(11, [stopped("emu-0")], [halted("arm-0")], { held: [undefined, "arm-0"] }));
    // emu-0 is seen without its Lease: released by the pass before, not released again (a read and a log line).
    expect(kinds(done)).toEqual(["releaseLease:arm-0"]);
    expect(cond(done)?.reason).toBe("BuildFailed");
    expect(done.removeFinalizer).toBe(true);
  });
});

describe("decide: warm pools", () => {
  const warmReady = (name: string): VMView => ({ ...ready(name), leaseHolder: "vmbuild/warm" });
  const withWarm = (vms: VMView[], warm: { min: number; max: number }): PoolObservation => ({
    found: true,
    namespace: "team-a",
    name: "builders",
    vms,
    warm: { ...warm, idleMs: 600_000 },
  });

  it("takes a warm VM first (a holder swap) and starts the build at once: no boot", () => {
    const d = decide(run(), observe(0, [stopped("builders-0"), warmReady("builders-1")], { pool: withWarm([stopped("builders-0"), warmReady("builders-1")], { min: 1, max: 2 }) }));
    expect(d.actions).toEqual([
      { kind: "acquireLease", pool: POOL, vm: "builders-1", holder: ME, fromWarm: true },
      { kind: "startJob", job: { attempt: 0, vms: ["builders-1"] }, vms: [{ pool: POOL, vm: "builders-1", platforms: settings.platforms }] },
      { kind: "connectJob", job: { attempt: 0, vms: ["builders-1"] }, addresses: ["127.0.0.10"], ready: true },
    ]);
  });

  it("hands a scratched VM back to the warm set while the pool is below its max", () => {
    const st = status(scratchingOn("Succeeded", "True"), "Scratching");
    const d = decide(run({ status: st }), observe(30, [], { heldLease: "builders-0", pool: withWarm([halted("builders-0"), warmReady("builders-1")], { min: 1, max: 2 }) }));
    expect(d.actions).toContainEqual({ kind: "releaseLease", pool: POOL, vm: "builders-0", holder: ME, toWarm: true });
  });

  it("releases it for good when the warm set is full", () => {
    const st = status(scratchingOn("Succeeded", "True"), "Scratching");
    const d = decide(run({ status: st }), observe(30, [], { heldLease: "builders-0", pool: withWarm([halted("builders-0"), warmReady("builders-1")], { min: 1, max: 1 }) }));
    expect(d.actions).toContainEqual({ kind: "releaseLease", pool: POOL, vm: "builders-0", holder: ME, toWarm: false });
  });
});

describe("decide: the hand-on from phase to phase is bounded", () => {
  const withQueueTimeout = (value: string) => {
    const r = resolveSettings(
      { pool: "builders", image: "registry.test/app:1", gitUrl: "https://git.test/app.git" },
      [{ name: "platforms", value: "linux/amd64,linux/arm64" }, { name: "queueTimeout", value }],
    );
    if (!r.ok) throw new Error(r.message);
    return { ok: true as const, settings: r.settings, inputs: { params: [] } };
  };
  const full = [stopped("builders-0", "team-b/x/uid-9/0")];
  const cases: {
    name: string;
    run: CustomRun;
    obs: Observation;
    actions: string[];
    phase: string;
    attempt: number;
    reason: string;
    retries: number;
    requeueNow: boolean;
  }[] = [
    {
      name: "the longest chain a sane run takes (lost VM, requeue past queueTimeout, retry, new VM) fits",
      run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM"), spec: { retries: 1 } }),
      obs: observe(1801, [stopped("builders-0", "team-b/y/uid-2/0"), stopped("builders-1")]),
      actions: ["acquireLease:builders-1", "startVM:builders-1", "startJob:builders-1"],
      phase: "Starting",
      attempt: 1,
      reason: "StartingVM",
      retries: 1,
      requeueNow: false,
    },
    {
      name: "queueTimeout 0s, one retry: both attempts end in this decision",
      run: run({ status: status(state("Queued"), "WaitingForVM"), spec: { retries: 1 } }),
      obs: observe(1, full, { settings: withQueueTimeout("0s") }),
      actions: [],
      phase: "Done",
      attempt: 1,
      reason: "QueueTimeout",
      retries: 1,
      requeueNow: false,
    },
    {
      name: "queueTimeout 0s, five retries: after two queue entries the run is written queued and taken up again",
      run: run({ status: status(state("Queued"), "WaitingForVM"), spec: { retries: 5 } }),
      obs: observe(1, full, { settings: withQueueTimeout("0s") }),
      actions: [],
      phase: "Queued",
      attempt: 2,
      reason: "Retrying",
      retries: 2,
      requeueNow: true,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const d = decide(c.run, c.obs);
      expect(kinds(d)).toEqual(c.actions);
      expect(phase(d)).toBe(c.phase);
      expect((d.status?.extraFields as RunState).attempt).toBe(c.attempt);
      expect(cond(d)?.reason).toBe(c.reason);
      expect(d.status?.retriesStatus ?? []).toHaveLength(c.retries);
      expect(d.requeueAfterMs === 0).toBe(c.requeueNow);
    });
  }
});
