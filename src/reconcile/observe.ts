import type { KubernetesObject, ObjectCache } from "@kubernetes/client-node";
import { z } from "zod";
import { fairOrder, positionOf, type Waiting } from "../lease/fair-queue.js";
import { holderIdentity, leaseName } from "../lease/holder.js";
import { readVMLease } from "../lease/leases.js";
import { belongsToPool, vmView, VirtualMachineSchema, VMISchema } from "../kubevirt/vm.js";
import { resolveSettings } from "../spec/resolve.js";
import { CustomRunSchema, runKey, type CustomRun } from "../tekton/customrun.js";
import type { JobView, Observation, PoolObservation, SettingsObservation, VMView } from "./observation.js";
import type { JobId } from "../build/jobs.js";
import { readRunState } from "./run-state.js";

// observe: read the caches (never the API) into the input of decide().

export interface Caches {
  runs: ObjectCache<KubernetesObject>;
  vmbuilds: ObjectCache<KubernetesObject>;
  pools: ObjectCache<KubernetesObject>;
  vms: ObjectCache<KubernetesObject>;
  vmis: ObjectCache<KubernetesObject>;
  leases: ObjectCache<KubernetesObject>;
}

/** Pools shared across namespaces list the namespaces that may use them (comma-separated, or "*"). */
export const ALLOWED_NAMESPACES_ANNOTATION = "vmbuild.dev/allowed-namespaces";

const PoolSchema = z.object({
  metadata: z.object({ name: z.string(), namespace: z.string(), annotations: z.record(z.string(), z.string()).optional() }),
});
const VMBuildSchema = z.object({ spec: z.unknown().optional() });

export type ParsedRun = { run: CustomRun; problem?: string } | { run?: undefined; problem: string };

/**
 * Validates a CustomRun at the edge. A run whose spec is malformed (e.g. params of the wrong type) is still
 * returned, without params, with the problem to report; only unreadable metadata or status makes it unusable.
 */
export function parseRun(raw: unknown): ParsedRun {
  const parsed = CustomRunSchema.safeParse(raw);
  if (parsed.success) return { run: parsed.data };
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
      ...pick("timeout"),
    },
  });
  return salvaged.success ? { run: salvaged.data, problem } : { problem };
}

export function observe(
  run: CustomRun,
  problem: string | undefined,
  caches: Caches,
  job: (id: JobId) => JobView | undefined,
  now: Date,
): Observation {
  const state = readRunState(run.status?.extraFields);
  const attempt = state?.attempt ?? 0;
  const settings: SettingsObservation = problem
    ? { ok: false, reason: "InvalidParams", message: `the CustomRun's spec is malformed: ${problem}` }
    : settingsOf(run, caches);
  const pool = settings.ok ? poolOf(run, settings.settings.pool, caches) : undefined;
  const poolKey = pool?.found ? `${pool.namespace}/${pool.name}` : undefined;
  const jobView = state?.vm ? job({ uid: run.metadata.uid, attempt, vm: state.vm }) : undefined;
  return {
    now,
    settings,
    ...(pool ? { pool } : {}),
    ...(pool?.found ? heldLeases(run, attempt, state?.vm, pool) : {}),
    // Only a run that may take a VM needs its place in the queue; building runs skip the scan of all runs.
    queueAhead: poolKey && state?.phase !== "Building" ? queueAhead(run, poolKey, caches) : 0,
    ...(jobView ? { job: jobView } : {}),
  };
}

function settingsOf(run: CustomRun, caches: Caches): SettingsObservation {
  const { customRef, customSpec } = run.spec;
  let spec: unknown = customSpec?.spec;
  if (customRef?.name) {
    const raw = caches.vmbuilds.get(customRef.name, run.metadata.namespace);
    if (!raw) {
      return {
        ok: false,
        reason: "VMBuildNotFound",
        message: `VMBuild "${customRef.name}" not found in namespace ${run.metadata.namespace}.`,
      };
    }
    spec = VMBuildSchema.parse(raw).spec;
  }
  return resolveSettings(spec, run.spec.params);
}

