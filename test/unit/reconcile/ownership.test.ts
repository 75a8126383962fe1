import { describe, expect, it } from "vitest";
import { decide } from "../../../src/reconcile/decide/index.js";
import type { Observation, ReplicaObservation } from "../../../src/reconcile/observation.js";
import { readRunState, type RunState } from "../../../src/tekton/run-state.js";
import { FINALIZER, type CustomRun, type RunStatus } from "../../../src/tekton/customrun.js";
import { resolveSettings } from "../../../src/api/resolve.js";
import { holderIdentity } from "../../../src/lease/holder.js";
import type { JobView } from "../../../src/jobs/jobs.js";
import type { VMView } from "../../../src/kubevirt/vm.js";

// Runs owned by replicas: the leader leases and hands the run to a replica; only that replica executes it while
// it lives; a lost owner's run is adopted, its VM scratched and the attempt run again without using retries.

const T0 = "2026-01-01T00:00:00.000Z";
const at = (s: number) => new Date(Date.parse(T0) + s * 1000);
const resolved = resolveSettings({ pool: "builders", image: "registry.test/app:1", gitUrl: "https://git.test/app.git" }, []);
if (!resolved.ok) throw new Error(resolved.message);
const settings = resolved.settings;
const RUN_ID = { namespace: "team-a", name: "build-1", uid: "uid-1" };
const HOLDER = holderIdentity(RUN_ID, 0);
const POOL = "team-a/builders";

