// The fault matrix of issue #7: every fault × every phase of a run, with the terminal state the run must reach
// once the fault clears, or why the cell does not apply. One table, read by `npm run test:faults` (all cells)
// and by test/integration/faults.test.ts (a representative subset).

export const FAULTS = [
  "controller-kill",
  "apiserver-restart",
  "etcd-restart",
  "podman-killed",
  "registry-down",
  "vm-never-ready",
  "podman-unreachable",
] as const;
export type Fault = (typeof FAULTS)[number];

export const PHASES = ["queued", "starting", "building", "pushing", "scratching"] as const;
export type Phase = (typeof PHASES)[number];

/** What the fault is, as injected (the column headers of the report). */
export const FAULT_DESCRIPTIONS: Record<Fault, string> = {
  "controller-kill": "SIGKILL the controller; a supervisor starts a new one at once (as a Deployment would)",
  "apiserver-restart": "stop kube-apiserver (SIGTERM) and start it again with the same flags",
  "etcd-restart": "stop etcd (SIGTERM) and start it again on the same data dir",
  "podman-killed": "SIGKILL the VM's podman service and everything it started",
  "registry-down": "stop the registry; building: back after 8 s, before the push; pushing: back once the run has left Pushing",
  "vm-never-ready": "every VM of the pool stays Scheduling (sim.vmbuild.dev/never-ready), readyTimeout 3s",
  "podman-unreachable": "SIGSTOP the VM's podman service for 8 s (connections hang), then SIGCONT",
};

/** How the run is held in the phase when the fault hits. */
export const PHASE_DESCRIPTIONS: Record<Phase, string> = {
  queued: "a 1-VM pool whose VM boots in 8 s is leased by another run; the run waits (WaitingForVM)",
  starting: "the VM boots in 8 s (sim.vmbuild.dev/boot-delay-ms); podman faults hit as soon as its service starts",
  building: "`RUN sleep 20`; the fault hits at STEP 2/2",
  pushing: "a 100 MB random layer, so the push lasts a few seconds; the fault hits at Pushing",
  scratching: "the fault hits as soon as the run reports Scratching (build and push done)",
};

/** What decide/build.ts puts first when the caches show the run's VM instance gone or going. */
const INSTANCE_GONE = (stage: "build" | "push") => `(VM \\S+'s instance (is being deleted|was deleted|failed) during the ${stage}: )?`;

export interface Expected {
  /** The Succeeded condition's reason at the end. */
  reason: string;
  /** The condition's message must match (e.g. name the error). */
  message?: RegExp;
  /** Transparent re-runs after a lost controller (extraFields.recoveries); none unless said, retries never used. */
  recoveries?: number;
}

export interface ApplicableCell {
  fault: Fault;
  phase: Phase;
  expect: Expected;
  why: string;
}
export interface NotApplicableCell {
  fault: Fault;
  phase: Phase;
  notApplicable: string;
}
export type Cell = ApplicableCell | NotApplicableCell;

const succeeds = (why: string) => ({ expect: { reason: "Succeeded" }, why });

