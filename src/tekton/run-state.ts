import { z } from "zod";
import { ConditionSchema, ParamSchema, ResultSchema } from "./customrun.js";
import { parseOnce } from "../kube/parse-once.js";

// What the controller keeps in status.extraFields: enough for a restarted controller to continue every run
// without memory. The leases in the API stay the truth about which VM a run holds.

export const PHASES = ["Queued", "Starting", "Building", "Scratching", "Done"] as const;
export type Phase = (typeof PHASES)[number];

const Outcome = z.object({
  condition: ConditionSchema,
  results: z.array(ResultSchema).default([]),
  /**
   * After the scratch: "retryVM" queues again for other VMs (one never got ready); "requeue" queues again as before
   * (only part of the run's VMs could be leased, or the replica executing it was lost).
   */
  next: z.enum(["finish", "retryVM", "requeue"]).default("finish"),
});

const SlotStateSchema = z.object({
  platforms: z.array(z.string()),
  /** NAMESPACE/NAME of the pool this slot's VM comes from. */
  pool: z.string(),
  vm: z.string().optional(),
  /** NAMESPACE/NAME of the VM's Lease, for whoever looks at the run. */
  lease: z.string().optional(),
});

/** Runs written by 0.1 (one VM, fields at the top) read as one slot, so an upgrade mid-run carries on. */
const fromSingleVM = (raw: unknown) => {
  if (typeof raw !== "object" || raw === null || "slots" in raw || !("pool" in raw)) return raw;
  const { pool, vm, lease, ...rest } = raw as Record<string, unknown>;
  return { ...rest, slots: [{ platforms: [], pool, ...(vm ? { vm } : {}), ...(lease ? { lease } : {}) }] };
};

export const RunStateSchema = z.preprocess(
  fromSingleVM,
  z.object({
    phase: z.enum(PHASES),
    attempt: z.number().int().min(0),
    /** One per VM the run needs: one for strategy single, one per platform for fanout. */
    slots: z.array(SlotStateSchema).min(1),
    queuedAt: z.string(),
    phaseSince: z.string(),
    leasedAt: z.string().optional(),
    tried: z.array(z.object({ vm: z.string(), lastSeen: z.string() })).default([]),
    outcome: Outcome.optional(),
    /** The replica executing the run (from Starting to the end of its scratch); no other acts on it while it lives. */
    owner: z.string().optional(),
    /** How often the run was run again because the replica executing it was lost (not counted in spec.retries). */
    recoveries: z.number().int().min(0).optional(),
    /**
     * The spec of the VMBuild the run names (or embeds), as it was when the run was admitted. Tekton keeps a
     * TaskRun's taskSpec the same way: editing or deleting the VMBuild does not reach a run under way.
     */
    vmbuild: z.record(z.string(), z.unknown()).optional(),
    /** The run's params at admission: Tekton's webhook refuses edits of a started TaskRun, none of a CustomRun. */
    params: z.array(ParamSchema).optional(),
  }),
);

export type RunState = z.output<typeof RunStateSchema>;
export type SlotState = z.infer<typeof SlotStateSchema>;
export type Outcome = z.infer<typeof Outcome>;

const parseRunState = parseOnce(RunStateSchema);

export function readRunState(extraFields: unknown): RunState | undefined {
  const parsed = parseRunState(extraFields);
  return parsed.success ? parsed.data : undefined;
}

/** The VMs the run's status names, in slot order. */
export function stateVMs(state: RunState): string[] {
  return state.slots.flatMap((slot) => (slot.vm ? [slot.vm] : []));
}

/** The pools the run's slots come from, each once. */
export function statePools(state: RunState): string[] {
  return [...new Set(state.slots.map((slot) => slot.pool))];
}
