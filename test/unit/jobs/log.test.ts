import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BuildLog, formatBytes, LogReader, maskSecrets, TailRing } from "../../../src/jobs/log.js";
import { makeTempDir } from "../../support/temp-dir.js";

const CAP = 4096;
// The two marker lines are the only bytes a log may hold beyond its cap.
const MARKERS = 400;
const HELD = /^\.\.\. \[vmbuild: this log passed 2 KiB; what follows is held back, and its last 2 KiB are written when the build ends\] \.\.\.$/;
const CUT = /^\.\.\. \[vmbuild: (.+) \(([\d,]+) lines?\) cut here; the log keeps its first 2 KiB and its last 2 KiB\] \.\.\.$/;

const numbered = (i: number) => `[linux/amd64] line-${i}-xxxxxxxxxxxxxxxxxxxxxxxx`;

/** Accumulates a stream's text; `until(check)` resolves once check(text) holds, `ended` once the stream ends. */
function watch(stream: Readable): { text(): string; until(check: (text: string) => boolean): Promise<void>; ended: Promise<void> } {
  let text = "";
  const waiters: { check: (t: string) => boolean; resolve: () => void }[] = [];
  stream.on("data", (chunk: Buffer) => {
    text += chunk.toString("utf8");
    for (const w of waiters.filter((x) => x.check(text))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  const ended = new Promise<void>((resolve, reject) => {
    stream.once("end", () => resolve());
    stream.once("error", reject);
  });
  return {
    text: () => text,
    ended,
    until: (check) => (check(text) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ check, resolve }))),
  };
}

describe("BuildLog cap", () => {
  let dir: { path: string; remove(): Promise<void> };
  beforeEach(async () => {
    dir = await makeTempDir("log-cap");
  });
  afterEach(async () => {
    await dir.remove();
  });

  it("changes nothing below the cap", async () => {
    const log = new BuildLog(join(dir.path, "small.log"), { maxBytes: CAP });
    const lines = Array.from({ length: 40 }, (_, i) => numbered(i));
    for (const l of lines) log.line(l);
    await log.close();
    const text = await readFile(log.path, "utf8");
    expect(text).toBe(`${lines.join("\n")}\n`);
    expect(text.length).toBeLessThanOrEqual(CAP / 2);
  });

  it("keeps the head and the tail of a log far over the cap, says what was cut, and never exceeds the cap", async () => {
    const log = new BuildLog(join(dir.path, "big.log"), { maxBytes: CAP });
    const total = 20_000;
    const all = Array.from({ length: total }, (_, i) => numbered(i));
    let largest = 0;
    for (let i = 0; i < total; i += 500) {
      log.line(all.slice(i, i + 500).join("\n"));
      await new Promise((resolve) => setImmediate(resolve));
      largest = Math.max(largest, (await stat(log.path)).size);
    }
    // While the build runs: at most the head and the first marker.
    expect(largest).toBeLessThanOrEqual(CAP / 2 + MARKERS / 2);
    await log.close();
    const text = await readFile(log.path, "utf8");
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(CAP + MARKERS);
    expect(Buffer.byteLength(text)).toBeGreaterThan(CAP - 200);

    const lines = text.replace(/\n$/, "").split("\n");
    const held = lines.findIndex((l) => HELD.test(l));
    const cut = lines.findIndex((l) => CUT.test(l));
    expect(held).toBeGreaterThan(0);
    expect(cut).toBe(held + 1);
    const head = lines.slice(0, held);
    const tail = lines.slice(cut + 1);
    // Whole lines, in order: the first ones, then the last ones.
    expect(head).toEqual(all.slice(0, head.length));
    expect(tail).toEqual(all.slice(total - tail.length));
    expect(Buffer.byteLength(`${head.join("\n")}\n`)).toBeLessThanOrEqual(CAP / 2);
    expect(Buffer.byteLength(`${tail.join("\n")}\n`)).toBeLessThanOrEqual(CAP / 2);

    const [, size, count] = CUT.exec(lines[cut] ?? "") ?? [];
    const cutLines = all.slice(head.length, total - tail.length);
    expect(count).toBe(cutLines.length.toLocaleString("en-US"));
    expect(size).toBe(formatBytes(Buffer.byteLength(`${cutLines.join("\n")}\n`)));
    // The failure message still gets the very last lines.
    expect(log.tail(2)).toBe(all.slice(-2).join("\n"));
  });

  it("shows a live reader the head, then the marker, then the cut and the tail at close", async () => {
    const log = new BuildLog(join(dir.path, "live.log"), { maxBytes: CAP });
    const reader = watch(new LogReader(log.path, log));
    let i = 0;
    while (i < 200) log.line(numbered(i++));
    await reader.until((t) => t.includes("held back"));
    const atMarker = reader.text();
    const shown = atMarker.replace(/\n$/, "").split("\n");
    expect(shown.at(-1)).toMatch(HELD);
    expect(shown.slice(0, -1)).toEqual(Array.from({ length: shown.length - 1 }, (_, n) => numbered(n)));
    for (let n = 0; n < 5000; n++) log.line(numbered(i++));
    await new Promise((resolve) => setTimeout(resolve, 20));
    // Held back: nothing new for the reader until the build ends.
    expect(reader.text()).toBe(atMarker);
    log.line("the last line");
    await log.close();
    await reader.ended;
    const rest = reader.text().slice(atMarker.length).split("\n");
    expect(rest[0]).toMatch(CUT);
    expect(rest.at(-2)).toBe("the last line");
    expect(reader.text()).toBe(await readFile(log.path, "utf8"));
  });

  it("writes the held lines with a note when nothing had to be cut", async () => {
    const log = new BuildLog(join(dir.path, "just-over.log"), { maxBytes: CAP });
    const all = Array.from({ length: 80 }, (_, i) => numbered(i));
    for (const l of all) log.line(l);
    await log.close();
    const lines = (await readFile(log.path, "utf8")).replace(/\n$/, "").split("\n");
    const held = lines.findIndex((l) => HELD.test(l));
    expect(held).toBeGreaterThan(0);
    expect(lines[held + 1]).toBe(`... [vmbuild: nothing cut; what was held back follows (${80 - held} lines)] ...`);
    expect([...lines.slice(0, held), ...lines.slice(held + 2)]).toEqual(all);
  });

  it("masks secrets before lines are written or held, in the head and in the tail", async () => {
    const log = new BuildLog(join(dir.path, "secret.log"), { maxBytes: CAP, redact: maskSecrets(["hunter2"]) });
    log.line("login with hunter2");
    for (let i = 0; i < 2000; i++) log.line(numbered(i));
    log.line("again hunter2");
    await log.close();
    const text = await readFile(log.path, "utf8");
    expect(text).not.toContain("hunter2");
    expect(text.startsWith("login with ***\n")).toBe(true);
    expect(text.endsWith("again ***\n")).toBe(true);
  });

  it("cuts a line longer than half the cap, at a character, saying how long it was", async () => {
    const log = new BuildLog(join(dir.path, "long.log"), { maxBytes: CAP });
    log.line("é".repeat(5000));
    log.line("after");
    await log.close();
    const lines = (await readFile(log.path, "utf8")).replace(/\n$/, "").split("\n");
    expect(lines[0]).toMatch(/^(é)+ \.\.\. \[vmbuild: line cut, 9\.8 KiB\]$/);
    expect(Buffer.byteLength(`${lines[0]}\n`)).toBeLessThanOrEqual(CAP / 2);
    expect(lines.slice(1)).toHaveLength(3);
    expect(lines[1]).toMatch(HELD);
    expect(lines[2]).toBe("... [vmbuild: nothing cut; what was held back follows (1 line)] ...");
    expect(lines[3]).toBe("after");
  });

  it("refuses a cap too small to hold a line and a marker", () => {
    expect(() => new BuildLog(join(dir.path, "tiny.log"), { maxBytes: 100 })).toThrow(/at least 1024 bytes/);
  });
});

