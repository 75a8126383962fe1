import { readFile, stat, utimes, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  chooseExpired,
  latest,
  logLines,
  LogStore,
  maskSecrets,
  PRUNE_SPACING_MS,
  type LogEntry,
} from "../../../src/jobs/log-store.js";
import { makeTempDir } from "../../support/temp-dir.js";

const run = { namespace: "team-a", name: "build-1", uid: "0b6c1f7e-2f0e-4c3e-9a59-4d1f0f6a1c2d" };

/** Collects a stream's text, resolving when it ends. */
function collect(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    stream.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")));
    stream.on("end", () => resolve(text));
    stream.on("error", reject);
  });
}

/** Accumulates a stream's text; `until(needle)` resolves once it contains needle, `ended` once the stream ends. */
function watch(stream: Readable): { text(): string; until(needle: string): Promise<void>; ended: Promise<void>; hasEnded(): boolean } {
  let text = "";
  let done = false;
  const waiters: { needle: string; resolve: () => void }[] = [];
  stream.on("data", (chunk: Buffer) => {
    text += chunk.toString("utf8");
    for (const w of waiters.filter((x) => text.includes(x.needle))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  const ended = new Promise<void>((resolve, reject) => {
    stream.once("end", () => {
      done = true;
      resolve();
    });
    stream.once("error", reject);
  });
  return {
    text: () => text,
    ended,
    hasEnded: () => done,
    until: (needle) =>
      text.includes(needle) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ needle, resolve })),
  };
}

describe("chooseExpired", () => {
  const now = 1_000_000;
  const log = (path: string, bytes: number, ageMs: number, live = false) => ({ path, bytes, mtimeMs: now - ageMs, live });

  it("removes finished logs older than the age limit, never a live one", () => {
    const logs = [log("old", 10, 5000), log("old-live", 10, 9000, true), log("new", 10, 100)];
    expect(chooseExpired(logs, { maxBytes: 1e9, maxAgeMs: 1000 }, now)).toEqual(["old"]);
  });

  it("removes whole logs, oldest first, until the total (live ones counted) fits", () => {
    const logs = [log("c", 30, 100), log("a", 30, 300), log("live", 50, 400, true), log("b", 30, 200)];
    // 140 bytes; limit 90: a (110) then b (80) go, c stays.
    expect(chooseExpired(logs, { maxBytes: 90, maxAgeMs: 1e9 }, now)).toEqual(["a", "b"]);
  });

  it("removes every finished log when live ones alone exceed the size, and nothing when all fits", () => {
    const logs = [log("a", 10, 300), log("live", 100, 400, true)];
    expect(chooseExpired(logs, { maxBytes: 50, maxAgeMs: 1e9 }, now)).toEqual(["a"]);
    expect(chooseExpired(logs, { maxBytes: 110, maxAgeMs: 1e9 }, now)).toEqual([]);
  });
});

describe("latest", () => {
  const entry = (attempt: number, modified: number, live = false): LogEntry => ({
    uid: "u",
    attempt,
    path: `u-${attempt}.log`,
    bytes: 1,
    modified: new Date(modified),
    live,
  });

  it("prefers a live log, then the most recently written, then the higher attempt", () => {
    expect(latest([entry(0, 5), entry(1, 3, true)])?.attempt).toBe(1);
    expect(latest([entry(0, 5), entry(1, 3)])?.attempt).toBe(0);
    expect(latest([entry(0, 5), entry(1, 5)])?.attempt).toBe(1);
    expect(latest([])).toBeUndefined();
  });
});

describe("redaction", () => {
  it("splits text into lines and passes each through the redactor", () => {
    const redact = (l: string) => l.replaceAll("s3cret", "***");
    expect(logLines("a s3cret\r\nb\nc s3crets3cret\n\n", redact)).toEqual(["a ***", "b", "c ******"]);
  });

  it("masks secrets, the longest first, and leaves lines alone when there are none", () => {
    const mask = maskSecrets(["pass", "passw0rd", "", "pass"]);
    expect(mask("login me:passw0rd then pass")).toBe("login me:*** then ***");
    expect(maskSecrets([])("nothing secret")).toBe("nothing secret");
  });

  it("writes and keeps only redacted lines, composing the store's redactor with the run's", async () => {
    const dir = await makeTempDir("log-redact");
    try {
      const store = new LogStore({ root: dir.path, redact: (l) => l.replaceAll("token=abc", "token=***") });
      const log = store.open(run, 0, { redact: (l) => l.replaceAll("hunter2", "***") });
      log.line("[linux/arm64] STEP 1/2: RUN curl -u me:hunter2 https://x/?token=abc");
      expect(log.tail(1)).toBe("[linux/arm64] STEP 1/2: RUN curl -u me:*** https://x/?token=***");
      await log.close();
      const text = await readFile(log.path, "utf8");
      expect(text).toBe("[linux/arm64] STEP 1/2: RUN curl -u me:*** https://x/?token=***\n");
    } finally {
      await dir.remove();
    }
  });
});

