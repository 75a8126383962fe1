import Fastify, { type FastifyInstance } from "fastify";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LogStore } from "../../../src/jobs/log-store.js";
import type { Authorizer } from "../../../src/server/auth.js";
import { logRoutes } from "../../../src/server/logs.js";
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
