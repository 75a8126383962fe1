import { z } from "zod";
import { isObjectName } from "../api/names.js";
import { VMBUILD_API_VERSION, VMBUILD_KIND } from "../api/vmbuild.js";
import { oncePerObject } from "../kube/parse-once.js";
import { parseDuration } from "../timing/duration.js";

/** Held on every run we started, so a deleted run still gets its VM scratched. */
export const FINALIZER = "vmbuild.dev/scratch-vm";

/** A CustomRun `spec.workspaces[]` entry; only Secret-backed bindings can carry a docker config. */
export const WorkspaceBindingSchema = z.looseObject({
  name: z.string(),
  secret: z
    .looseObject({
      secretName: z.string().refine(isObjectName, { message: "expected the name of a Secret in the run's namespace" }).optional(),
      items: z.array(z.looseObject({ key: z.string(), path: z.string() })).optional(),
    })
    .optional(),
});
export type WorkspaceBinding = z.infer<typeof WorkspaceBindingSchema>;

const Ref = z.object({ apiVersion: z.string().optional(), kind: z.string().optional() });

/** Just enough to tell whether a CustomRun is ours, before trusting anything else in it. */
const Addressed = z.object({
  metadata: z.object({ name: z.string(), namespace: z.string(), uid: z.string() }),
  spec: z
    .object({
      customRef: Ref.extend({ name: z.string().optional() }).optional(),
      customSpec: Ref.optional(),
    })
    .optional(),
});

export function isOurs(obj: unknown): boolean {
  const parsed = Addressed.safeParse(obj);
  if (!parsed.success) return false;
  const ref = parsed.data.spec?.customRef ?? parsed.data.spec?.customSpec;
  return ref?.apiVersion === VMBUILD_API_VERSION && ref.kind === VMBUILD_KIND;
}

const ParamValue = z.union([z.string(), z.array(z.string()), z.record(z.string(), z.string())]);
export const ParamSchema = z.object({ name: z.string(), value: ParamValue });

export const ConditionSchema = z.object({
  type: z.string(),
  status: z.enum(["True", "False", "Unknown"]),
  reason: z.string().optional(),
  message: z.string().optional(),
  lastTransitionTime: z.string().optional(),
});

export const ResultSchema = z.object({ name: z.string(), value: z.string() });

// Tekton's webhook refuses a bad one; without the webhook, a run must not fall back to the default silently.
const Timeout = z
  .string()
  .refine((t) => parseDuration(t) !== undefined, { message: 'expected a duration such as "1h0m0s", "90m" or "0s" (none)' });

export const CustomRunSchema = z.object({
  metadata: z.object({
    name: z.string(),
    namespace: z.string(),
    uid: z.string(),
    generation: z.number().optional(),
    resourceVersion: z.string().optional(),
    creationTimestamp: z.string().optional(),
    deletionTimestamp: z.string().optional(),
    finalizers: z.array(z.string()).optional(),
  }),
  spec: z.object({
    customRef: z.object({ apiVersion: z.string(), kind: z.string(), name: z.string().optional() }).optional(),
    customSpec: z
      .object({ apiVersion: z.string(), kind: z.string(), spec: z.unknown().optional() })
      .optional(),
    params: z.array(ParamSchema).default([]),
    serviceAccountName: z.string().optional(),
    timeout: Timeout.optional(),
    retries: z.number().int().min(0).optional(),
    status: z.string().optional(),
    statusMessage: z.string().optional(),
    workspaces: z.array(WorkspaceBindingSchema).optional(),
  }),
  status: z
    .object({
      conditions: z.array(ConditionSchema).optional(),
      startTime: z.string().optional(),
      completionTime: z.string().optional(),
      results: z.array(ResultSchema).optional(),
      retriesStatus: z.array(z.record(z.string(), z.unknown())).optional(),
      extraFields: z.unknown().optional(),
      observedGeneration: z.number().optional(),
    })
    .optional(),
});

export type CustomRun = z.infer<typeof CustomRunSchema>;
export type Condition = z.infer<typeof ConditionSchema>;
export type RunResult = z.infer<typeof ResultSchema>;
export type RunStatus = NonNullable<CustomRun["status"]>;

export const CANCELLED_SPEC_STATUS = "RunCancelled";
/** Tekton's default when spec.timeout is absent; "0s" means no timeout. */
export const DEFAULT_TIMEOUT = "60m";

/** The run's one condition, type Succeeded (Unknown while it works). */
export function succeededCondition(status: RunStatus | undefined): Condition | undefined {
  return status?.conditions?.find((c) => c.type === "Succeeded");
}

/** Finished: its Succeeded condition is True or False, never to be rewritten. */
export function isFinished(status: RunStatus | undefined): boolean {
  const condition = succeededCondition(status);
  return condition !== undefined && condition.status !== "Unknown";
}

export function runKey(run: { metadata: { namespace: string; name: string } }): string {
  return `${run.metadata.namespace}/${run.metadata.name}`;
}

/** `paramsOnly`: every problem is in spec.params, which a run under way no longer reads (it kept them at admission). */
export type ParsedRun = { run: CustomRun; problem?: string; paramsOnly?: boolean } | { run?: undefined; problem: string };

/**
 * Validates a CustomRun at the edge. A run whose spec is malformed (e.g. params of the wrong type) is still
 * returned, without params, with the problem to report; only unreadable metadata or status makes it unusable.
 * One parse per object (oncePerObject): a run is reconciled at every event that concerns it. The result is
 * shared, so it is never to be changed in place.
 */
export const parseRun: (raw: unknown) => ParsedRun = oncePerObject(parseRunNow);

function parseRunNow(raw: unknown): ParsedRun {
  const parsed = CustomRunSchema.safeParse(raw);
  if (parsed.success) return { run: parsed.data };
  const paramsOnly = parsed.error.issues.every((i) => i.path[0] === "spec" && i.path[1] === "params");
  const problem = parsed.error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join(".")}: ${i.message}`)
    .join("; ");
  const obj = (raw ?? {}) as { spec?: Record<string, unknown> };
  const spec = obj.spec ?? {};
  const pick = (k: string) => (typeof spec[k] === "string" ? { [k]: spec[k] } : {});
  const salvaged = CustomRunSchema.safeParse({
    ...obj,
    spec: {
      customRef: spec.customRef,
      customSpec: spec.customSpec,
      ...pick("status"),
      ...pick("statusMessage"),
      ...(Timeout.safeParse(spec.timeout).success ? pick("timeout") : {}),
    },
  });
  return salvaged.success ? { run: salvaged.data, problem, paramsOnly } : { problem };
}
