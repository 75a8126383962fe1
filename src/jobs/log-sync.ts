import type { Logger } from "pino";
import { describeApiError, isConflict, isNotFound, isTransient } from "../kube/errors.js";
import { VMBUILD_LOG_KIND, vmbuildLogName } from "../api/vmbuild-log.js";
import { settledWithin } from "../timing/timers.js";
import { BoundedLog, nextSync, type SyncState } from "./log-copy.js";
import type { LogObjects, Written } from "./log-object.js";
import type { LogMirror, LogMirrors, RunRef } from "./log-store.js";

// Writes each build log's stored copy (a VMBuildLog) as the build runs: the schedule is nextSync's, the text
// BoundedLog's. A failed write is logged and tried again later; it never fails the build.

export interface LogCopyOptions {
  objects: LogObjects;
  /** This replica's identity, written into the object. */
  replica: string;
  /** The copy's budget in escaped bytes (VMBUILD_LOG_STORED_MAX_BYTES). */
  maxBytes: number;
  /** VMBUILD_LOG_SYNC_SECONDS, in ms. */
  syncMs: number;
  log: Logger;
  now?: () => number;
}

/** What one copy cost: API requests (writes and the reads a conflict needs) and request body bytes. */
export interface CopyCost {
  requests: number;
  writes: number;
  sentBytes: number;
}

/** How often the last write (complete: true) is tried before it is given up; 1 s, 2 s, 4 s apart. */
const FINAL_TRIES = 4;

export class LogCopies implements LogMirrors {
  private readonly writing = new Set<Promise<void>>();

  constructor(private readonly options: LogCopyOptions) {}

  open(run: RunRef, attempt: number): LogMirror {
    const writer = new LogCopyWriter(this.options, run, attempt);
    return {
      lines: (lines) => writer.lines(lines),
      close: () => {
        const done = writer.close();
        this.writing.add(done);
        void done.finally(() => this.writing.delete(done));
      },
    };
  }

  /** Waits for the last writes of the logs closed so far, at most `timeoutMs` (shutdown). */
  async drain(timeoutMs: number): Promise<void> {
    await settledWithin(Promise.all(this.writing), timeoutMs);
  }
}

class LogCopyWriter {
  private text: BoundedLog;
  private readonly state: SyncState;
  private readonly now: () => number;
  private readonly where: { run: string; attempt: number; object: string };
  private readonly cost: CopyCost = { requests: 0, writes: 0, sentBytes: 0 };
  private resourceVersion: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inFlight = false;
  /** Set once writing stops for good: the last write went through or was given up, or another replica took over. */
  private finished = false;
  private finalTries = 0;
  private resolveDone!: () => void;
  private readonly done = new Promise<void>((resolve) => (this.resolveDone = resolve));

  constructor(
    private readonly options: LogCopyOptions,
    private readonly run: RunRef,
    private readonly attempt: number,
  ) {
    this.text = new BoundedLog(options.maxBytes);
    this.now = options.now ?? Date.now;
    this.state = { openedAt: this.now(), grown: false, closed: false, completeWritten: false };
    this.where = { run: `${run.namespace}/${run.name}`, attempt, object: vmbuildLogName(run.uid, attempt) };
    this.schedule();
  }

  lines(lines: readonly string[]): void {
    if (this.state.closed) return;
    for (const line of lines) this.text.push(line);
    this.state.grown = true;
  }

  close(): Promise<void> {
    if (!this.state.closed) {
      this.state.closed = true;
      this.schedule();
    }
    return this.done;
  }

  /** Writes now if nextSync says so, else looks again when it says; never two writes at once. */
  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.inFlight) return;
    if (this.finished) {
      this.resolveDone();
      return;
    }
    const plan = nextSync(this.state, this.now(), this.options.syncMs);
    if (plan.write) {
      this.state.lastTryAt = this.now();
      void this.write();
    } else if (plan.checkInMs !== undefined) this.wakeIn(plan.checkInMs);
    else this.finish();
  }

  private wakeIn(ms: number): void {
    this.timer = setTimeout(() => this.schedule(), ms);
    this.timer.unref();
  }

  private finish(): void {
    this.finished = true;
    this.resolveDone();
  }

  private async write(): Promise<void> {
    this.inFlight = true;
    const complete = this.state.closed;
    this.state.grown = false;
    try {
      await this.put(complete);
      if (complete) {
        this.state.completeWritten = true;
        this.options.log.info({ ...this.where, ...this.cost, bytes: this.text.bytes }, "build log stored");
        this.finish();
      }
    } catch (err) {
      this.state.grown = true;
      const retry = complete && ++this.finalTries < FINAL_TRIES && isTransient(err);
      this.options.log.warn(
        { ...this.where, err: describeApiError(err), ...(complete ? { retry } : {}) },
        `writing the build log's ${VMBUILD_LOG_KIND} failed; the build goes on`,
      );
      if (complete && !retry) this.finish();
      if (retry) {
        this.inFlight = false;
        this.wakeIn(1000 * 2 ** (this.finalTries - 1));
        return;
      }
    }
    this.inFlight = false;
    this.schedule();
  }

  /** Creates the object, or updates it with the resourceVersion last written; a conflict is read and resolved once. */
  private async put(complete: boolean): Promise<void> {
    const { objects } = this.options;
    if (this.resourceVersion === undefined) {
      try {
        this.wrote(await this.call(() => objects.create(this.run, this.attempt, this.fields(complete))));
        return;
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
      // An earlier try of this attempt (another replica, before it crashed) stored its copy: go on after it.
      const earlier = await this.read();
      if (!earlier) throw new Error(`${VMBUILD_LOG_KIND} ${this.where.object} exists but could not be read`);
      if (earlier.replica !== this.options.replica) this.text = this.text.continuing(earlier, this.options.replica);
      const rv = earlier.metadata.resourceVersion;
      this.wrote(await this.call(() => objects.update(this.run, this.attempt, this.fields(complete), rv)));
      return;
    }
    const rv = this.resourceVersion;
    try {
      this.wrote(await this.call(() => objects.update(this.run, this.attempt, this.fields(complete), rv)));
    } catch (err) {
      if (isNotFound(err)) return this.stop("the object is gone (its run was deleted)");
      if (!isConflict(err)) throw err;
      const current = await this.read();
      if (current?.replica !== this.options.replica) return this.stop("another replica writes it now");
      // Ours: a write whose answer was lost.
      const latest = current.metadata.resourceVersion;
      this.wrote(await this.call(() => objects.update(this.run, this.attempt, this.fields(complete), latest)));
    }
  }

  private fields(complete: boolean) {
    return { runName: this.run.name, attempt: this.attempt, replica: this.options.replica, complete, ...this.text.snapshot() };
  }

  private read() {
    return this.call(() => this.options.objects.get(this.run.namespace, this.run.uid, this.attempt));
  }

  /** Every request counts, failed ones too. */
  private call<T>(request: () => Promise<T>): Promise<T> {
    this.cost.requests += 1;
    return request();
  }

  private wrote(written: Written): void {
    this.resourceVersion = written.resourceVersion;
    this.cost.writes += 1;
    this.cost.sentBytes += written.requestBytes;
  }

  private stop(why: string): void {
    this.options.log.warn(this.where, `the build log's ${VMBUILD_LOG_KIND} is no longer written: ${why}`);
    this.finish();
  }
}
