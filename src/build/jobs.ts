import type { JobStage, JobView } from "../reconcile/observation.js";

// The build jobs this process runs, by run UID, attempt and VMs. Empty after a restart: that absence is how decide()
// learns a build was in flight when the controller died.

export interface JobHandle {
  readonly signal: AbortSignal;
  progress(stage: JobStage, detail: string): void;
}

export type JobBody = (handle: JobHandle) => Promise<JobView & { state: "succeeded" | "failed" }>;

interface Entry {
  view: JobView;
  abort: AbortController;
  done: Promise<void>;
}

export class Jobs {
  private readonly entries = new Map<string, Entry>();

  /** onChange is told the run key whenever a job moves on, so the run gets reconciled. */
  constructor(private readonly onChange: (runKey: string) => void) {}

  get(id: JobId): JobView | undefined {
    return this.entries.get(jobKey(id))?.view;
  }

  start(runKey: string, id: JobId, body: JobBody): void {
    const key = jobKey(id);
    if (this.entries.has(key)) return;
    const abort = new AbortController();
    const entry: Entry = { view: { state: "running", stage: "connecting", detail: "" }, abort, done: Promise.resolve() };
    this.entries.set(key, entry);
    const handle: JobHandle = {
      signal: abort.signal,
      progress: (stage, detail) => {
        if (entry.view.state !== "running") return;
        if (entry.view.stage === stage && entry.view.detail === detail) return;
        entry.view = { state: "running", stage, detail };
        this.onChange(runKey);
      },
    };
    entry.done = body(handle).then(
      (final) => {
        entry.view = final;
      },
      (err: unknown) => {
        const stage = entry.view.state === "running" ? entry.view.stage : "building";
        entry.view = { state: "failed", stage, reason: "BuildFailed", message: `internal error: ${String(err)}` };
      },
    ).finally(() => this.onChange(runKey));
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

  /** Abort every job and wait for them to settle (shutdown). */
  async stopAll(): Promise<void> {
    for (const entry of this.entries.values()) entry.abort.abort(new Error("controller shutting down"));
    await Promise.all([...this.entries.values()].map((e) => e.done));
  }

  get running(): number {
    return [...this.entries.values()].filter((e) => e.view.state === "running").length;
  }
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
