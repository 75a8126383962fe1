import { createWriteStream, mkdirSync, openSync, type WriteStream } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { Readable } from "node:stream";

// One attempt's log file: the writer (lines as they come, redacted, with the last ones kept for the failure
// message) and a reader that follows the file while its writer is open, like `tail -f` that knows when to stop.
//
// The file is capped at maxBytes (plus two marker lines of its own): its first half is written as it comes, so a
// reader sees the start at once. Past that, one marker line says output is held back, and only the last half of
// the cap is kept, in a ring buffer allocated once; at close a second marker says how much was cut, and the held
// lines follow. Nothing is ever rewritten, so readers keep following the file by offset until it closes; the file
// is never over the cap, and a build holds at most the ring in memory however much it prints. Lines are redacted
// before they are written or held.

const TAIL_LINES = 20;
const CHUNK_BYTES = 64 * 1024;
const NEWLINE = 0x0a;

/** What one build's log keeps by default: its first 8 MiB and its last 8 MiB. */
export const DEFAULT_LOG_CAP_BYTES = 16 * 1024 ** 2;
/** The smallest cap a log accepts. */
export const MIN_LOG_CAP_BYTES = 1024;

/** Rewrites one line before it is stored or shown, e.g. to mask credentials. */
export type Redactor = (line: string) => string;

export interface BuildLogOptions {
  redact?: Redactor;
  /** Output kept in the file, its first and last halves; default DEFAULT_LOG_CAP_BYTES. */
  maxBytes?: number;
  /** Called once, after the last byte is on disk. */
  onClosed?: (log: BuildLog) => void;
  /** Every line as it comes, redacted and before any cut (for the stored copy). */
  onLines?: (lines: readonly string[]) => void;
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

/** `1536` → "1.5 KiB", `8 * 1024 ** 2` → "8 MiB". */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(1).replace(/\.0$/, "");
  return `${text} ${units[unit]}`;
}

/** `1` → "1 line", `4512331` → "4,512,331 lines". */
function countOf(n: number, noun: string): string {
  return `${n.toLocaleString("en-US")} ${noun}${n === 1 ? "" : "s"}`;
}

/** The last bytes of whole lines pushed to it, at most `window`, in one buffer allocated up front. */
export class TailRing {
  // One byte more than the window: the byte before the oldest kept one tells whether that starts a line.
  private readonly ring: Buffer;
  private next = 0;
  /** Bytes and lines pushed, kept or not. */
  bytes = 0;
  lines = 0;

  constructor(private readonly window: number) {
    this.ring = Buffer.alloc(window + 1);
  }

  /** Adds one line, its newline included. */
  push(line: Buffer): void {
    this.bytes += line.length;
    this.lines += 1;
    const size = this.ring.length;
    for (let from = Math.max(0, line.length - size); from < line.length; ) {
      const n = Math.min(line.length - from, size - this.next);
      line.copy(this.ring, this.next, from, from + n);
      this.next = (this.next + n) % size;
      from += n;
    }
  }

  /** The whole lines among the last `window` bytes, oldest first: slices of the ring, valid until the next push. */
  kept(): { parts: Buffer[]; bytes: number; lines: number } {
    const size = this.ring.length;
    const held = Math.min(this.bytes, this.window);
    const oldest = (this.next - held + size) % size;
    const at = (i: number) => this.ring[(oldest + i + size) % size];
    let from = 0;
    // The oldest line lost its start: it goes too.
    if (this.bytes > held && at(-1) !== NEWLINE) {
      while (from < held && at(from) !== NEWLINE) from += 1;
      from = Math.min(from + 1, held);
    }
    const start = (oldest + from) % size;
    const length = held - from;
    const first = Math.min(length, size - start);
    const parts = [this.ring.subarray(start, start + first), this.ring.subarray(0, length - first)].filter(
      (p) => p.length > 0,
    );
    const lines = parts.reduce((sum, p) => sum + countNewlines(p), 0);
    return { parts, bytes: length, lines };
  }
}

