import type { RunResult } from "../tekton/customrun.js";
import type { FailureReason } from "../tekton/reasons.js";

// The build jobs this process runs, by run UID, attempt and VMs. Empty after a restart: that absence is how decide()
// learns a build was in flight when the controller died.

export type JobStage = "connecting" | "fetching" | "building" | "pushing";

export type JobView =
  | { state: "running"; stage: JobStage; detail: string }
  | { state: "succeeded"; results: RunResult[]; summary: string; durations?: { buildMs: number; pushMs: number } }
  /** results: what was known when it failed (the log, the VMs, the commit once fetched). */
  | { state: "failed"; stage: JobStage; reason: FailureReason; message: string; results: RunResult[] };

/** Which of the run's jobs: its attempt and VMs, as decided (the run's status may not name them yet). */
export interface JobRef {
  attempt: number;
  vms: string[];
}

/** One VM of a build job and what it builds there. */
export interface JobVM {
  pool: string;
  vm: string;
  platforms: string[];
}

/** A job starts when its VMs are leased, before they are up: where each one answers comes later, from decide. */
export interface JobHandle {
  readonly signal: AbortSignal;
  progress(stage: JobStage, detail: string): void;
  /** The VMs' addresses, in the order the job was given its VMs, once every one has one (it may still boot). */
  addresses(): Promise<readonly string[]>;
  /**
   * Resolves once every VM is Ready (after addresses): true when an address changed meanwhile (addresses() then
   * gives the new ones), false when the sessions opened to the first ones serve.
   */
  ready(): Promise<boolean>;
}

export type JobBody = (handle: JobHandle) => Promise<JobView & { state: "succeeded" | "failed" }>;

/**
 * A new stage is reported at once (its start is what users and the benchmarks time stages by); a new detail within
 * a stage (each Dockerfile STEP) at most this often, so a build of many steps costs a status write per step only
 * where a step takes this long (the log has every step).
 */
export const DETAIL_EVERY_MS = 10_000;

interface Entry {
  view: JobView;
  /**
   * What reconciles read: the view as of the job's last wake-up. A reconcile woken by something else (the run's
   * own status write coming back) would otherwise write a newer step of the same stage, past DETAIL_EVERY_MS.
   */
  shown: JobView;
  abort: AbortController;
  done: Promise<void>;
  addresses?: readonly string[];
  addressed: () => void;
  readied: (moved: boolean) => void;
  wasReady?: true;
}

export class Jobs {
  private readonly entries = new Map<string, Entry>();

  /** onChange is told the run key whenever a job moves on, so the run gets reconciled. */
  constructor(private readonly onChange: (runKey: string) => void) {}

  get(id: JobId): JobView | undefined {
    return this.entries.get(jobKey(id))?.shown;
  }

  start(runKey: string, id: JobId, body: JobBody): void {
    const key = jobKey(id);
    if (this.entries.has(key)) return;
    const abort = new AbortController();
    let addressed = () => {};
    const reached = new Promise<void>((resolve) => (addressed = resolve));
    let readied = (_moved: boolean) => {};
    const allReady = new Promise<boolean>((resolve) => (readied = resolve));
    const initial: JobView = { state: "running", stage: "fetching", detail: "" };
    const entry: Entry = { view: initial, shown: initial, abort, done: Promise.resolve(), addressed, readied };
    this.entries.set(key, entry);
    let lastNotice = 0;
    let pending: NodeJS.Timeout | undefined;
    const notify = () => {
      clearTimeout(pending);
      pending = undefined;
      lastNotice = Date.now();
      entry.shown = entry.view;
      this.onChange(runKey);
    };
    const handle: JobHandle = {
      signal: abort.signal,
      progress: (stage, detail) => {
        if (entry.view.state !== "running") return;
        const before = entry.view;
        if (before.stage === stage && before.detail === detail) return;
        entry.view = { state: "running", stage, detail };
        if (before.stage !== stage) notify();
        else pending ??= setTimeout(notify, Math.max(0, lastNotice + DETAIL_EVERY_MS - Date.now()));
      },
      addresses: async () => {
        await untilAborted(reached, abort.signal);
        return entry.addresses ?? [];
      },
      ready: () => untilAborted(allReady, abort.signal),
    };
    entry.done = body(handle).then(
      (final) => {
        entry.view = final;
      },
      (err: unknown) => {
        const stage = entry.view.state === "running" ? entry.view.stage : "building";
        entry.view = { state: "failed", stage, reason: "BuildFailed", message: `internal error: ${String(err)}`, results: [] };
      },
    ).finally(notify);
  }

  /**
   * Tells a job where its VMs answer, and then whether they are all Ready. decide repeats itself until the job
   * moves on: the first addresses stay until the VMs are Ready, when the addresses they have then win.
   */
  connect(id: JobId, addresses: readonly string[], ready: boolean): void {
    const entry = this.entries.get(jobKey(id));
    if (!entry) return;
    const first = entry.addresses;
    if (!first) {
      entry.addresses = addresses;
      entry.addressed();
    }
    if (!ready || entry.wasReady) return;
    entry.wasReady = true;
    const moved = first !== undefined && first.some((address, i) => address !== addresses[i]);
    if (moved) entry.addresses = addresses;
    entry.readied(moved);
  }

  cancel(id: JobId): void {
    this.entries.get(jobKey(id))?.abort.abort(new Error("cancelled"));
  }

  /** Forget a finished job once its run no longer needs the outcome. */
  forget(id: JobId): void {
    const key = jobKey(id);
    const entry = this.entries.get(key);
    if (entry && entry.view.state !== "running") this.entries.delete(key);
  }

  /**
   * The run is finished: abort any job of it still running and forget them all. A job started with a lease whose
   * status write was lost is named by no status, so nothing else would ever cancel it.
   */
  endRun(uid: string): void {
    for (const [key, entry] of this.entries) {
      if (!key.startsWith(`${uid}/`)) continue;
      entry.abort.abort(new Error("the run is finished"));
      void entry.done.then(() => this.entries.delete(key));
    }
  }

  /** Abort every job and wait for them to settle (shutdown). */
  async stopAll(): Promise<void> {
    for (const entry of this.entries.values()) entry.abort.abort(new Error("controller shutting down"));
    await Promise.all([...this.entries.values()].map((e) => e.done));
  }

  get running(): number {
    return [...this.entries.values()].filter((e) => e.view.state === "running").length;
  }
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener("abort", onAbort, { once: true });
    void promise.then((value) => {
      signal.removeEventListener("abort", onAbort);
      resolve(value);
    });
  });
}

/** One job per run attempt on its VMs: a run that moves to other VMs starts afresh there. */
export interface JobId {
  uid: string;
  attempt: number;
  vms: readonly string[];
}

function jobKey(id: JobId): string {
  return `${id.uid}/${id.attempt}/${id.vms.join("+")}`;
}
