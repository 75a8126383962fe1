import { z } from "zod";
import { positionOf } from "../lease/fair-queue.js";
import { holderIdentity, leaseName } from "../lease/holder.js";
import { overrides, resolveSettings, type Param } from "../api/resolve.js";
import { runKey, type CustomRun, type ParsedRun } from "../tekton/customrun.js";
import type { Observation, PlanObservation, PoolObservation, SettingsObservation } from "./observation.js";
import type { JobId, JobView } from "../jobs/jobs.js";
import { readRunState, type RunState, type SlotState } from "../tekton/run-state.js";
import { planSlots, type NativePool } from "./plan.js";
import { poolKey, splitPoolKey } from "../kubevirt/pool-key.js";
import { readWarmConfig } from "../pools/warm.js";
import { parsePoolTransport, PoolTransportError } from "../podman/pool-transport.js";
import type { BuildSettings } from "../api/settings.js";
import { cachedVM, poolVMs, type Caches } from "../cache/caches.js";
import type { VMView } from "../kubevirt/vm.js";
import { readVMLease } from "../lease/leases.js";
import type { Replicas } from "../cache/replicas.js";
import { parseOnce } from "../kube/parse-once.js";

// observe: read the caches (never the API) into the input of decide().

/** Pools shared across namespaces list the namespaces that may use them (comma-separated, or "*"). */
export const ALLOWED_NAMESPACES_ANNOTATION = "vmbuild.dev/allowed-namespaces";

const PoolSchema = z.object({
  metadata: z.object({ name: z.string(), namespace: z.string(), annotations: z.record(z.string(), z.string()).optional() }),
  spec: z
    .object({
      virtualMachineTemplate: z
        .object({
          spec: z
            .object({
              template: z
                .object({ spec: z.object({ architecture: z.string().optional() }).default({}) })
                .default({ spec: {} }),
            })
            .default({ template: { spec: {} } }),
        })
        .default({ spec: { template: { spec: {} } } }),
    })
    .default({ virtualMachineTemplate: { spec: { template: { spec: {} } } } }),
});
const VMBuildSchema = z.object({ spec: z.unknown().optional() });
const parsePool = parseOnce(PoolSchema);

/**
 * A run's settings, per parsed run and the VMBuild object it names: a run is reconciled at every event that
 * concerns it, its spec only changes with a new copy (and parseRun keeps one parse per copy).
 */
const resolved = new WeakMap<CustomRun, { vmbuild: unknown; settings: SettingsObservation }>();

/** Where observe reads from: the caches, this process's build jobs, the time, and the controller's own address. */
export interface ObserveSources {
  caches: Caches;
  job: (id: JobId) => JobView | undefined;
  now: Date;
  publicURL: string;
  /** The replicas as this one sees them; absent for a lone replica. */
  replicas?: Pick<Replicas, "me" | "alive" | "assignee">;
}

export function observe(parsed: ParsedRun & { run: CustomRun }, sources: ObserveSources): Observation {
  const { run, problem } = parsed;
  const { caches, job, now, publicURL, replicas } = sources;
  const state = readRunState(run.status?.extraFields);
  const attempt = state?.attempt ?? 0;
  // A run under way goes on with the params it kept, whatever they were edited into since.
  const settings: SettingsObservation =
    problem && !(parsed.paramsOnly && state?.params)
      ? { ok: false, reason: "InvalidParams", message: `the CustomRun's spec is malformed: ${problem}` }
      : settingsOf(run, caches, state);
  const pools: Record<string, PoolObservation> = {};
  const lookup = (key: string): PoolObservation => (pools[key] ??= poolOf(run, key, caches));
  const plan = settings.ok ? planOf(run, settings.settings, lookup) : undefined;
  const slots = state?.slots ?? (plan?.ok ? plan.slots : []);
  for (const slot of slots) lookup(slot.pool);
  const unpooled = unpooledVMs(state?.slots ?? [], pools, caches);
  const vms = state?.slots.map((s) => s.vm).filter((vm): vm is string => vm !== undefined) ?? [];
  const jobView = state && vms.length === state.slots.length ? job({ uid: run.metadata.uid, attempt, vms }) : undefined;
  // Only a run that may take VMs needs its place in the queues; building runs skip the scan of all runs.
  const demandAhead: Record<string, number> = {};
  if (state?.phase !== "Building") {
    for (const key of new Set(slots.map((s) => s.pool))) {
      if (pools[key]?.found) demandAhead[key] = demandAheadOf(run, key, caches);
    }
  }
  return {
    now,
    publicURL,
    settings,
    ...(plan ? { plan } : {}),
    pools,
    ...(unpooled ? { unpooled } : {}),
    ...heldLeases(run, attempt, slots, pools, unpooled),
    demandAhead,
    ...(jobView ? { job: jobView } : {}),
    ...(replicas
      ? {
          replica: {
            me: replicas.me,
            ownerAlive: state?.owner !== undefined && replicas.alive(state.owner),
            // Only a run about to take VMs is handed to a replica.
            assignee: !state || state.phase === "Queued" ? replicas.assignee() : replicas.me,
          },
        }
      : {}),
  };
}

