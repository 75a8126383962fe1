import Fastify, { type FastifyInstance } from "fastify";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LogStore } from "../../../src/jobs/log-store.js";
import type { Authorizer } from "../../../src/server/auth.js";
import { logRoutes } from "../../../src/server/logs.js";
import type { StoredLogs } from "../../../src/server/stored-logs.js";
import type { VMBuildLog } from "../../../src/api/vmbuild-log.js";
import { makeTempDir } from "../../support/temp-dir.js";
import { logURL } from "../../../src/api/log-url.js";

describe("logURL", () => {
  it("joins the base URL, with or without a path or trailing slash, and encodes the parts", () => {
    expect(logURL("https://vmbuild.example.com", "team-a", "build-1")).toBe(
      "https://vmbuild.example.com/logs/team-a/build-1",
    );
    expect(logURL("https://example.com/vmbuild", "team-a", "build-1", 2)).toBe(
      "https://example.com/vmbuild/logs/team-a/build-1/2",
    );
    expect(logURL("http://127.0.0.1:8080/x/", "ns", "a.b")).toBe("http://127.0.0.1:8080/x/logs/ns/a.b");
    expect(logURL("https://example.com", "ns", "a/b?c")).toBe("https://example.com/logs/ns/a%2Fb%3Fc");
  });
});

describe("log routes", () => {
  let dir: { path: string; remove(): Promise<void> };
  let app: FastifyInstance;
  let store: LogStore;
  const asked: string[] = [];
  // Allows "Bearer ok" for namespace team-a; 401 without a token.
  const authorizer: Authorizer = {
    async authorize(header, access) {
      asked.push(`${access.namespace}/${access.name}`);
      if (!header) return { allowed: false, status: 401, message: "a bearer token is required" };
      return header === "Bearer ok" && access.namespace === "team-a"
        ? { allowed: true, user: "ok" }
        : { allowed: false, status: 403, message: "no" };
    },
  };

  beforeEach(async () => {
    dir = await makeTempDir("log-routes");
    store = new LogStore({ root: dir.path });
    app = Fastify();
    await app.register(logRoutes, { store, authorizer });
    asked.length = 0;
  });
  afterEach(async () => {
    await app.close();
    await dir.remove();
  });

  it("rejects invalid names before asking anyone", async () => {
    const res = await app.inject({ url: "/logs/Team_A/build-1", headers: { authorization: "Bearer ok" } });
    expect(res.statusCode).toBe(400);
    expect(res.body).toMatch(/namespace: expected a namespace name/);
    expect((await app.inject({ url: "/logs/team-a/build-1/x" })).statusCode).toBe(400);
    expect(asked).toEqual([]);
  });

  it("checks access before existence: 401 and 403 for a run without a log, 404 only for the allowed", async () => {
    const none = await app.inject({ url: "/logs/team-a/nothing" });
    expect(none.statusCode).toBe(401);
    expect(none.headers["www-authenticate"]).toBe('Bearer realm="vmbuild"');
    expect((await app.inject({ url: "/logs/team-b/nothing", headers: { authorization: "Bearer ok" } })).statusCode).toBe(403);
    const missing = await app.inject({ url: "/logs/team-a/nothing/3", headers: { authorization: "Bearer ok" } });
    expect(missing.statusCode).toBe(404);
    expect(missing.body).toBe("no build log for team-a/nothing attempt 3\n");
  });

  it("serves a finished log as text/plain with its attempt", async () => {
    const log = store.open({ namespace: "team-a", name: "build-1", uid: "u-1" }, 0);
    log.line("[linux/arm64] STEP 1/1: RUN uname -m\n[linux/arm64] aarch64");
    await log.close();
    const res = await app.inject({ url: "/logs/team-a/build-1/0", headers: { authorization: "Bearer ok" } });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toBe("text/plain; charset=utf-8");
    expect(res.headers["x-vmbuild-attempt"]).toBe("0");
    expect(res.headers["x-vmbuild-live"]).toBe("false");
    expect(res.body).toBe("[linux/arm64] STEP 1/1: RUN uname -m\n[linux/arm64] aarch64\n");
  });
});