const TABLE: Record<Fault, Record<Phase, Omit<Cell, "fault" | "phase">>> = {
  "controller-kill": {
    queued: succeeds("queue position and lease state live in the API; the new leader carries on"),
    starting: {
      expect: { reason: "Succeeded", recoveries: 1 },
      why: "the lost process may have begun the build on the VM: the new replica scratches it and runs the attempt again on a fresh VM",
    },
    building: {
      expect: { reason: "Succeeded", recoveries: 1 },
      why: "the build job lived in the dead process: the new replica scratches its VM and runs the attempt again (Recovering), spec.retries untouched",
    },
    pushing: {
      expect: { reason: "Succeeded", recoveries: 1 },
      why: "the push is part of the lost job, as in building",
    },
    scratching: succeeds("the outcome is already recorded in extraFields; the new leader finishes the scratch and writes it"),
  },
  "apiserver-restart": {
    queued: succeeds("informers relist and rewatch; nothing was in flight"),
    starting: succeeds("informers relist and see the VMI become Ready"),
    building: succeeds("the job talks to podman, not to the API; status writes resume after the restart"),
    pushing: succeeds("as in building: the push is between podman and the registry"),
    scratching: succeeds("the VM stop and VMI delete are retried until the API answers"),
  },
  "etcd-restart": {
    queued: succeeds("the API server answers errors meanwhile; as for an API server restart"),
    starting: succeeds("as for an API server restart"),
    building: succeeds("as for an API server restart"),
    pushing: succeeds("as for an API server restart"),
    scratching: succeeds("as for an API server restart"),
  },
  "podman-killed": {
    queued: { notApplicable: "a queued run holds no VM: there is no podman of its own to kill" },
    starting: succeeds("the VMI fails before podman answered; KubeVirt (the stand-in) boots a new one for the running VM"),
    // The stand-in's VM is its podman service: the instance fails and goes with it, and the message says so first
    // when the informer has shown that by the time the job's failure is decided on.
    building: {
      expect: { reason: "BuildFailed", message: new RegExp(`^${INSTANCE_GONE("build")}podman POST \\S+/build at ssh://\\S+: HTTP 200: the build's output broke off`) },
      why: "the build's output stream breaks off; the message names the VM's instance gone, podman, the VM's endpoint and the error",
    },
    pushing: {
      expect: { reason: "PushFailed", message: new RegExp(`^${INSTANCE_GONE("push")}podman POST \\S+/registry/\\S+ at ssh://\\S+: no response`) },
      why: "the push request gets no answer; the message names the VM's instance gone, podman, the VM's endpoint and the error",
    },
    scratching: succeeds("the VM is being thrown away anyway; the image is pushed"),
  },
  "registry-down": {
    queued: { notApplicable: "a queued run talks to no registry; a registry down later is the building/pushing cells" },
    starting: { notApplicable: "starting a VM talks to no registry (the FROM pull happens in building)" },
    building: succeeds("down while RUN executes (after the FROM pull) and back before the push: nothing notices"),
    pushing: {
      expect: { reason: "PushFailed", message: /^podman POST \S+\/registry\/\S+ at ssh:\/\/\S+: HTTP \d+: pushing image/ },
      why: "the registry refuses connections during the push; podman's error is the message, the VM is scratched",
    },
    scratching: { notApplicable: "after the push nothing talks to the registry (the digest check is part of the push)" },
  },
  "vm-never-ready": {
    queued: { notApplicable: "readiness is a property of a leased VM: the starting cell" },
    starting: {
      expect: { reason: "VMNotReady", message: /builders-0 .*builders-1/ },
      why: "the first VM is scratched after readyTimeout, one other VM is tried, then VMNotReady names both",
    },
    building: { notApplicable: "the VM was ready already; a VM that stops answering is podman-unreachable/killed" },
    pushing: { notApplicable: "the VM was ready already" },
    scratching: { notApplicable: "the VM was ready already" },
  },
  "podman-unreachable": {
    queued: { notApplicable: "a queued run holds no VM" },
    starting: succeeds("VMI readiness and the controller's ping wait through the stall (readyTimeout 10m)"),
    building: succeeds("the build stream stalls for 8 s and resumes (undici's body timeout is 5 min)"),
    pushing: succeeds("the push stalls and resumes"),
    scratching: succeeds("the scratch stops the VM through the API and kills its processes; podman's answers are not needed"),
  },
};

export const CELLS: readonly Cell[] = PHASES.flatMap((phase) =>
  FAULTS.map((fault) => ({ fault, phase, ...TABLE[fault][phase] }) as Cell),
);

export function cellName(c: { fault: Fault; phase: Phase }): string {
  return `${c.fault} × ${c.phase}`;
}

function applicable(fault: Fault, phase: Phase): ApplicableCell {
  const found = CELLS.find((c) => c.fault === fault && c.phase === phase);
  if (!found || "notApplicable" in found) throw new Error(`${fault} × ${phase} is not an applicable cell`);
  return found;
}

/**
 * What `npm test` runs: one cell per kind of fault where it bites hardest, quick ones first. The whole matrix is
 * `npm run test:faults`.
 */
export const REPRESENTATIVE: readonly ApplicableCell[] = [
  applicable("controller-kill", "scratching"),
  applicable("controller-kill", "building"),
  applicable("etcd-restart", "building"),
  applicable("podman-killed", "building"),
  applicable("registry-down", "pushing"),
  applicable("vm-never-ready", "starting"),
  applicable("podman-unreachable", "building"),
];