function poolOf(run: CustomRun, ref: string, caches: Caches): PoolObservation {
  const [namespace, name] = ref.includes("/") ? (ref.split("/") as [string, string]) : [run.metadata.namespace, ref];
  const raw = caches.pools.get(name, namespace);
  const parsed = PoolSchema.safeParse(raw);
  if (!raw || !parsed.success) {
    return { found: false, reason: "PoolNotFound", message: `VirtualMachinePool ${namespace}/${name} not found.` };
  }
  if (namespace !== run.metadata.namespace) {
    const allowed = (parsed.data.metadata.annotations?.[ALLOWED_NAMESPACES_ANNOTATION] ?? "")
      .split(",")
      .map((s) => s.trim());
    if (!allowed.includes("*") && !allowed.includes(run.metadata.namespace)) {
      return {
        found: false,
        reason: "PoolNotAllowed",
        message: `VirtualMachinePool ${namespace}/${name} does not allow namespace ${run.metadata.namespace} (annotation ${ALLOWED_NAMESPACES_ANNOTATION}).`,
      };
    }
  }
  return { found: true, namespace, name, vms: poolVMs(caches, namespace, name) };
}

/** The pool's VMs as the controller sees them: each with its VMI and its lease's holder. Shared with the web view. */
export function poolVMs(caches: Pick<Caches, "vms" | "vmis" | "leases">, namespace: string, pool: string): VMView[] {
  return caches.vms
    .list(namespace)
    .map((raw) => VirtualMachineSchema.safeParse(raw))
    .flatMap((r) => (r.success && belongsToPool(r.data, pool) ? [r.data] : []))
    .map((vm) => {
      const vmiParsed = VMISchema.safeParse(caches.vmis.get(vm.metadata.name, namespace));
      const holder = readVMLease(caches.leases.get(leaseName(vm.metadata.name), namespace))?.holder;
      return vmView(vm, vmiParsed.success ? vmiParsed.data : undefined, holder || undefined);
    });
}

/** The lease this attempt holds (the VM its status names, if leased), and any others it should not hold. */
function heldLeases(
  run: CustomRun,
  attempt: number,
  named: string | undefined,
  pool: PoolObservation & { found: true },
): { heldLease?: string; extraLeases?: string[] } {
  const me = holderIdentity(run.metadata, attempt);
  const mine = pool.vms.filter((v) => v.leaseHolder === me).map((v) => v.name);
  const held = named && mine.includes(named) ? named : mine[0];
  if (!held) return {};
  const extra = mine.filter((vm) => vm !== held);
  return extra.length > 0 ? { heldLease: held, extraLeases: extra } : { heldLease: held };
}

function queueAhead(run: CustomRun, pool: string, caches: Caches): number {
  return positionOf(runKey(run), poolQueue(pool, caches.runs.list()));
}

/** The pool's waiting runs ("namespace/name"), first served first. Shared with the web view, so both agree. */
export function poolQueue(pool: string, runs: Iterable<unknown>): string[] {
  const waiting: Waiting[] = [];
  const lastServed = new Map<string, string>();
  for (const raw of runs) {
    const other = raw as { metadata?: { namespace?: string; name?: string }; status?: { extraFields?: unknown; completionTime?: string } };
    const st = readRunState(other.status?.extraFields);
    const ns = other.metadata?.namespace;
    if (!st || st.pool !== pool || !ns || !other.metadata?.name) continue;
    if (st.leasedAt && (lastServed.get(ns) ?? "") < st.leasedAt) lastServed.set(ns, st.leasedAt);
    if (st.phase === "Queued" && !other.status?.completionTime) {
      waiting.push({ key: `${ns}/${other.metadata.name}`, namespace: ns, queuedAt: st.queuedAt });
    }
  }
  return fairOrder(waiting, lastServed);
}
