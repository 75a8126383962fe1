import { readdir, rmdir, stat, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { BuildLog, DEFAULT_LOG_CAP_BYTES, LogReader, type Redactor } from "./log.js";
import { isNamespace, isObjectName } from "../api/names.js";

// Every run's build logs on local disk, one file per attempt at <root>/<namespace>/<name>/<uid>-<attempt>.log,
// with the writers still open known so readers can follow them, and bounded by total size and age.

export { BuildLog, DEFAULT_LOG_CAP_BYTES, LogReader, logLines, maskSecrets, type Redactor } from "./log.js";

export interface RunRef {
  namespace: string;
  name: string;
  uid: string;
}

export interface LogEntry {
  uid: string;
  attempt: number;
  path: string;
  bytes: number;
  modified: Date;
  /** Its writer is still open: reading follows it. */
  live: boolean;
}

export interface LogRead {
  entry: LogEntry;
  stream: LogReader;
}

export interface RetentionLimits {
  /** Total size of all logs, live ones included, above which the oldest finished logs go. */
  maxBytes: number;
  /** Finished logs not written to for longer than this go. */
  maxAgeMs: number;
}

/** A copy of one log kept elsewhere (the API): it gets every line, redacted, and the close. */
export interface LogMirror {
  lines(lines: readonly string[]): void;
  close(): void;
}

export interface LogMirrors {
  open(run: RunRef, attempt: number): LogMirror;
}

export interface LogStoreOptions extends Partial<RetentionLimits> {
  root: string;
  /** Each log's cap: its first and last halves are kept (see BuildLog); default DEFAULT_LOG_CAP_BYTES. */
  maxBytesPerLog?: number;
  /** Applied to every line of every log, before a per-run redactor given to `open`. */
  redact?: Redactor;
  /** How often `start()` prunes; default 10 minutes. */
  pruneEveryMs?: number;
  log?: Logger;
  now?: () => number;
  /** Where each log is copied as well, e.g. to a VMBuildLog so that other replicas can serve it. */
  mirrors?: LogMirrors;
}

export interface StoredLog {
  path: string;
  bytes: number;
  mtimeMs: number;
  live: boolean;
}

/** Opens prune at most this often; a burst of builds within it adds at most their logs above maxBytes meanwhile. */
export const PRUNE_SPACING_MS = 10_000;

export const DEFAULT_RETENTION: RetentionLimits = { maxBytes: 1024 ** 3, maxAgeMs: 7 * 24 * 3_600_000 };

// Kubernetes names: namespaces are DNS labels, CustomRun names DNS subdomains. Checked here too, because they
// become path segments.
const UID = /^[A-Za-z0-9-]{1,64}$/;
const FILE = /^(.+)-(\d{1,6})\.log$/;

/**
 * Which logs retention removes: every finished log older than maxAgeMs, then finished logs oldest first while the
 * total (live logs included) is above maxBytes. Never a live one.
 */
export function chooseExpired(logs: readonly StoredLog[], limits: RetentionLimits, now: number): string[] {
  const expired: string[] = [];
  let total = logs.reduce((sum, l) => sum + l.bytes, 0);
  const finished = logs.filter((l) => !l.live).sort((a, b) => a.mtimeMs - b.mtimeMs || a.path.localeCompare(b.path));
  for (const l of finished) {
    if (now - l.mtimeMs > limits.maxAgeMs || total > limits.maxBytes) {
      expired.push(l.path);
      total -= l.bytes;
    }
  }
  return expired;
}

/** The latest of a run's logs: a live one, else the most recently written, else the highest attempt. */
export function latest(entries: readonly LogEntry[]): LogEntry | undefined {
  return [...entries].sort(
    (a, b) =>
      Number(a.live) - Number(b.live) ||
      a.modified.getTime() - b.modified.getTime() ||
      a.attempt - b.attempt,
  )[entries.length - 1];
}

export class LogStore {
  private readonly root: string;
  private readonly limits: RetentionLimits;
  private readonly maxBytesPerLog: number;
  private readonly redact: Redactor | undefined;
  private readonly pruneEveryMs: number;
  private readonly log: Logger | undefined;
  private readonly now: () => number;
  private readonly mirrors: LogMirrors | undefined;
  private readonly writers = new Map<string, BuildLog>();
  private pruning: Promise<number> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** performance.now() of the last prune's start; the pending prune an open asked for, if any. */
  private prunedAt = -Infinity;
  private soon: NodeJS.Timeout | undefined;

  constructor(options: LogStoreOptions) {
    this.root = options.root;
    this.limits = {
      maxBytes: options.maxBytes ?? DEFAULT_RETENTION.maxBytes,
      maxAgeMs: options.maxAgeMs ?? DEFAULT_RETENTION.maxAgeMs,
    };
    this.maxBytesPerLog = options.maxBytesPerLog ?? DEFAULT_LOG_CAP_BYTES;
    this.redact = options.redact;
    this.pruneEveryMs = options.pruneEveryMs ?? 10 * 60_000;
    this.log = options.log;
    this.now = options.now ?? Date.now;
    this.mirrors = options.mirrors;
  }

  /** A new (or appended-to) log for one attempt of a run; readers follow it until it is closed. */
  open(run: RunRef, attempt: number, options: { redact?: Redactor } = {}): BuildLog {
    const path = this.pathOf(run, attempt);
    const shared = this.redact;
    const own = options.redact;
    const redact: Redactor | undefined = shared && own ? (l) => own(shared(l)) : (own ?? shared);
    // The mirror is opened once the file is: a log that cannot be opened leaves no copy behind.
    let mirror: LogMirror | undefined;
    const log = this.create(path, redact, {
      lines: (lines) => mirror?.lines(lines),
      close: () => mirror?.close(),
    });
    mirror = this.mirrors?.open(run, attempt);
    this.writers.set(path, log);
    this.pruneSoon();
    return log;
  }

  /** A run's logs, oldest first; empty when there are none. */
  async list(namespace: string, name: string): Promise<LogEntry[]> {
    if (!isNamespace(namespace) || !isObjectName(name)) return [];
    const dir = join(this.root, namespace, name);
    const entries: LogEntry[] = [];
    for (const file of await readdirOrEmpty(dir)) {
      const match = FILE.exec(file);
      if (!match?.[1] || !match[2]) continue;
      const path = join(dir, file);
      const info = await stat(path).catch(() => undefined);
      if (!info?.isFile()) continue;
      entries.push({
        uid: match[1],
        attempt: Number(match[2]),
        path,
        bytes: info.size,
        modified: info.mtime,
        live: this.writers.has(path),
      });
    }
    return entries.sort((a, b) => a.modified.getTime() - b.modified.getTime() || a.attempt - b.attempt);
  }

  /** The run's latest log, or the given attempt's (of the given uid, if several runs had this name). */
  async read(
    namespace: string,
    name: string,
    options: { attempt?: number; uid?: string } = {},
  ): Promise<LogRead | undefined> {
    const candidates = (await this.list(namespace, name)).filter(
      (e) =>
        (options.attempt === undefined || e.attempt === options.attempt) &&
        (options.uid === undefined || e.uid === options.uid),
    );
    const entry = latest(candidates);
    if (!entry) return undefined;
    // Looked up again now: the writer may have closed while we listed.
    const writer = this.writers.get(entry.path);
    return { entry: { ...entry, live: writer !== undefined }, stream: new LogReader(entry.path, writer) };
  }

  /** Removes what retention says; resolves to the number of logs removed. One prune at a time. */
  prune(): Promise<number> {
    if (!this.pruning) this.prunedAt = performance.now();
    this.pruning ??= this.pruneOnce()
      .catch((err: unknown) => {
        this.log?.warn({ err: String(err), root: this.root }, "pruning build logs failed");
        return 0;
      })
      .finally(() => {
        this.pruning = undefined;
      });
    return this.pruning;
  }

  /**
   * A prune after an open, at most one per PRUNE_SPACING_MS: each scans every stored log, so one per build made a
   * store of a week's logs cost more with every build.
   */
  private pruneSoon(): void {
    if (this.soon) return;
    const wait = this.prunedAt + PRUNE_SPACING_MS - performance.now();
    if (wait <= 0) {
      void this.prune();
      return;
    }
    this.soon = setTimeout(() => {
      this.soon = undefined;
      void this.prune();
    }, wait);
    this.soon.unref();
  }

  /** Prunes now and then every pruneEveryMs. */
  start(): void {
    this.stop();
    void this.prune();
    this.timer = setInterval(() => void this.prune(), this.pruneEveryMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    clearTimeout(this.soon);
    this.timer = undefined;
    this.soon = undefined;
  }

  private pathOf(run: RunRef, attempt: number): string {
    const valid = isNamespace(run.namespace) && isObjectName(run.name) && UID.test(run.uid);
    if (!valid || !Number.isInteger(attempt) || attempt < 0) {
      const what = `${run.namespace}/${run.name} uid ${run.uid} attempt ${attempt}`;
      throw new Error(`cannot open a build log for ${what}: not a valid run reference`);
    }
    return join(this.root, run.namespace, run.name, `${run.uid}-${attempt}.log`);
  }

  private create(path: string, redact: Redactor | undefined, mirror: LogMirror): BuildLog {
    const options = {
      ...(redact ? { redact } : {}),
      maxBytes: this.maxBytesPerLog,
      onLines: (lines: readonly string[]) => mirror.lines(lines),
      onClosed: (closed: BuildLog) => {
        if (this.writers.get(path) === closed) this.writers.delete(path);
        mirror.close();
      },
    };
    try {
      return new BuildLog(path, options);
    } catch (err) {
      // A concurrent prune may have removed the run's (then empty) directory between mkdir and open: once more.
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      return new BuildLog(path, options);
    }
  }

  private async pruneOnce(): Promise<number> {
    const logs: StoredLog[] = [];
    const dirs: string[] = [];
    for (const ns of await readdirOrEmpty(this.root)) {
      for (const name of await readdirOrEmpty(join(this.root, ns))) {
        const dir = join(this.root, ns, name);
        dirs.push(dir);
        for (const file of await readdirOrEmpty(dir)) {
          if (!FILE.test(file)) continue;
          const path = join(dir, file);
          const info = await stat(path).catch(() => undefined);
          if (!info?.isFile()) continue;
          logs.push({ path, bytes: info.size, mtimeMs: info.mtimeMs, live: this.writers.has(path) });
        }
      }
    }
    let removed = 0;
    for (const path of chooseExpired(logs, this.limits, this.now())) {
      // Opened since we looked: keep it.
      if (this.writers.has(path)) continue;
      await unlink(path).then(
        () => (removed += 1),
        () => undefined,
      );
    }
    // Empty run directories go too; rmdir refuses non-empty ones, which is the check we want.
    for (const dir of dirs) await rmdir(dir).catch(() => undefined);
    if (removed > 0) this.log?.info({ removed, root: this.root }, "pruned build logs");
    return removed;
  }
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return [];
    throw new Error(`listing build logs in ${dir}: ${String(err)}`);
  }
}