describe("log routes: the stored copy when this replica has no file", () => {
  let dir: { path: string; remove(): Promise<void> };
  let app: FastifyInstance;
  let store: LogStore;
  const read: string[] = [];
  let failing = false;
  const copy = (attempt: number, complete: boolean, text: string): VMBuildLog => ({
    metadata: { name: `vmbuild-log-u-1-${attempt}`, namespace: "team-a", resourceVersion: "7" },
    runName: "build-1",
    attempt,
    replica: "vmbuild-a-1",
    complete,
    bytes: text.length,
    cut: false,
    text,
  });
  // build-1 (uid u-1) is on attempt 1 in the cache; attempt 0 is stored complete, attempt 1 live.
  const stored: StoredLogs = {
    run: (namespace, name) => (namespace === "team-a" && name === "build-1" ? { uid: "u-1", attempt: 1 } : undefined),
    async read(namespace, uid, attempt) {
      read.push(`${namespace}/${uid}/${attempt}`);
      if (failing) throw new Error("HTTP 403: forbidden");
      return { 0: copy(0, true, "attempt 0\n"), 1: copy(1, false, "attempt 1 so far\n") }[attempt];
    },
  };
  const authorizer: Authorizer = {
    async authorize(header) {
      if (!header) return { allowed: false, status: 401, message: "a bearer token is required" };
      return header === "Bearer ok" ? { allowed: true, user: "ok" } : { allowed: false, status: 403, message: "no" };
    },
  };
  const get = (url: string, token = "ok") => app.inject({ url, headers: token ? { authorization: `Bearer ${token}` } : {} });

  beforeEach(async () => {
    dir = await makeTempDir("log-routes-stored");
    store = new LogStore({ root: dir.path });
    app = Fastify();
    await app.register(logRoutes, { store, authorizer, stored });
    read.length = 0;
    failing = false;
  });
  afterEach(async () => {
    await app.close();
    await dir.remove();
  });

  it("serves the copy of the attempt asked for, or of the run's current attempt, saying it came from the API", async () => {
    const finished = await get("/logs/team-a/build-1/0");
    expect(finished.statusCode).toBe(200);
    expect(finished.body).toBe("attempt 0\n");
    expect(finished.headers).toMatchObject({
      "content-type": "text/plain; charset=utf-8",
      "x-vmbuild-log-source": "api",
      "x-vmbuild-live": "false",
      "x-vmbuild-attempt": "0",
      "x-vmbuild-run-uid": "u-1",
    });
    const current = await get("/logs/team-a/build-1");
    expect(current.body).toBe("attempt 1 so far\n");
    expect(current.headers).toMatchObject({ "x-vmbuild-live": "true", "x-vmbuild-attempt": "1", "x-vmbuild-log-source": "api" });
    expect(read).toEqual(["team-a/u-1/0", "team-a/u-1/1"]);
  });

  it("prefers this replica's file of the same run and attempt; a file of another run of that name is not it", async () => {
    const log = store.open({ namespace: "team-a", name: "build-1", uid: "u-1" }, 0);
    log.line("from disk");
    await log.close();
    const older = store.open({ namespace: "team-a", name: "build-1", uid: "u-0" }, 1);
    older.line("a deleted run of the same name");
    await older.close();
    const local = await get("/logs/team-a/build-1/0");
    expect(local.body).toBe("from disk\n");
    expect(local.headers["x-vmbuild-log-source"]).toBe("local");
    expect((await get("/logs/team-a/build-1/1")).body).toBe("attempt 1 so far\n");
    expect(read).toEqual(["team-a/u-1/1"]);
  });

  it("authorizes before reading anything; 404 when neither has it; 503 when the API cannot be read", async () => {
    expect((await get("/logs/team-a/build-1/0", "")).statusCode).toBe(401);
    expect((await get("/logs/team-a/build-1/0", "other")).statusCode).toBe(403);
    expect(read).toEqual([]);
    const missing = await get("/logs/team-a/build-1/5");
    expect(missing.statusCode).toBe(404);
    expect(missing.body).toBe("no build log for team-a/build-1 attempt 5\n");
    // A run the caches do not know has no name in the API: not looked for there.
    expect((await get("/logs/team-a/unknown/0")).statusCode).toBe(404);
    expect(read).toEqual(["team-a/u-1/5"]);
    failing = true;
    const down = await get("/logs/team-a/build-1/0");
    expect(down.statusCode).toBe(503);
    expect(down.body).not.toMatch(/403/);
  });
});
