import { describe, expect, it } from "vitest";
import { decide, type Action, type Decision } from "../../src/reconcile/decide.js";
import type { JobView, Observation, VMView } from "../../src/reconcile/observation.js";
import type { RunState } from "../../src/reconcile/run-state.js";
import { FINALIZER, type CustomRun, type RunStatus } from "../../src/tekton/customrun.js";
import { resolveSettings } from "../../src/spec/resolve.js";
import { holderIdentity } from "../../src/lease/holder.js";

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

function state(phase: RunState["phase"], extra: Partial<RunState> = {}): RunState {
  return { phase, attempt: 0, pool: "team-a/builders", queuedAt: T0, phaseSince: T0, tried: [], ...extra };
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

function observe(seconds: number, vms: VMView[], extra: Partial<Observation> = {}): Observation {
  return {
    now: at(seconds),
    settings: { ok: true, settings },
    pool: { found: true, namespace: "team-a", name: "builders", vms },
    queueAhead: 0,
    ...extra,
  };
}

const building: JobView = { state: "running", stage: "building", detail: "[linux/arm64] STEP 2/3: RUN uname -m" };
const connecting: JobView = { state: "running", stage: "connecting", detail: "" };
const succeeded: JobView = {
  state: "succeeded",
  results: [{ name: "IMAGE_DIGEST", value: "sha256:abc" }],
  summary: "Built and pushed registry.test/app:1",
};
const buildFailed: JobView = { state: "failed", stage: "building", reason: "BuildFailed", message: "RUN false: exit 1" };

function kinds(d: Decision): string[] {
  return d.actions.map((a: Action) => ("vm" in a ? `${a.kind}:${a.vm}` : a.kind));
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
    name: "new run with a free VM: finalizer, lease, start, in one go",
    run: run({ finalizer: false }),
    obs: observe(0, [stopped("builders-0")]),
    actions: ["addFinalizer", "acquireLease:builders-0", "startVM:builders-0"],
    reason: "StartingVM",
    phase: "Starting",
  },
  {
    name: "new run, pool full: waits with its queue position",
    run: run(),
    obs: observe(0, [stopped("builders-0", "team-b/x/uid-9/0")], { queueAhead: 0 }),
    actions: [],
    reason: "WaitingForVM",
    phase: "Queued",
    message: /: position 1 in the queue\.$/,
  },
  {
    name: "new run, pool full, further back than one round of VMs: a message that stays put as the queue moves",
    run: run(),
    obs: observe(0, [stopped("builders-0", "team-b/x/uid-9/0")], { queueAhead: 2 }),
    actions: [],
    reason: "WaitingForVM",
    phase: "Queued",
    message: /: at least 1 run ahead in the queue\.$/,
  },
  {
    name: "new run, second in line takes the second free VM",
    run: run(),
    obs: observe(0, [stopped("builders-0"), stopped("builders-1")], { queueAhead: 1 }),
    actions: ["acquireLease:builders-1", "startVM:builders-1"],
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
    obs: { ...observe(11, []), pool: { found: false, reason: "PoolNotFound", message: "no pool team-a/builders" } },
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
    actions: ["startVM:builders-0"],
    reason: "StartingVM",
  },
  // Starting
  {
    name: "starting, VMI ready: starts the build job",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(5, [ready("builders-0")], { heldLease: "builders-0" }),
    actions: ["startJob:builders-0"],
    reason: "StartingVM",
  },
  {
    name: "starting, the job failed before the build (the run's credentials): the run fails, no other VM is tried",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(5, [ready("builders-0"), stopped("builders-1")], {
      heldLease: "builders-0",
      job: { state: "failed", stage: "connecting", reason: "InvalidSecret", message: "ServiceAccount x/default not found" },
    }),
    actions: ["stopVM:builders-0"],
    reason: "Scratching",
    message: /InvalidSecret.*ServiceAccount x\/default not found/,
  },
  {
    name: "starting, job waits for podman",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(5, [ready("builders-0")], { heldLease: "builders-0", job: connecting }),
    actions: [],
    reason: "StartingVM",
    message: /waiting for podman/,
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
    actions: ["releaseLease:builders-0", "acquireLease:builders-1", "startVM:builders-1"],
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
    actions: ["startVM:builders-0"],
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
    name: "one attempt holding two VMs (two replicas raced): the one not in the status is stopped",
    run: run({ status: status(state("Starting", { vm: "builders-1" }), "StartingVM") }),
    obs: observe(5, [ready("builders-0"), ready("builders-1")], { heldLease: "builders-1", extraLeases: ["builders-0"] }),
    actions: ["stopVM:builders-0", "startJob:builders-1"],
    reason: "StartingVM",
  },
  {
    name: "…and once it is stopped and its instance gone, its lease is released",
    run: run({ status: status(state("Starting", { vm: "builders-1" }), "StartingVM") }),
    obs: observe(6, [halted("builders-0"), ready("builders-1")], { heldLease: "builders-1", extraLeases: ["builders-0"] }),
    actions: ["releaseLease:builders-0", "startJob:builders-1"],
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
    name: "push failed: scratch",
    run: run({ status: status(state("Building", { vm: "builders-0" }), "Pushing") }),
    obs: observe(9, [ready("builders-0")], {
      heldLease: "builders-0",
      job: { state: "failed", stage: "pushing", reason: "PushFailed", message: "unauthorized" },
    }),
    actions: ["stopVM:builders-0"],
    reason: "Scratching",
    message: /PushFailed/,
  },
  {
    name: "controller restarted mid-build (no job): scratch, ControllerRestarted",
    run: run({ status: status(state("Building", { vm: "builders-0" }), "Building") }),
    obs: observe(9, [ready("builders-0")], { heldLease: "builders-0" }),
    actions: ["stopVM:builders-0"],
    reason: "Scratching",
    message: /ControllerRestarted/,
  },
  {
    name: "controller restarted while starting: the job is simply started again",
    run: run({ status: status(state("Starting", { vm: "builders-0" }), "StartingVM") }),
    obs: observe(9, [ready("builders-0")], { heldLease: "builders-0" }),
    actions: ["startJob:builders-0"],
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
  // Scratching
  {
    name: "scratching: VM seen stopped, its instance still there: delete it with grace 0",
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

describe("decide: status bookkeeping", () => {
  it("records the VM and its lease in extraFields when it leases one", () => {
    const d = decide(run(), observe(0, [stopped("builders-0")]));
    expect(d.status?.extraFields).toMatchObject({ phase: "Starting", vm: "builders-0", lease: "team-a/vmbuild-vm-builders-0", attempt: 0 });
  });

  it("sets startTime on first reconcile and completionTime only at the end", () => {
    const first = decide(run(), observe(0, [stopped("builders-0")]));
    expect(first.status?.startTime).toBe(T0);
    expect(first.status?.completionTime).toBeUndefined();
    expect(first.status?.observedGeneration).toBe(1);
  });

  it("emits one event per condition change and none for a progress line", () => {
    const st = status(state("Building", { vm: "builders-0" }), "Building");
    const d = decide(run({ status: st }), observe(9, [ready("builders-0")], { heldLease: "builders-0", job: building }));
    expect(d.events).toEqual([]);
    const started = decide(run(), observe(0, [stopped("builders-0")]));
    expect(started.events.map((e) => e.reason)).toEqual(["StartingVM"]);
  });

  it("keeps lastTransitionTime while the reason stays the same", () => {
    const st = status(state("Building", { vm: "builders-0" }), "Building");
    const d = decide(run({ status: st }), observe(9, [ready("builders-0")], { heldLease: "builders-0", job: building }));
    expect(cond(d)?.lastTransitionTime).toBe(T0);
  });

  it("does not requeue on the run's timeout once it is scratching", () => {
    const st = status(
      scratchingOn("CustomRunTimedOut", "False"),
    );
    const d = decide(
      run({ status: st, spec: { timeout: "5s" } }),
      observe(60, [{ ...halted("builders-0"), vmi: { phase: "Running", ready: true, deleting: true } }], { heldLease: "builders-0" }),
    );
    expect(d.requeueAfterMs).toBeUndefined();
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
    expect(kinds(d)).toEqual(["releaseLease:builders-0", "acquireLease:builders-1", "startVM:builders-1"]);
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
      { kind: "releaseLease", vm: "builders-0", holder: holderIdentity(RUN_ID, 0) },
      { kind: "acquireLease", vm: "builders-1", holder: holderIdentity(RUN_ID, 1) },
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
    expect(d.status?.results).toEqual([{ name: "IMAGE_DIGEST", value: "sha256:abc" }]);
  });
});