function planOf(run: CustomRun, settings: BuildSettings, lookup: (key: string) => PoolObservation): PlanObservation {
  const namespace = run.metadata.namespace;
  const emulation = settings.pool ? poolKey(settings.pool, namespace) : undefined;
  const natives = settings.nativePools.map((ref) => poolKey(ref, namespace));
  for (const key of [...(emulation ? [emulation] : []), ...natives]) {
    const pool = lookup(key);
    if (!pool.found) return { ok: false, reason: pool.reason, message: pool.message };
    // Found before a VM is leased and booted for nothing.
    if (pool.transportProblem) return { ok: false, reason: "PoolMisconfigured", message: pool.transportProblem };
  }
  const natived = natives.map((key): NativePool => {
    const pool = lookup(key);
    return { key, architecture: pool.found ? pool.architecture : undefined };
  });
  const plan = planSlots(settings, emulation, natived);
  return plan.ok ? plan : { ok: false, reason: "InvalidParams", message: plan.message };
}

/**
 * A run under way goes on with the VMBuild spec and params its state kept at admission; a new run (or one
 * admitted before params were kept) reads them from its spec and the cache.
 */
function settingsOf(run: CustomRun, caches: Caches, state: RunState | undefined): SettingsObservation {
  const { customRef, customSpec } = run.spec;
  const params = state?.params ?? run.spec.params;
  const vmbuild =
    state?.vmbuild ?? (customRef?.name ? caches.vmbuilds.get(customRef.name, run.metadata.namespace) : customSpec);
  const known = resolved.get(run);
  if (known && known.vmbuild === vmbuild) return known.settings;
  const settings = resolveSettingsOf(run, vmbuild, state?.vmbuild !== undefined, params);
  resolved.set(run, { vmbuild, settings });
  return settings;
}

function resolveSettingsOf(run: CustomRun, vmbuild: unknown, admitted: boolean, params: Param[]): SettingsObservation {
  const name = run.spec.customRef?.name;
  if (name && !vmbuild) {
    return {
      ok: false,
      reason: "VMBuildNotFound",
      message: `VMBuild "${name}" not found in namespace ${run.metadata.namespace}.`,
    };
  }
  const spec = admitted ? vmbuild : VMBuildSchema.parse(vmbuild ?? {}).spec;
  const resolution = resolveSettings(spec, params);
  if (!resolution.ok) return resolution;
  return { ...resolution, inputs: { ...(spec ? { vmbuild: notOverridden(spec as Record<string, unknown>, params) } : {}), params } };
}

/**
 * The spec's fields that no param overrides: only what was validated is kept in the status, so a field the params
 * replace (of any size) cannot push the run past what etcd takes.
 */
function notOverridden(spec: Record<string, unknown>, params: readonly Param[]): Record<string, unknown> {
  const given = new Set(params.filter(overrides).map((p) => p.name));
  return Object.fromEntries(Object.entries(spec).filter(([key]) => !given.has(key)));
}

