import type { KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { isOurs, parseRun } from "../tekton/customrun.js";
import { readRunState, stateVMs } from "../tekton/run-state.js";
import { apply, type ApplyDeps } from "./apply.js";
import { decide } from "./decide/index.js";
import { observe } from "./observe.js";
import type { JobId, JobView } from "../jobs/jobs.js";
import type { Metrics } from "../metrics/metrics.js";
import type { Caches } from "../cache/caches.js";
import type { Replicas } from "../cache/replicas.js";

// One pass for one CustomRun key: observe → decide → apply. Returns when to look again.

export interface ReconcilerDeps extends ApplyDeps {
  caches: Caches;
  log: Logger;
  job: (id: JobId) => JobView | undefined;
  forgetJob: (id: JobId) => void;
  /** The run is finished: its jobs, running or not, are no longer needed. */
  endRunJobs: (uid: string) => void;
  now: () => Date;
  metrics: Metrics;
  /** Base URL of the controller's HTTP server as users reach it, for LOG_URL. */
  publicURL: string;
  /** The replicas and who owns which run; absent for a lone replica that acts on every run. */
  replicas?: Replicas;
  leading?: () => boolean;
}

export async function reconcile(deps: ReconcilerDeps, key: string): Promise<{ requeueAfterMs?: number }> {
  const [namespace, name] = key.split("/") as [string, string];
  const raw: KubernetesObject | undefined = deps.caches.runs.get(name, namespace);
  if (!raw || !isOurs(raw)) return {};
  const parsed = parseRun(raw);
  if (!parsed.run) {
    deps.log.warn({ run: key, problem: parsed.problem }, "CustomRun unreadable; ignoring it");
    return {};
  }
  const run = parsed.run;
  const before = readRunState(run.status?.extraFields);
  const { replicas } = deps;
  if (replicas && !replicas.actsOn(before?.owner, deps.leading?.() ?? true)) return {};
  // Our own last write has not reached the cache: deciding on the older copy could repeat or undo its actions.
  if (deps.expectations.runBehind(raw)) return { requeueAfterMs: 100 };
  const obs = observe(parsed, {
    caches: deps.caches,
    job: deps.job,
    now: deps.now(),
    publicURL: deps.publicURL,
    ...(replicas ? { replicas } : {}),
  });
  const decision = decide(run, obs);
  const result = await apply(deps, raw, run, obs, decision);
  if (result === "conflict" || result === "leaseTaken") {
    deps.log.debug({ run: key, result }, "retrying soon");
    return { requeueAfterMs: result === "leaseTaken" ? 20 : 50 };
  }
  // A job whose outcome is written down (a new attempt, or the run finished) is no longer needed.
  const after = readRunState(decision.status?.extraFields);
  // Counted at once for the next assignments, before the informer brings the write back.
  if (after) {
    const done = after.phase === "Done";
    replicas?.owned(key, done && decision.removeFinalizer ? undefined : after.owner, done);
  }
  deps.metrics.record({
    before,
    after,
    final: decision.status?.completionTime ? decision.status.conditions?.[0] : undefined,
    job: obs.job,
    platforms: obs.settings.ok ? obs.settings.settings.platforms.join(",") : "",
    now: obs.now,
  });
  const vmsBefore = before ? stateVMs(before) : [];
  const vmsAfter = after ? stateVMs(after) : [];
  const moved =
    after?.attempt !== before?.attempt || vmsAfter.join("+") !== vmsBefore.join("+") || after?.phase === "Done";
  if (before && vmsBefore.length > 0 && obs.job && obs.job.state !== "running" && moved) {
    deps.forgetJob({ uid: run.metadata.uid, attempt: before.attempt, vms: vmsBefore });
  }
  if (decision.status?.completionTime) deps.endRunJobs(run.metadata.uid);
  if (decision.status && decision.status.conditions?.[0]?.reason !== run.status?.conditions?.[0]?.reason) {
    const c = decision.status?.conditions?.[0];
    deps.log.info({ run: key, reason: c?.reason, status: c?.status, message: c?.message }, "run moved on");
  }
  return decision.requeueAfterMs !== undefined ? { requeueAfterMs: decision.requeueAfterMs } : {};
}
