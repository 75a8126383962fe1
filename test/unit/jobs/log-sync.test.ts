import { Writable } from "node:stream";
import { ApiException } from "@kubernetes/client-node";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { VMBuildLog, VMBuildLogFields } from "../../../src/api/vmbuild-log.js";
import type { LogObjects } from "../../../src/jobs/log-object.js";
import type { RunRef } from "../../../src/jobs/log-store.js";
import { LogCopies } from "../../../src/jobs/log-sync.js";

// The copy's writer against an in-memory API: how many writes a build costs, and that failures stay in the
// controller's log.

const run: RunRef = { namespace: "team-a", name: "build-1", uid: "6f1c0e4e-0d7a-4c38-9f57-3b3f0e9c2a10" };
const SYNC_MS = 10_000;

interface Call {
  verb: "create" | "update" | "get";
  fields?: VMBuildLogFields;
  resourceVersion?: string;
}

/** One namespace of VMBuildLogs in memory; `fail` makes the next calls of a verb throw. */
function memoryAPI() {
  const calls: Call[] = [];
  let stored: VMBuildLog | undefined;
  let version = 0;
  const fail: Partial<Record<Call["verb"], number[]>> = {};
  const maybeFail = (verb: Call["verb"]) => {
    const code = fail[verb]?.shift();
    if (code !== undefined) throw new ApiException(code, `HTTP ${code}`, { message: `${verb} refused (${code})` }, {});
  };
  const save = (fields: VMBuildLogFields) => {
    version += 1;
    stored = { ...fields, metadata: { name: `vmbuild-log-${run.uid}-0`, namespace: run.namespace, resourceVersion: String(version) } };
    return { resourceVersion: String(version), requestBytes: JSON.stringify(fields).length };
  };
  const objects: LogObjects = {
    async create(_run, _attempt, fields) {
      calls.push({ verb: "create", fields });
      maybeFail("create");
      if (stored) throw new ApiException(409, "AlreadyExists", {}, {});
      return save(fields);
    },
    async update(_run, _attempt, fields, resourceVersion) {
      calls.push({ verb: "update", fields, resourceVersion });
      maybeFail("update");
      if (!stored) throw new ApiException(404, "NotFound", {}, {});
      if (stored.metadata.resourceVersion !== resourceVersion) throw new ApiException(409, "Conflict", {}, {});
      return save(fields);
    },
    async get() {
      calls.push({ verb: "get" });
      maybeFail("get");
      return stored;
    },
  };
  return { objects, calls, fail, stored: () => stored, preset: (fields: VMBuildLogFields) => save(fields) };
}

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split("\n").filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: "debug" }, stream), lines };
}

