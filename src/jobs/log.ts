import { createWriteStream, mkdirSync, openSync, type WriteStream } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { Readable } from "node:stream";

// One attempt's log file: the writer (lines as they come, redacted, with the last ones kept for the failure
// message) and a reader that follows the file while its writer is open, like `tail -f` that knows when to stop.

const TAIL_LINES = 20;
const CHUNK_BYTES = 64 * 1024;

/** Rewrites one line before it is stored or shown, e.g. to mask credentials. */
export type Redactor = (line: string) => string;

export interface BuildLogOptions {
  redact?: Redactor;
  /** Called once, after the last byte is on disk. */
  onClosed?: (log: BuildLog) => void;
}

/** The lines of `text` (trailing newlines dropped, `\r\n` kept apart as `\n`), each through `redact`. */
export function logLines(text: string, redact: Redactor = (l) => l): string[] {
  return text
    .replace(/\n+$/, "")
    .split(/\r?\n/)
    .map((l) => redact(l));
}

/**
 * A redactor that masks every occurrence of each secret (e.g. registry and git passwords, tokens) with `***`.
 * Longer secrets are masked first, so one that contains another is hidden whole; empty strings are ignored.
 */
export function maskSecrets(secrets: Iterable<string>, mask = "***"): Redactor {
  const list = [...new Set(secrets)].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
  if (list.length === 0) return (line) => line;
  return (line) => list.reduce((text, secret) => text.replaceAll(secret, mask), line);
}

export class BuildLog {
  private readonly out: WriteStream;
  private readonly recent: string[] = [];
  private readonly redact: Redactor;
  private readonly onClosed: ((log: BuildLog) => void) | undefined;
  private readonly waiters = new Set<() => void>();
  private ending: Promise<void> | undefined;
  private finished = false;
  private changes = 0;
  private writeError: Error | undefined;

  constructor(
    readonly path: string,
    options: BuildLogOptions = {},
  ) {
    this.redact = options.redact ?? ((l) => l);
    this.onClosed = options.onClosed;
    mkdirSync(dirname(path), { recursive: true });
    // Opened synchronously so the file exists as soon as the writer does: a reader may come at once.
    this.out = createWriteStream(path, { fd: openSync(path, "a") });
    // A full disk must not crash the controller: the build goes on, its log stops growing.
    this.out.on("error", (err) => {
      this.writeError ??= err;
    });
  }

  line(text: string): void {
    if (this.ending) return;
    const lines = logLines(text, this.redact);
    for (const l of lines) {
      this.recent.push(l);
      if (this.recent.length > TAIL_LINES) this.recent.shift();
    }
    if (this.writeError) return;
    this.out.write(`${lines.join("\n")}\n`, () => this.changed());
  }

  tail(n: number): string {
    return this.recent.slice(-n).join("\n");
  }

  close(): Promise<void> {
    this.ending ??= new Promise<void>((resolve) => {
      const done = () => {
        this.finished = true;
        this.changed();
        this.onClosed?.(this);
        resolve();
      };
      if (this.out.destroyed) done();
      else this.out.end(done);
    });
    return this.ending;
  }

  /** The first write error, if the log could not be written to the end. */
  get error(): Error | undefined {
    return this.writeError;
  }

  /** True once closed and everything written is on disk. */
  get closed(): boolean {
    return this.finished;
  }

  /** Counts flushes and the close: a reader that saw the same count before and after a read missed nothing. */
  get version(): number {
    return this.changes;
  }

  /** Calls `listener` once, at the next flush or close; returns a function that cancels it. */
  onChange(listener: () => void): () => void {
    this.waiters.add(listener);
    return () => this.waiters.delete(listener);
  }

  private changed(): void {
    this.changes += 1;
    const waiting = [...this.waiters];
    this.waiters.clear();
    for (const w of waiting) w();
  }
}

/**
 * The log file from its start; while `live` (its writer) is open, it keeps reading what is appended until the
 * writer closes or `stopFollowing()` is called, then ends at the end of the file.
 */
export class LogReader extends Readable {
  private file: FileHandle | undefined;
  private position = 0;
  private pumping = false;
  private following: boolean;
  private cancelWait: (() => void) | undefined;

  constructor(
    private readonly path: string,
    private readonly live: BuildLog | undefined,
  ) {
    super({ highWaterMark: CHUNK_BYTES });
    this.following = live !== undefined;
  }

  /** Ends the stream at the current end of the file instead of waiting for the writer (e.g. on shutdown). */
  stopFollowing(): void {
    this.following = false;
    if (this.cancelWait) {
      this.cancelWait();
      this.cancelWait = undefined;
      void this.pump();
    }
  }

  override _construct(callback: (error?: Error | null) => void): void {
    open(this.path, "r").then(
      (file) => {
        this.file = file;
        callback();
      },
      (err: unknown) => callback(new Error(`opening build log ${this.path}: ${String(err)}`)),
    );
  }

  override _read(): void {
    void this.pump();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.cancelWait?.();
    this.cancelWait = undefined;
    const file = this.file;
    this.file = undefined;
    if (!file) return callback(error);
    file.close().then(
      () => callback(error),
      () => callback(error),
    );
  }

  private async pump(): Promise<void> {
    if (this.pumping || this.cancelWait) return;
    this.pumping = true;
    try {
      for (;;) {
        const file = this.file;
        if (!file || this.destroyed) return;
        const seen = this.live?.version ?? 0;
        const { bytesRead, buffer } = await file.read(Buffer.alloc(CHUNK_BYTES), 0, CHUNK_BYTES, this.position);
        if (this.destroyed) return;
        if (bytesRead > 0) {
          this.position += bytesRead;
          if (!this.push(buffer.subarray(0, bytesRead))) return;
          continue;
        }
        // At the end of the file. Anything flushed while we read shows as a changed version: read again.
        if (this.live && this.live.version !== seen) continue;
        if (!this.live || this.live.closed || !this.following) {
          this.push(null);
          return;
        }
        // Checked and subscribed in the same tick, so no flush can slip in between.
        this.cancelWait = this.live.onChange(() => {
          this.cancelWait = undefined;
          void this.pump();
        });
        return;
      }
    } catch (err) {
      this.destroy(new Error(`reading build log ${this.path}: ${String(err)}`));
    } finally {
      this.pumping = false;
    }
  }
}
