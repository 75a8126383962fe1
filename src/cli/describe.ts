import { positionOf } from "../lease/fair-queue.js";
import { poolQueue } from "../cache/pool-queues.js";
import { ConditionSchema, succeededCondition, type CustomRun } from "../tekton/customrun.js";
import { readRunState, statePools, type RunState } from "../tekton/run-state.js";

// `kubectl vmbuild describe RUN`: the run as its status tells it, with its place in its pools' fair queues ranked
// by the controller's own functions over the runs the user may list. Pure.

export interface QueuePlace {
  pool: string;
  /** Runs served before this one (0: next in line). */
  ahead: number;
  waiting: number;
}

/** The runs counted: every namespace's, or only the run's own when the user may not list runs cluster-wide. */
export type RunsScope = "cluster" | { namespace: string };

/** The queued run's places, or why they are unknown (the user may not list the runs). */
export type QueueInfo = { places: readonly QueuePlace[]; scope: RunsScope } | { unknown: string };

export function queuePlaces(run: CustomRun, state: RunState | undefined, runs: Iterable<unknown>): QueuePlace[] {
  if (state?.phase !== "Queued" || run.status?.completionTime) return [];
  const all = [...runs];
  const key = `${run.metadata.namespace}/${run.metadata.name}`;
  return statePools(state).map((pool) => {
    const order = poolQueue(pool, all).map((entry) => entry.key);
    return { pool, ahead: positionOf(key, order), waiting: order.length };
  });
}

export function formatDescribe(run: CustomRun, queue: QueueInfo): string {
  const state = readRunState(run.status?.extraFields);
  const cond = succeededCondition(run.status);
  const out: string[] = [];
  const field = (name: string, value: string | number | undefined) => {
    if (value !== undefined && value !== "") out.push(`${`${name}:`.padEnd(13)}${value}`);
  };
  field("Name", run.metadata.name);
  field("Namespace", run.metadata.namespace);
  field("UID", run.metadata.uid);
  field("Status", cond ? `${cond.status}${cond.reason ? ` (${cond.reason})` : ""}` : "Unknown (not seen by the controller yet)");
  field("Message", cond?.message);
  field("Phase", state?.phase);
  field("Attempt", state ? `${state.attempt}${run.spec.retries ? ` (retries: ${run.spec.retries})` : ""}` : undefined);
  field("Owner", state?.owner);
  field("Recoveries", state?.recoveries);
  if (run.spec.status) field("Spec status", run.spec.status);
  if ("unknown" in queue) field("Queue", `unknown: ${queue.unknown}`);
  else for (const place of queue.places) {
    const where = queue.scope === "cluster" ? "" : ` (counting the runs of ${queue.scope.namespace} only: you may not list runs cluster-wide)`;
    const line = place.ahead === 0 ? "next in line" : `${place.ahead} run${place.ahead === 1 ? "" : "s"} ahead`;
    field("Queue", `${place.pool}: position ${place.ahead + 1} of ${place.waiting}, ${line}${where}`);
  }
  if (state && state.slots.length > 0) {
    out.push("VMs:");
    for (const slot of state.slots) {
      const platforms = slot.platforms.length > 0 ? slot.platforms.join(",") : "(all)";
      out.push(`  ${platforms}  pool ${slot.pool}  ${slot.vm ? `vm ${slot.vm}` : "no VM yet"}${slot.lease ? `  lease ${slot.lease}` : ""}`);
    }
  }
  const timeline = timelineOf(run, state);
  if (timeline.length > 0) {
    out.push("Timeline:");
    for (const [at, what] of timeline) out.push(`  ${at}  ${what}`);
  }
  const earlier = run.status?.retriesStatus ?? [];
  if (earlier.length > 0) {
    out.push("Earlier attempts:");
    earlier.forEach((status, i) => out.push(`  ${i}: ${attemptSummary(status)}`));
  }
  const results = run.status?.results ?? [];
  if (results.length > 0) {
    out.push("Results:");
    const width = Math.max(...results.map((r) => r.name.length));
    for (const r of results) out.push(`  ${r.name.padEnd(width)}  ${r.value}`);
  }
  return `${out.join("\n")}\n`;
}

/** The run's moments, oldest first; phaseSince names the phase it started. */
export function timelineOf(run: CustomRun, state: RunState | undefined): [string, string][] {
  const moments: [string | undefined, string][] = [
    [run.metadata.creationTimestamp, "created"],
    [state?.queuedAt, "queued"],
    [run.status?.startTime, "started (the timeout counts from here)"],
    [state?.leasedAt, "leased its VM" + (state && state.slots.length > 1 ? "s" : "")],
    [state?.phaseSince, state ? `${state.phase} since` : ""],
    [run.status?.completionTime, "completed"],
  ];
  return moments
    .flatMap(([at, what]): [string, string][] => (at ? [[at, what]] : []))
    .sort((a, b) => Date.parse(a[0]) - Date.parse(b[0]));
}

function attemptSummary(status: Record<string, unknown>): string {
  const conditions = Array.isArray(status["conditions"]) ? status["conditions"] : [];
  const parsed = conditions.map((c) => ConditionSchema.safeParse(c)).find((c) => c.success && c.data.type === "Succeeded");
  const cond = parsed?.success ? parsed.data : undefined;
  const text = cond ? `${cond.status}${cond.reason ? ` ${cond.reason}` : ""}${cond.message ? `: ${cond.message}` : ""}` : "no condition";
  const end = typeof status["completionTime"] === "string" ? ` (completed ${status["completionTime"]})` : "";
  return `${text}${end}`;
}
