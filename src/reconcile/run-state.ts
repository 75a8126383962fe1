import { z } from "zod";
import { ConditionSchema, ResultSchema } from "../tekton/customrun.js";

// What the controller keeps in status.extraFields: enough for a restarted controller to continue every run
// without memory. The leases in the API stay the truth about which VM a run holds.

export const PHASES = ["Queued", "Starting", "Building", "Scratching", "Done"] as const;
export type Phase = (typeof PHASES)[number];

const Outcome = z.object({
  condition: ConditionSchema,
  results: z.array(ResultSchema).default([]),
  /** "retryVM": after the scratch, queue again for one other VM (the first never got ready). */
  next: z.enum(["finish", "retryVM"]).default("finish"),
});

export const RunStateSchema = z.object({
  phase: z.enum(PHASES),
  attempt: z.number().int().min(0),
  pool: z.string(),
  queuedAt: z.string(),
  phaseSince: z.string(),
  vm: z.string().optional(),
  /** NAMESPACE/NAME of the VM's Lease, for whoever looks at the run. */
  lease: z.string().optional(),
  leasedAt: z.string().optional(),
  tried: z.array(z.object({ vm: z.string(), lastSeen: z.string() })).default([]),
  outcome: Outcome.optional(),
});

export type RunState = z.infer<typeof RunStateSchema>;
export type Outcome = z.infer<typeof Outcome>;

export function readRunState(extraFields: unknown): RunState | undefined {
  const parsed = RunStateSchema.safeParse(extraFields);
  return parsed.success ? parsed.data : undefined;
}
