import { formatBytes } from "./log.js";

// The pure half of a build log's stored copy (a VMBuildLog): what text it holds and when it is written.
//
// The text is bounded as BuildLog bounds the file: the first half of the budget as it comes, then only the last
// half, with a marker line where lines were cut. Here the budget counts each line as it travels in the request
// body, JSON-escaped, so a log full of control characters (6 bytes each as \u00XX) cannot push the object past
// etcd's request limit.

/** What a copy holds: the text, the bytes of the whole log written, and whether lines were cut from the text. */
export interface LogCopyText {
  text: string;
  bytes: number;
  cut: boolean;
}

/** Bytes `line` and its newline take in a JSON string. */
export function escapedBytes(line: string): number {
  return Buffer.byteLength(JSON.stringify(line)) - 2 + 2;
}

/** `line` cut (at a character) with a note so that it and its newline take at most `max` bytes escaped. */
export function cutLine(line: string, max: number): string {
  if (escapedBytes(line) <= max) return line;
  const note = ` ... [vmbuild: line cut, ${formatBytes(Buffer.byteLength(line))}]`;
  let [fits, over] = [0, line.length];
  while (over - fits > 1) {
    const mid = Math.floor((fits + over) / 2);
    if (escapedBytes(line.slice(0, mid) + note) <= max) fits = mid;
    else over = mid;
  }
  // Not half a surrogate pair.
  if (fits > 0 && /[\uD800-\uDBFF]/.test(line.charAt(fits - 1))) fits -= 1;
  return line.slice(0, fits) + note;
}

/** The marker line naming the replica that went on with an attempt another replica's copy began. */
export function continuedMarker(replica: string): string {
  return `--- continued on replica ${replica} ---`;
}

const plural = (n: number, noun: string) => `${n.toLocaleString("en-US")} ${noun}${n === 1 ? "" : "s"}`;

/** A log's head and tail within `budget` escaped bytes, plus a marker line once lines were cut between them. */
export class BoundedLog {
  private readonly headBudget: number;
  private readonly tailBudget: number;
  private readonly head: string[] = [];
  private headCost = 0;
  private headFull = false;
  // The tail is a queue: lines from `first` on; the dropped prefix is compacted away now and then.
  private tail: { line: string; cost: number }[] = [];
  private first = 0;
  private tailCost = 0;
  private cutBytes = 0;
  private cutLines = 0;
  /** Bytes written before this copy began (an earlier replica's), and whether that copy was cut. */
  private earlierBytes = 0;
  private earlierCut = false;
  private written = 0;

  constructor(private readonly budget: number) {
    this.headBudget = Math.floor(budget / 2);
    this.tailBudget = budget - this.headBudget;
  }

  push(line: string): void {
    this.written += Buffer.byteLength(line) + 1;
    // Half the tail at most: a long line still leaves room for the lines around it.
    const kept = cutLine(line, Math.floor(this.tailBudget / 2));
    const cost = escapedBytes(kept);
    if (!this.headFull && this.headCost + cost <= this.headBudget) {
      this.head.push(kept);
      this.headCost += cost;
      return;
    }
    this.headFull = true;
    this.tail.push({ line: kept, cost });
    this.tailCost += cost;
    while (this.tailCost > this.tailBudget) {
      const oldest = this.tail[this.first];
      if (!oldest) break;
      this.first += 1;
      this.tailCost -= oldest.cost;
      this.cutBytes += Buffer.byteLength(oldest.line) + 1;
      this.cutLines += 1;
    }
    if (this.first > 1024 && this.first * 2 > this.tail.length) {
      this.tail = this.tail.slice(this.first);
      this.first = 0;
    }
  }

  /** Bytes of the whole log written, before any cut. */
  get bytes(): number {
    return this.earlierBytes + this.written;
  }

  snapshot(): LogCopyText {
    const tail = this.tail.slice(this.first).map((t) => t.line);
    const marker =
      this.cutLines > 0
        ? [
            `... [vmbuild: ${formatBytes(this.cutBytes)} (${plural(this.cutLines, "line")}) cut here; the stored copy keeps ` +
              `its first ${formatBytes(this.headBudget)} and its last ${formatBytes(this.tailBudget)}] ...`,
          ]
        : [];
    const lines = [...this.head, ...marker, ...tail];
    return {
      text: lines.length > 0 ? `${lines.join("\n")}\n` : "",
      bytes: this.bytes,
      cut: this.earlierCut || this.cutLines > 0,
    };
  }

  /**
   * A copy that begins with `earlier` (another replica's copy of the same attempt), then a marker line naming
   * `replica`, then what this one holds; within the same budget.
   */
  continuing(earlier: LogCopyText, replica: string): BoundedLog {
    const next = new BoundedLog(this.budget);
    for (const line of linesOf(earlier.text)) next.push(line);
    const own = this.snapshot();
    next.push(continuedMarker(replica));
    for (const line of linesOf(own.text)) next.push(line);
    // Bytes as written: the earlier log's, the marker, then this one's, each once.
    next.earlierBytes = earlier.bytes + Buffer.byteLength(continuedMarker(replica)) + 1 + own.bytes - next.written;
    next.earlierCut = earlier.cut || own.cut;
    return next;
  }
}

function linesOf(text: string): string[] {
  return text === "" ? [] : text.replace(/\n$/, "").split("\n");
}

/** Where a copy's writer stands, for `nextSync`. Times in ms on one clock. */
export interface SyncState {
  openedAt: number;
  /** When the last write was tried, whether or not it went through. */
  lastTryAt?: number;
  /** Lines came since the last successful write (or none was made yet). */
  grown: boolean;
  closed: boolean;
  /** A write with complete: true went through. */
  completeWritten: boolean;
}

/**
 * Whether to write now, and when to look again: nothing until one interval after the open; then at most one write
 * per interval, and only while the log grows; at the close one last write (complete: true). A log that closes
 * within its first interval is written once.
 */
export function nextSync(s: SyncState, now: number, intervalMs: number): { write: boolean; checkInMs?: number } {
  if (s.closed) return { write: !s.completeWritten };
  const due = (s.lastTryAt ?? s.openedAt) + intervalMs;
  if (now < due) return { write: false, checkInMs: due - now };
  const neverTried = s.lastTryAt === undefined;
  return { write: s.grown || neverTried, checkInMs: intervalMs };
}
