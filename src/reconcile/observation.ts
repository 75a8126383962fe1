import type { BuildSettings } from "../api/settings.js";
import type { Param } from "../api/resolve.js";
import type { Slot } from "./plan.js";
import type { WarmConfig } from "../pools/warm.js";
import type { VMView } from "../kubevirt/vm.js";
import type { JobView } from "../jobs/jobs.js";

// What observe() read from the caches for one run: the input of decide(), with no I/O behind it.

export type PoolObservation =
  | {
      found: true;
      namespace: string;
      name: string;
      vms: VMView[];
      /** The template's spec.template.spec.architecture, if set. */
      architecture?: string;
      warm?: WarmConfig;
      /** Why the pool's transport annotations are unusable (a run cannot start on it); absent when they are fine. */
      transportProblem?: string;
    }
  | { found: false; reason: "PoolNotFound" | "PoolNotAllowed"; message: string };

/** What a run's settings were resolved from, kept in its state from admission on. */
export interface SettingsInputs {
  /** The spec of the VMBuild the run names or embeds. */
  vmbuild?: Record<string, unknown>;
  params: Param[];
}

export type SettingsObservation =
  | { ok: true; settings: BuildSettings; inputs: SettingsInputs }
  | { ok: false; reason: "InvalidParams" | "VMBuildNotFound"; message: string };

export type PlanObservation =
  | { ok: true; slots: Slot[] }
  | { ok: false; reason: "InvalidParams" | "PoolNotFound" | "PoolNotAllowed" | "PoolMisconfigured"; message: string };

export interface Observation {
  now: Date;
  /** Base URL of the controller's HTTP server as users reach it: LOG_URL is under it. */
  publicURL: string;
  settings: SettingsObservation;
  /** The VMs the run needs, from its settings and pools; undefined when settings are invalid. */
  plan?: PlanObservation;
  /** Every pool the plan or the run's status names, by NAMESPACE/NAME. */
  pools: Record<string, PoolObservation>;
  /**
   * VMs the run's status names that their pool does not list (the VM or the pool was deleted), as still seen by
   * name: a VM no pool owns now, an instance left behind, or only their Lease. By NAMESPACE/VM; what a scratch
   * works from when the pool no longer shows the VM.
   */
  unpooled?: Record<string, VMView>;
  /** Per slot of the run's status: the VM whose lease the current attempt holds there. */
  held: (string | undefined)[];
  /** Leases the attempt holds beyond its slots (two replicas raced, or a lost status write): given back. */
  extraLeases?: { pool: string; vm: string }[];
  /** Per pool: how many of its free VMs the runs ahead of this one in the fair queue take first. */
  demandAhead: Record<string, number>;
  /** The build job of this run's current attempt, if this controller process runs one. */
  job?: JobView;
  /** This replica and the run's owner as it sees them; undefined: a lone replica that owns every run. */
  replica?: ReplicaObservation;
}

export interface ReplicaObservation {
  /** This replica's identity. */
  me: string;
  /** The replica named as the run's owner still renews its Lease (always true for `me`). */
  ownerAlive: boolean;
  /** Who executes the run once it leaves the queue: the least loaded replica that is alive and not draining. */
  assignee: string;
}
