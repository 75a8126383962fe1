import type { BuildSettings } from "../spec/settings.js";
import type { FailureReason } from "../tekton/reasons.js";
import type { RunResult } from "../tekton/customrun.js";

// What observe() read from the caches for one run: the input of decide(), with no I/O behind it.

export interface VMView {
  name: string;
  /** The VM's spec asks KubeVirt to run it (runStrategy Always/RerunOnFailure, or running: true). */
  wantsRunning: boolean;
  vmi?: {
    phase: string;
    ready: boolean;
    address?: string;
    deleting: boolean;
  };
  /** Holder identity of the VM's lease, if leased. */
  leaseHolder?: string;
}

export type PoolObservation =
  | { found: true; namespace: string; name: string; vms: VMView[] }
  | { found: false; reason: "PoolNotFound" | "PoolNotAllowed"; message: string };

export type SettingsObservation =
  | { ok: true; settings: BuildSettings }
  | { ok: false; reason: "InvalidParams" | "VMBuildNotFound"; message: string };

export type JobStage = "connecting" | "fetching" | "building" | "pushing";

export type JobView =
  | { state: "running"; stage: JobStage; detail: string }
  | { state: "succeeded"; results: RunResult[]; summary: string; durations?: { buildMs: number; pushMs: number } }
  | { state: "failed"; stage: JobStage; reason: FailureReason; message: string };

export interface Observation {
  now: Date;
  settings: SettingsObservation;
  /** Undefined when settings are invalid: the pool is not looked at then. */
  pool?: PoolObservation;
  /** The VM whose lease the run's current attempt holds, found by holder identity. */
  heldLease?: string;
  /** Further VMs leased by the same attempt: only possible when two replicas acted at once. Given back. */
  extraLeases?: string[];
  /** Runs ahead of this one in the pool's fair queue. */
  queueAhead: number;
  /** The build job of this run's current attempt, if this controller process runs one. */
  job?: JobView;
}