describe("LogCopies: writing a build log's VMBuildLog", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const setup = () => {
    const api = memoryAPI();
    const out = capture();
    const copies = new LogCopies({ objects: api.objects, replica: "vmbuild-a-1", maxBytes: 64 * 1024, syncMs: SYNC_MS, log: out.log });
    return { api, out, copies, mirror: copies.open(run, 0) };
  };

  it("a build shorter than the interval: exactly one create, complete", async () => {
    const { api, out, copies, mirror } = setup();
    mirror.lines(["STEP 1/2: FROM busybox", "pushed 127.0.0.1:5000/app@sha256:0"]);
    await vi.advanceTimersByTimeAsync(SYNC_MS - 1);
    expect(api.calls).toEqual([]);
    mirror.close();
    await copies.drain(1_000);
    expect(api.calls.map((c) => c.verb)).toEqual(["create"]);
    expect(api.stored()).toMatchObject({ complete: true, cut: false, replica: "vmbuild-a-1", runName: "build-1", attempt: 0 });
    expect(api.stored()?.text).toBe("STEP 1/2: FROM busybox\npushed 127.0.0.1:5000/app@sha256:0\n");
    await vi.advanceTimersByTimeAsync(10 * SYNC_MS);
    expect(api.calls).toHaveLength(1);
    expect(out.lines.find((l) => l.msg === "build log stored")).toMatchObject({ requests: 1, writes: 1, bytes: 58 });
  });

  it("a longer build: a create at the first interval, an update per interval while it grows, the last at the close", async () => {
    const { api, copies, mirror } = setup();
    mirror.lines(["one"]);
    await vi.advanceTimersByTimeAsync(SYNC_MS);
    expect(api.calls.map((c) => c.verb)).toEqual(["create"]);
    expect(api.stored()).toMatchObject({ complete: false, text: "one\n" });
    mirror.lines(["two"]);
    await vi.advanceTimersByTimeAsync(SYNC_MS);
    expect(api.stored()).toMatchObject({ complete: false, text: "one\ntwo\n" });
    // Quiet for three intervals (a long RUN step): no writes.
    await vi.advanceTimersByTimeAsync(3 * SYNC_MS);
    expect(api.calls).toHaveLength(2);
    mirror.lines(["three"]);
    mirror.close();
    await copies.drain(1_000);
    expect(api.calls.map((c) => [c.verb, c.resourceVersion])).toEqual([["create", undefined], ["update", "1"], ["update", "2"]]);
    expect(api.stored()).toMatchObject({ complete: true, text: "one\ntwo\nthree\n", bytes: 14 });
  });

  it("a refused write is logged and tried again an interval later; the last one is not retried when refused", async () => {
    const { api, out, copies, mirror } = setup();
    api.fail.create = [403, 403, 403];
    mirror.lines(["one"]);
    await vi.advanceTimersByTimeAsync(SYNC_MS);
    const warned = out.lines.filter((l) => l.level === 40);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ run: "team-a/build-1", attempt: 0, err: "HTTP 403: create refused (403)" });
    // The log keeps growing meanwhile.
    mirror.lines(["two"]);
    await vi.advanceTimersByTimeAsync(SYNC_MS);
    expect(api.calls.map((c) => c.verb)).toEqual(["create", "create"]);
    mirror.close();
    await copies.drain(1_000);
    await vi.advanceTimersByTimeAsync(10 * SYNC_MS);
    expect(api.calls.map((c) => c.verb)).toEqual(["create", "create", "create"]);
    expect(out.lines.filter((l) => l.level === 40).map((l) => l.retry)).toEqual([undefined, undefined, false]);
    expect(api.stored()).toBeUndefined();
  });

  it("the last write, failing for a reason that may pass, is tried again after 1, 2 and 4 s, then given up", async () => {
    const { api, out, copies, mirror } = setup();
    api.fail.create = [500, 503, 500, 500];
    mirror.lines(["one"]);
    mirror.close();
    const drained = copies.drain(60_000);
    await vi.advanceTimersByTimeAsync(7_000);
    await drained;
    expect(api.calls.map((c) => c.verb)).toEqual(["create", "create", "create", "create"]);
    expect(out.lines.filter((l) => l.level === 40).map((l) => l.retry)).toEqual([true, true, true, false]);
    expect(api.stored()).toBeUndefined();
  });

  it("continues the copy another replica began for the same attempt, after a marker naming this one", async () => {
    const { api, copies, mirror } = setup();
    api.preset({ runName: "build-1", attempt: 0, replica: "vmbuild-old-9", complete: false, bytes: 10, cut: false, text: "earlier 1\n" });
    mirror.lines(["mine 1"]);
    mirror.close();
    await copies.drain(1_000);
    expect(api.calls.map((c) => c.verb)).toEqual(["create", "get", "update"]);
    expect(api.stored()).toMatchObject({
      replica: "vmbuild-a-1",
      complete: true,
      text: "earlier 1\n--- continued on replica vmbuild-a-1 ---\nmine 1\n",
      bytes: 10 + 41 + 7,
    });
  });

  it("stops writing, and says so, once another replica has written the copy since", async () => {
    const { api, out, copies, mirror } = setup();
    mirror.lines(["one"]);
    await vi.advanceTimersByTimeAsync(SYNC_MS);
    api.preset({ runName: "build-1", attempt: 0, replica: "vmbuild-b-2", complete: false, bytes: 3, cut: false, text: "b\n" });
    mirror.lines(["two"]);
    mirror.close();
    await copies.drain(1_000);
    expect(api.calls.map((c) => c.verb)).toEqual(["create", "update", "get"]);
    expect(api.stored()?.replica).toBe("vmbuild-b-2");
    expect(out.lines.some((l) => l.level === 40 && String(l.msg).includes("another replica writes it now"))).toBe(true);
  });
});