describe("TailRing", () => {
  const push = (ring: TailRing, lines: string[]) => lines.forEach((l) => ring.push(Buffer.from(`${l}\n`)));
  const text = (ring: TailRing) => Buffer.concat(ring.kept().parts).toString("utf8");

  it("keeps the whole lines among the last bytes, wherever the ring wrapped", () => {
    const lines = Array.from({ length: 200 }, (_, i) => `${"ü".repeat(i % 7)}l${i}`);
    for (const window of [16, 17, 50, 63, 64, 100, 257]) {
      const ring = new TailRing(window);
      for (let n = 0; n < lines.length; n++) {
        push(ring, [lines[n] ?? ""]);
        const kept = ring.kept();
        const got = text(ring);
        expect(kept.bytes).toBeLessThanOrEqual(window);
        expect(kept.bytes).toBe(Buffer.byteLength(got));
        // The longest run of last lines that fits, no more, no less.
        let expected = "";
        for (let k = n; k >= 0; k--) {
          const candidate = `${lines[k]}\n${expected}`;
          if (Buffer.byteLength(candidate) > window) break;
          expected = candidate;
        }
        expect(got).toBe(expected);
        expect(kept.lines).toBe(expected.split("\n").length - 1);
      }
      expect(ring.lines).toBe(lines.length);
    }
  });

  it("keeps a line that starts exactly where the window starts", () => {
    const ring = new TailRing(8);
    push(ring, ["abc", "def", "ghi"]);
    expect(text(ring)).toBe("def\nghi\n");
  });
});

describe("formatBytes", () => {
  it("uses binary units, one decimal when not whole", () => {
    expect([0, 1023, 1024, 1536, 8 * 1024 ** 2, 283.4 * 1024 ** 2, 3 * 1024 ** 3].map(formatBytes)).toEqual([
      "0 B",
      "1023 B",
      "1 KiB",
      "1.5 KiB",
      "8 MiB",
      "283.4 MiB",
      "3 GiB",
    ]);
  });
});