function run(st?: RunState, reason = "Started", extra: { retries?: number } = {}): CustomRun {
  const status: RunStatus | undefined = st
    ? { startTime: T0, conditions: [{ type: "Succeeded", status: "Unknown", reason, message: "", lastTransitionTime: T0 }], extraFields: st }
    : undefined;
  return {
    metadata: { ...RUN_ID, generation: 1, finalizers: [FINALIZER] },
    spec: { customRef: { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild" }, params: [], ...(extra.retries ? { retries: extra.retries } : {}) },
    ...(status ? { status } : {}),
  };
}

function state(phase: RunState["phase"], extra: Partial<RunState> & { vm?: string } = {}): RunState {
  const { vm, ...rest } = extra;
  return { phase, attempt: 0, slots: [{ platforms: settings.platforms, pool: POOL, ...(vm ? { vm } : {}) }], queuedAt: T0, phaseSince: T0, tried: [], ...rest };
}

const free = (name: string): VMView => ({ name, wantsRunning: false });
const up = (name: string): VMView => ({
  name,
  wantsRunning: true,
  vmi: { phase: "Running", ready: true, address: "10.0.0.7", deleting: false },
  leaseHolder: HOLDER,
});
const gone = (name: string): VMView => ({ name, wantsRunning: false, leaseHolder: HOLDER });

function observe(vms: VMView[], replica: ReplicaObservation, extra: { held?: string; job?: JobView } = {}): Observation {
  return {
    now: at(30),
    publicURL: "http://vmbuild.test:8080",
    settings: { ok: true, settings, inputs: { params: [] } },
    plan: { ok: true, slots: [{ platforms: settings.platforms, pool: POOL }] },
    pools: { [POOL]: { found: true, namespace: "team-a", name: "builders", vms } },
    held: [extra.held],
    demandAhead: { [POOL]: 0 },
    ...(extra.job ? { job: extra.job } : {}),
    replica,
  };
}

const stateOf = (d: ReturnType<typeof decide>) => readRunState(d.status?.extraFields);
const kinds = (d: ReturnType<typeof decide>) => d.actions.map((a) => a.kind);

describe("ownership: the leader leases, a replica executes", () => {
  it("a queued run that takes a VM goes to the assignee; leased for another replica, only the VM is started", () => {
    const d = decide(run(state("Queued"), "WaitingForVM"), observe([free("builders-0")], { me: "leader", ownerAlive: false, assignee: "r2" }));
    expect(kinds(d)).toEqual(["acquireLease", "startVM"]);
    expect(stateOf(d)).toMatchObject({ phase: "Starting", owner: "r2" });
    expect(d.status?.conditions?.[0]).toMatchObject({ reason: "StartingVM", message: "Starting VM builders-0 of pool team-a/builders." });
  });

  it("leased for itself, the leader starts the job in the same decision", () => {
    const d = decide(run(state("Queued"), "WaitingForVM"), observe([free("builders-0")], { me: "leader", ownerAlive: false, assignee: "leader" }));
    expect(kinds(d)).toEqual(["acquireLease", "startVM", "startJob"]);
    expect(stateOf(d)?.owner).toBe("leader");
  });

  it("the owner, seeing the run it was handed, starts the job and writes nothing new while the VM boots", () => {
    const handed = state("Starting", { vm: "builders-0", owner: "r2", leasedAt: T0 });
    const booting: VMView = { ...up("builders-0"), vmi: { phase: "Scheduling", ready: false, deleting: false } };
    const r = run(handed, "StartingVM");
    r.status!.conditions![0]!.message = "Starting VM builders-0 of pool team-a/builders.";
    const d = decide(r, observe([booting], { me: "r2", ownerAlive: true, assignee: "r2" }, { held: "builders-0" }));
    expect(kinds(d)).toEqual(["startJob"]);
    expect(d.events).toEqual([]);
    expect(d.status?.conditions?.[0]?.message).toBe("Starting VM builders-0 of pool team-a/builders.");
  });

  it("a run whose owner lives is left alone by every other replica, whatever happens to it", () => {
    const r = run(state("Building", { vm: "builders-0", owner: "r2" }), "Building");
    r.spec.status = "RunCancelled";
    const d = decide(r, observe([up("builders-0")], { me: "leader", ownerAlive: true, assignee: "leader" }, { held: "builders-0" }));
    expect(d).toEqual({ actions: [], removeFinalizer: false, events: [] });
  });
});

describe("ownership: a lost owner's run", () => {
  const lost = { me: "leader", ownerAlive: false, assignee: "leader" };

  it.each(["Starting", "Building"] as const)("%s: adopted, its VM scratched, to run again (re-run 1 of 2, retries untouched)", (phase) => {
    const r = run(state(phase, { vm: "builders-0", owner: "r2" }), phase === "Building" ? "Building" : "StartingVM");
    const d = decide(r, observe([up("builders-0")], lost, { held: "builders-0" }));
    expect(kinds(d)).toEqual(["stopVM"]);
    expect(stateOf(d)).toMatchObject({ phase: "Scratching", owner: "leader", recoveries: 1, outcome: { next: "requeue", condition: { reason: "Recovering" } } });
    expect(d.status?.conditions?.[0]?.message).toMatch(/replica r2.*was lost/);
    expect(d.status?.retriesStatus).toBeUndefined();
  });

  it("once scratched, it waits in the queue again as Recovering (a Warning Event), unowned, its attempt unchanged", () => {
    const scratching = state("Scratching", {
      vm: "builders-0",
      owner: "leader",
      recoveries: 1,
      outcome: { condition: { type: "Succeeded", status: "Unknown", reason: "Recovering", message: "r2 lost" }, results: [], next: "requeue" },
    });
    // The only VM is the one just scratched: nothing to take yet.
    const d = decide(run(scratching, "Scratching"), observe([gone("builders-0")], lost, { held: "builders-0" }));
    expect(kinds(d)).toEqual(["releaseLease"]);
    const after = stateOf(d);
    expect(after).toMatchObject({ phase: "Queued", attempt: 0, recoveries: 1 });
    expect(after?.owner).toBeUndefined();
    expect(d.status?.conditions?.[0]).toMatchObject({ reason: "Recovering" });
    expect(d.events).toEqual([expect.objectContaining({ type: "Warning", reason: "Recovering" })]);
  });

  it("a third loss ends the attempt ControllerRestarted, and then spec.retries applies as for any failure", () => {
    const r = run(state("Building", { vm: "builders-0", owner: "r3", recoveries: 2 }), "Building", { retries: 1 });
    const d = decide(r, observe([up("builders-0")], lost, { held: "builders-0" }));
    expect(stateOf(d)?.outcome?.condition).toMatchObject({ reason: "ControllerRestarted", status: "False" });
    const scratched = decide(
      run({ ...stateOf(d)!, slots: [{ platforms: settings.platforms, pool: POOL, vm: "builders-0" }] }, "Scratching", { retries: 1 }),
      observe([gone("builders-0")], lost, { held: "builders-0" }),
    );
    expect(scratched.status?.conditions?.[0]?.reason).toBe("Retrying");
    expect(stateOf(scratched)).toMatchObject({ attempt: 1, recoveries: 2 });
  });

  it("a scratch in progress is simply carried on by the adopter", () => {
    const scratching = state("Scratching", {
      vm: "builders-0",
      owner: "r2",
      outcome: { condition: { type: "Succeeded", status: "True", reason: "Succeeded", message: "ok" }, results: [], next: "finish" },
    });
    const d = decide(run(scratching, "Scratching"), observe([gone("builders-0")], lost, { held: "builders-0" }));
    expect(kinds(d)).toEqual(["releaseLease"]);
    expect(d.status?.conditions?.[0]).toMatchObject({ reason: "Succeeded", status: "True" });
    expect(d.removeFinalizer).toBe(true);
  });

  it("a run in flight from before owners existed is taken by the leader as it is: its start goes on", () => {
    const d = decide(run(state("Starting", { vm: "builders-0" }), "StartingVM"), observe([up("builders-0")], lost, { held: "builders-0" }));
    expect(kinds(d)).toEqual(["startJob", "connectJob"]);
    expect(stateOf(d)?.owner).toBe("leader");
  });
});