function countNewlines(buffer: Buffer): number {
  let count = 0;
  for (let i = buffer.indexOf(NEWLINE); i !== -1; i = buffer.indexOf(NEWLINE, i + 1)) count += 1;
  return count;
}

/** `line` and its newline, cut (at a character) with a note when longer than `max` bytes. */
function encodeLine(line: string, max: number): Buffer {
  const bytes = Buffer.from(`${line}\n`, "utf8");
  if (bytes.length <= max) return bytes;
  const note = ` ... [vmbuild: line cut, ${formatBytes(bytes.length - 1)}]\n`;
  let end = Math.max(0, max - Buffer.byteLength(note));
  // Back to the start of a UTF-8 character.
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end -= 1;
  return Buffer.concat([bytes.subarray(0, end), Buffer.from(note, "utf8")]);
}

export class BuildLog {
  private readonly out: WriteStream;
  private readonly recent: string[] = [];
  private readonly redact: Redactor;
  private readonly headBytes: number;
  private readonly tailBytes: number;
  private written = 0;
  /** Set once the head is full: the lines after it, the last tailBytes of them kept. */
  private held: TailRing | undefined;
  private readonly onClosed: ((log: BuildLog) => void) | undefined;
  private readonly onLines: ((lines: readonly string[]) => void) | undefined;
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
    this.onLines = options.onLines;
    const cap = options.maxBytes ?? DEFAULT_LOG_CAP_BYTES;
    if (!Number.isInteger(cap) || cap < MIN_LOG_CAP_BYTES) {
      throw new RangeError(`a build log's cap must be an integer of at least ${MIN_LOG_CAP_BYTES} bytes, not ${cap}`);
    }
    this.headBytes = Math.floor(cap / 2);
    this.tailBytes = cap - this.headBytes;
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
    this.onLines?.(lines);
    if (this.writeError) return;
    const through: Buffer[] = [];
    for (const l of lines) {
      // A line longer than the tail could not be kept whole in it.
      const bytes = encodeLine(l, this.tailBytes);
      if (!this.held && this.written + bytes.length <= this.headBytes) {
        through.push(bytes);
        this.written += bytes.length;
        continue;
      }
      if (!this.held) {
        this.held = new TailRing(this.tailBytes);
        const [head, tail] = [formatBytes(this.headBytes), formatBytes(this.tailBytes)];
        const marker = `this log passed ${head}; what follows is held back, and its last ${tail} are written when the build ends`;
        through.push(Buffer.from(`... [vmbuild: ${marker}] ...\n`, "utf8"));
      }
      this.held.push(bytes);
    }
    if (through.length > 0) this.out.write(Buffer.concat(through), () => this.changed());
  }

  tail(n: number): string {
    return this.recent.slice(-n).join("\n");
  }

  close(): Promise<void> {
    this.ending ??= new Promise<void>((resolve) => {
      if (this.held && !this.writeError && !this.out.destroyed) this.writeHeld(this.held);
      const done = () => {
        this.held = undefined;
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

  /** The marker saying what was cut, then the held lines; the ring is not touched again once closing. */
  private writeHeld(held: TailRing): void {
    const kept = held.kept();
    const cutBytes = held.bytes - kept.bytes;
    const cutLines = held.lines - kept.lines;
    const [head, tail] = [formatBytes(this.headBytes), formatBytes(this.tailBytes)];
    const marker =
      cutBytes > 0
        ? `${formatBytes(cutBytes)} (${countOf(cutLines, "line")}) cut here; the log keeps its first ${head} and its last ${tail}`
        : `nothing cut; what was held back follows (${countOf(kept.lines, "line")})`;
    this.out.write(`... [vmbuild: ${marker}] ...\n`, () => this.changed());
    for (const part of kept.parts) this.out.write(part, () => this.changed());
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
