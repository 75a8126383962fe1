import { describe, expect, it } from "vitest";
import {
  bearerToken,
  createAuthorizer,
  TtlCache,
  type AccessReviewer,
  type RunAccess,
  type UserInfo,
} from "../../../src/server/auth.js";

const alice: UserInfo = { username: "alice", groups: ["system:authenticated"] };
const access = { namespace: "team-a", name: "build-1" };

/** A reviewer that knows one token ("good" → alice) and lets alice read team-a only; it counts its calls. */
function fakeReviewer(): AccessReviewer & { calls: { authn: number; authz: number }; failNext: boolean } {
  const r = {
    calls: { authn: 0, authz: 0 },
    failNext: false,
    async authenticate(token: string) {
      r.calls.authn += 1;
      if (r.failNext) {
        r.failNext = false;
        throw new Error("connection refused");
      }
      return token === "good" ? alice : undefined;
    },
    async mayGetRun(user: UserInfo, a: { namespace: string }) {
      r.calls.authz += 1;
      return user.username === "alice" && a.namespace === "team-a";
    },
  };
  return r;
}

describe("bearerToken", () => {
  it("takes the token of a Bearer header, case-insensitively, and nothing else", () => {
    expect(bearerToken("Bearer abc.def-ghi")).toBe("abc.def-ghi");
    expect(bearerToken("bearer   abc ")).toBe("abc");
    expect(bearerToken("Basic dXNlcjpwYXNz")).toBeUndefined();
    expect(bearerToken("Bearer a b")).toBeUndefined();
    expect(bearerToken("Bearer ")).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});

describe("TtlCache", () => {
  it("forgets entries after the ttl and keeps at most maxEntries, dropping the oldest", () => {
    let now = 0;
    const cache = new TtlCache<string, number>(100, 2, () => now);
    cache.set("a", 1);
    cache.set("b", 2);
    cache.set("c", 3);
    expect([cache.get("a"), cache.get("b"), cache.get("c")]).toEqual([undefined, 2, 3]);
    now = 100;
    expect(cache.get("b")).toBeUndefined();
    expect(cache.size).toBe(1);
  });
});

describe("createAuthorizer", () => {
  it("answers 401 without a token or with one the apiserver rejects, 403 when not allowed, and allows otherwise", async () => {
    const auth = createAuthorizer(fakeReviewer());
    expect(await auth.authorize(undefined, access)).toMatchObject({ allowed: false, status: 401 });
    expect(await auth.authorize("Bearer bad", access)).toMatchObject({ allowed: false, status: 401 });
    expect(await auth.authorize("Bearer good", { ...access, namespace: "team-b" })).toMatchObject({
      allowed: false,
      status: 403,
      message: 'user "alice" cannot get customruns.tekton.dev "build-1" in namespace "team-b"',
    });
    expect(await auth.authorize("Bearer good", access)).toEqual({ allowed: true, user: "alice" });
  });

  it("caches allowed and denied answers for the ttl, per token and per run", async () => {
    let now = 0;
    const reviewer = fakeReviewer();
    const auth = createAuthorizer(reviewer, { ttlMs: 10_000, now: () => now });
    for (let i = 0; i < 3; i++) {
      await auth.authorize("Bearer good", access);
      await auth.authorize("Bearer good", { ...access, namespace: "team-b" });
      await auth.authorize("Bearer bad", access);
    }
    expect(reviewer.calls).toEqual({ authn: 2, authz: 2 });
    now = 10_000;
    await auth.authorize("Bearer good", access);
    expect(reviewer.calls).toEqual({ authn: 3, authz: 3 });
  });

  it("asks about a whole namespace, or all namespaces, when no run is named, and caches each question apart", async () => {
    const asked: RunAccess[] = [];
    const reviewer: AccessReviewer = {
      authenticate: async (token) => (token === "good" ? alice : undefined),
      async mayGetRun(_user, a) {
        asked.push(a);
        return a.namespace === "team-a";
      },
    };
    const auth = createAuthorizer(reviewer);
    expect(await auth.authorize("Bearer good", { namespace: "team-a" })).toEqual({ allowed: true, user: "alice" });
    expect(await auth.authorize("Bearer good", { namespace: "" })).toMatchObject({
      status: 403,
      message: 'user "alice" cannot get customruns.tekton.dev in all namespaces',
    });
    expect(await auth.authorize("Bearer good", { namespace: "team-b" })).toEqual({
      allowed: false,
      status: 403,
      message: 'user "alice" cannot get customruns.tekton.dev in namespace "team-b"',
      user: "alice",
    });
    await auth.authorize("Bearer good", access);
    await auth.authorize("Bearer good", { namespace: "team-a" });
    expect(asked).toEqual([{ namespace: "team-a" }, { namespace: "" }, { namespace: "team-b" }, access]);
  });

  it("answers 503 when the apiserver cannot be asked, and does not cache that", async () => {
    const reviewer = fakeReviewer();
    const auth = createAuthorizer(reviewer);
    reviewer.failNext = true;
    expect(await auth.authorize("Bearer good", access)).toMatchObject({ allowed: false, status: 503 });
    expect(await auth.authorize("Bearer good", access)).toEqual({ allowed: true, user: "alice" });
  });
});