describe("LogStore", () => {
  let dir: { path: string; remove(): Promise<void> };
  beforeEach(async () => {
    dir = await makeTempDir("log-store");
  });
  afterEach(async () => {
    await dir.remove();
  });

  it("stores each attempt at <root>/<namespace>/<name>/<uid>-<attempt>.log and lists them", async () => {
    const store = new LogStore({ root: dir.path });
    const first = store.open(run, 0);
    first.line("attempt 0");
    await first.close();
    expect(first.path).toBe(join(dir.path, "team-a", "build-1", `${run.uid}-0.log`));
    const second = store.open(run, 1);
    second.line("attempt 1");
    const entries = await store.list("team-a", "build-1");
    expect(entries.map((e) => [e.attempt, e.live])).toEqual([
      [0, false],
      [1, true],
    ]);
    await second.close();
    expect((await store.list("team-a", "build-1")).map((e) => e.live)).toEqual([false, false]);
    expect(await store.list("team-a", "other")).toEqual([]);
    expect(await store.list("../etc", "passwd")).toEqual([]);
  });

  it("refuses run references that are not Kubernetes names", () => {
    const store = new LogStore({ root: dir.path });
    expect(() => store.open({ ...run, name: "../x" }, 0)).toThrow(/not a valid run reference/);
    expect(() => store.open(run, -1)).toThrow(/not a valid run reference/);
  });

  it("reads a finished log whole, the latest attempt by default or the one asked for", async () => {
    const store = new LogStore({ root: dir.path });
    const a0 = store.open(run, 0);
    a0.line("zero");
    await a0.close();
    const a1 = store.open(run, 1);
    a1.line("one");
    await a1.close();
    const latestRead = await store.read("team-a", "build-1");
    expect(latestRead?.entry.attempt).toBe(1);
    expect(await collect(latestRead?.stream ?? failNoLog())).toBe("one\n");
    const zero = await store.read("team-a", "build-1", { attempt: 0 });
    expect(await collect(zero?.stream ?? failNoLog())).toBe("zero\n");
    expect(await store.read("team-a", "build-1", { attempt: 7 })).toBeUndefined();
    expect(await store.read("team-a", "nothing")).toBeUndefined();
  });

  it("follows a live log: what was written, then new lines as they come, and ends when the writer closes", async () => {
    const store = new LogStore({ root: dir.path });
    const log = store.open(run, 0);
    log.line("before");
    const found = await store.read("team-a", "build-1");
    expect(found?.entry.live).toBe(true);
    const follower = watch(found?.stream ?? failNoLog());
    await follower.until("before\n");
    for (let i = 0; i < 50; i++) log.line(`[linux/amd64] line ${i}`);
    await follower.until("line 49\n");
    expect(follower.hasEnded()).toBe(false);
    log.line("last");
    await log.close();
    await follower.ended;
    expect(follower.text()).toBe(
      ["before", ...Array.from({ length: 50 }, (_, i) => `[linux/amd64] line ${i}`), "last", ""].join("\n"),
    );
  });

  it("ends a follower at the current end of the file on stopFollowing, and releases it on destroy", async () => {
    const store = new LogStore({ root: dir.path });
    const log = store.open(run, 0);
    log.line("one");
    const stopped = await store.read("team-a", "build-1");
    const follower = watch(stopped?.stream ?? failNoLog());
    await follower.until("one\n");
    stopped?.stream.stopFollowing();
    await follower.ended;
    expect(follower.text()).toBe("one\n");

    const destroyed = (await store.read("team-a", "build-1"))?.stream ?? failNoLog();
    await watch(destroyed).until("one\n");
    destroyed.destroy();
    await new Promise((resolve) => destroyed.once("close", resolve));
    log.line("after");
    await log.close();
  });

  it("prunes at an open, then at most once per PRUNE_SPACING_MS however many logs open meanwhile", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
    const store = new LogStore({ root: dir.path });
    const prune = vi.spyOn(store, "prune");
    const logs = [];
    try {
      for (const attempt of [0, 1, 2]) logs.push(store.open(run, attempt));
      expect(prune).toHaveBeenCalledTimes(1);
      vi.advanceTimersByTime(PRUNE_SPACING_MS - 1);
      expect(prune).toHaveBeenCalledTimes(1);
      // The opens after the first get one prune, once the spacing has passed.
      vi.advanceTimersByTime(1);
      expect(prune).toHaveBeenCalledTimes(2);
      vi.advanceTimersByTime(3 * PRUNE_SPACING_MS);
      expect(prune).toHaveBeenCalledTimes(2);
      logs.push(store.open(run, 3));
      expect(prune).toHaveBeenCalledTimes(3);
    } finally {
      vi.useRealTimers();
      for (const log of logs) await log.close();
      await store.prune();
    }
  });

  it("prunes the oldest finished logs by size and age, never a live one, and empty run directories", async () => {
    const now = Date.now();
    const store = new LogStore({ root: dir.path, maxBytes: 250, maxAgeMs: 3_600_000, now: () => now });
    const old = async (name: string, bytes: number, ageMs: number) => {
      const path = join(dir.path, "team-a", name, `${run.uid}-0.log`);
      await mkdir(join(dir.path, "team-a", name), { recursive: true });
      await writeFile(path, "x".repeat(bytes));
      const t = new Date(now - ageMs);
      await utimes(path, t, t);
      return path;
    };
    const ancient = await old("ancient", 10, 2 * 3_600_000);
    const older = await old("older", 100, 60_000);
    const newer = await old("newer", 100, 30_000);
    const live = store.open({ ...run, name: "live" }, 0);
    live.line("y".repeat(99));
    while ((await stat(live.path)).size < 100) await new Promise((resolve) => setTimeout(resolve, 5));
    await store.prune();
    // ancient is too old; then 300 bytes > 250: older goes, newer (100) + live (100) fit.
    await expect(stat(ancient)).rejects.toThrow();
    await expect(stat(older)).rejects.toThrow();
    await expect(stat(join(dir.path, "team-a", "older"))).rejects.toThrow();
    expect((await stat(newer)).size).toBe(100);
    expect((await stat(live.path)).size).toBe(100);
    await live.close();
  });
});