function poolOf(run: CustomRun, key: string, caches: Caches): PoolObservation {
  const { namespace, name } = splitPoolKey(key);
  const raw = caches.pools.get(name, namespace);
  const parsed = parsePool(raw);
  if (!raw || !parsed.success) {
    return { found: false, reason: "PoolNotFound", message: `VirtualMachinePool ${namespace}/${name} not found.` };
  }
  const annotations = parsed.data.metadata.annotations;
  if (namespace !== run.metadata.namespace) {
    const allowed = (annotations?.[ALLOWED_NAMESPACES_ANNOTATION] ?? "").split(",").map((s) => s.trim());
    if (!allowed.includes("*") && !allowed.includes(run.metadata.namespace)) {
      return {
        found: false,
        reason: "PoolNotAllowed",
        message: `VirtualMachinePool ${namespace}/${name} does not allow namespace ${run.metadata.namespace} (annotation ${ALLOWED_NAMESPACES_ANNOTATION}).`,
      };
    }
  }
  const architecture = parsed.data.spec.virtualMachineTemplate.spec.template.spec.architecture;
  const { config: warm } = readWarmConfig(annotations);
  const transportProblem = transportProblemOf(key, annotations ?? {});
  return {
    found: true,
    namespace,
    name,
    vms: poolVMs(caches, namespace, name),
    ...(architecture ? { architecture } : {}),
    ...(warm ? { warm } : {}),
    ...(transportProblem ? { transportProblem } : {}),
  };
}

function transportProblemOf(key: string, annotations: Readonly<Record<string, string>>): string | undefined {
  try {
    parsePoolTransport(key, annotations);
    return undefined;
  } catch (err) {
    if (err instanceof PoolTransportError) return err.message;
    throw err;
  }
}

/** The slots' VMs their pool does not list (or whose pool is gone), as seen by name, with their Leases. */
function unpooledVMs(
  slots: readonly SlotState[],
  pools: Record<string, PoolObservation>,
  caches: Caches,
): Record<string, VMView> | undefined {
  let unpooled: Record<string, VMView> | undefined;
  for (const { pool, vm } of slots) {
    const found = pools[pool];
    if (!vm || (found?.found && found.vms.some((v) => v.name === vm))) continue;
    const { namespace } = splitPoolKey(pool);
    const lease = readVMLease(caches.leases.get(leaseName(vm), namespace));
    const seen = cachedVM(caches, namespace, vm);
    if (!seen && !lease?.holder) continue;
    (unpooled ??= {})[`${namespace}/${vm}`] = {
      ...(seen ?? { name: vm, wantsRunning: false }),
      ...(lease?.holder ? { leaseHolder: lease.holder } : {}),
    };
  }
  return unpooled;
}

/**
 * Per slot, the VM whose lease this attempt holds: the one the status names, else (a status write lost after the
 * lease was taken) one of the attempt's unclaimed leases in the slot's pool. Leases beyond that are extra.
 */
function heldLeases(
  run: CustomRun,
  attempt: number,
  slots: readonly SlotState[],
  pools: Record<string, PoolObservation>,
  unpooled: Record<string, VMView> | undefined,
): Pick<Observation, "held" | "extraLeases"> {
  const me = holderIdentity(run.metadata, attempt);
  const mine = new Map<string, string[]>();
  for (const [key, pool] of Object.entries(pools)) {
    if (pool.found) mine.set(key, pool.vms.filter((v) => v.leaseHolder === me).map((v) => v.name));
  }
  for (const slot of slots) {
    const seen = slot.vm ? unpooled?.[`${splitPoolKey(slot.pool).namespace}/${slot.vm}`] : undefined;
    if (seen?.leaseHolder === me) mine.set(slot.pool, [...(mine.get(slot.pool) ?? []), seen.name]);
  }
  const take = (pool: string, vm?: string): string | undefined => {
    const list = mine.get(pool) ?? [];
    const at = vm === undefined ? 0 : list.indexOf(vm);
    return at >= 0 && at < list.length ? list.splice(at, 1)[0] : undefined;
  };
  const held = slots.map((slot) => (slot.vm ? take(slot.pool, slot.vm) : undefined));
  slots.forEach((slot, i) => {
    if (!slot.vm && held[i] === undefined) held[i] = take(slot.pool);
  });
  const extraLeases = [...mine].flatMap(([pool, vms]) => vms.map((vm) => ({ pool, vm })));
  return extraLeases.length > 0 ? { held, extraLeases } : { held };
}

function demandAheadOf(run: CustomRun, pool: string, caches: Caches): number {
  const queue = caches.queue(pool);
  const at = positionOf(runKey(run), queue.map((w) => w.key));
  return queue.slice(0, at).reduce((sum, w) => sum + w.demand, 0);
}

