// The sim's append-only record of VM lifecycles (<state-dir>/record.jsonl): what tests assert on, e.g. that every
// lease ended in a scratch. Writer and typed readers live together so the format has one definition.
import { appendFileSync, existsSync, readFileSync, watch } from "node:fs";
import { join } from "node:path";

export type RecordEvent = "vm-created" | "vmi-created" | "podman-started" | "ready" | "scratched" | "vm-deleted";

export interface RecordEntry {
  /** ISO timestamp of when the sim wrote the line. */
  ts: string;
  event: RecordEvent;
  namespace: string;
  vm: string;
  /** VMI uid; null for vm-created / vm-deleted. */
  vmi: string | null;
  /** The VM's address on the testenv bridge; null before an address was allocated. */
  ip: string | null;
  /** The VMI's podman storage directory ("disk"); null when none was created. */
  storageDir: string | null;
  /** VM uid, on vm-created / vm-deleted. */
  vmUid?: string;
  /** podman service PID, on podman-started. */
  pid?: number;
  /** ready: ms from the sim seeing the VMI to Ready; scratched: ms the scratch took. */
  durationMs?: number;
}

export function recordPath(stateDir: string): string {
  return join(stateDir, "record.jsonl");
}

export class RecordWriter {
  private readonly path: string;

  constructor(stateDir: string) {
    this.path = recordPath(stateDir);
  }

  append(entry: Omit<RecordEntry, "ts">): void {
    const line: RecordEntry = { ts: new Date().toISOString(), ...entry };
    // One write() with O_APPEND per line: readers never see a torn line from this single writer.
    appendFileSync(this.path, `${JSON.stringify(line)}\n`);
  }
}

export function readRecord(stateDir: string): RecordEntry[] {
  const path = recordPath(stateDir);
  if (!existsSync(path)) return [];
  const entries: RecordEntry[] = [];
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (line.trim() === "") continue;
    try {
      entries.push(JSON.parse(line) as RecordEntry);
    } catch (err) {
      throw new Error(`${path}: unparsable record line ${JSON.stringify(line)}: ${String(err)}`);
    }
  }
  return entries;
}

export interface VMRef {
  namespace: string;
  vm: string;
}

function matches(entry: RecordEntry, ref?: VMRef): boolean {
  return ref === undefined || (entry.namespace === ref.namespace && entry.vm === ref.vm);
}

/** Entries of one VM (all its VMIs), in order. */
export function entriesFor(entries: readonly RecordEntry[], ref: VMRef): RecordEntry[] {
  return entries.filter((e) => matches(e, ref));
}

/** podman-started entries, optionally of one VM. */
export function startedVMs(entries: readonly RecordEntry[], ref?: VMRef): RecordEntry[] {
  return entries.filter((e) => e.event === "podman-started" && matches(e, ref));
}

/** scratched entries (podman dead and storage removed), optionally of one VM. */
export function scratchedVMs(entries: readonly RecordEntry[], ref?: VMRef): RecordEntry[] {
  return entries.filter((e) => e.event === "scratched" && matches(e, ref));
}

/** VMI uids that were started but not (yet) scratched: running build hosts, or leaks at the end of a test. */
export function unscratchedVMIs(entries: readonly RecordEntry[]): RecordEntry[] {
  const scratched = new Set(scratchedVMs(entries).map((e) => e.vmi));
  return startedVMs(entries).filter((e) => !scratched.has(e.vmi));
}

/**
 * Resolves with the first entry matching `predicate` (already present or appended later); rejects after timeoutMs.
 * Watches the state dir rather than polling, so tests wait exactly as long as the sim needs.
 */
export function waitForRecord(
  stateDir: string,
  predicate: (entry: RecordEntry) => boolean,
  timeoutMs: number,
): Promise<RecordEntry> {
  return new Promise<RecordEntry>((resolve, reject) => {
    const check = (): boolean => {
      const found = readRecord(stateDir).find(predicate);
      if (found === undefined) return false;
      finish();
      resolve(found);
      return true;
    };
    // Watch the directory: record.jsonl may not exist yet.
    const watcher = watch(stateDir, () => void check());
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`no matching record entry in ${recordPath(stateDir)} within ${timeoutMs} ms`));
    }, timeoutMs);
    function finish(): void {
      clearTimeout(timer);
      watcher.close();
    }
    check();
  });
}