function failNoLog(): never {
  throw new Error("expected a log");
}

describe("LogStore: the mirror of each log (its stored copy)", () => {
  let dir: { path: string; remove(): Promise<void> };
  beforeEach(async () => {
    dir = await makeTempDir("log-store-mirror");
  });
  afterEach(async () => {
    await dir.remove();
  });

  it("gets every line masked and uncut, then the close; nothing for a log that could not be opened", async () => {
    const got: string[] = [];
    const opened: string[] = [];
    const store = new LogStore({
      root: dir.path,
      maxBytesPerLog: 1024,
      redact: maskSecrets(["hunter2"]),
      mirrors: {
        open: (r, attempt) => {
          opened.push(`${r.uid}/${attempt}`);
          return { lines: (lines) => got.push(...lines), close: () => got.push("<closed>") };
        },
      },
    });
    const log = store.open(run, 2, { redact: maskSecrets(["s3cret"]) });
    log.line("password hunter2\ntoken s3cret");
    for (let i = 0; i < 100; i++) log.line(`line ${i} ${"x".repeat(20)}`);
    await log.close();
    log.line("after the close");
    expect(opened).toEqual([`${run.uid}/2`]);
    expect(got.slice(0, 2)).toEqual(["password ***", "token ***"]);
    // The file is cut at 1 KiB; the mirror sees every line, and bounds its copy itself.
    expect(got).toHaveLength(2 + 100 + 1);
    expect(got.at(-1)).toBe("<closed>");
    expect(() => store.open({ ...run, uid: "not a uid" }, 0)).toThrow(/not a valid run reference/);
    expect(opened).toHaveLength(1);
  });
});
