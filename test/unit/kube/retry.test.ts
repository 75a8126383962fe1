import { ApiException } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { isTransient } from "../../../src/kube/errors.js";
import { withApiRetries } from "../../../src/kube/retry.js";

const refused = () => Object.assign(new Error("request to https://127.0.0.1:6443/api failed, reason: connect ECONNREFUSED"), { name: "FetchError", code: "ECONNREFUSED" });
const http = (code: number) => new ApiException(code, `HTTP ${code}`, {}, {});

describe("isTransient: what an API call may get right when tried again", () => {
  it.each([
    ["connection refused (client-node's FetchError)", refused(), true],
    ["a socket reset", Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }), true],
    ["503 from an apiserver starting", http(503), true],
    ["500", http(500), true],
    ["429, throttled", http(429), true],
    ["404", http(404), false],
    ["403", http(403), false],
    ["409", http(409), false],
    ["a bug of ours", new TypeError("x is undefined"), false],
    ["an error of ours with a code (a Secret not found)", Object.assign(new Error("Secret ns/registry not found"), { code: "SecretNotFound" }), false],
    ["undici's closed socket", Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" }), true],
    ["not an Error", "ECONNREFUSED", false],
  ])("%s: %s", (_, err, transient) => {
    expect(isTransient(err)).toBe(transient);
  });
});

describe("withApiRetries: the reads a build depends on, through an apiserver restart", () => {
  it("tries again after transient failures and returns what the call finally gives", async () => {
    const failures = [refused(), http(503)];
    let calls = 0;
    const value = await withApiRetries(async () => {
      calls++;
      const failure = failures.shift();
      if (failure) throw failure;
      return "secret";
    }, new AbortController().signal);
    expect({ value, calls }).toEqual({ value: "secret", calls: 3 });
  });

  it("throws a failure for good at once", async () => {
    let calls = 0;
    const call = async () => {
      calls++;
      throw http(404);
    };
    await expect(withApiRetries(call, new AbortController().signal)).rejects.toMatchObject({ code: 404 });
    expect(calls).toBe(1);
  });

  it("stops when the build is cancelled, with the failure it had", async () => {
    const abort = new AbortController();
    let calls = 0;
    const call = async () => {
      calls++;
      abort.abort();
      throw refused();
    };
    await expect(withApiRetries(call, abort.signal)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    const waiting = new AbortController();
    const retried = withApiRetries(async () => {
      calls++;
      throw http(500);
    }, waiting.signal);
    setTimeout(() => waiting.abort(), 50);
    await expect(retried).rejects.toMatchObject({ code: 500 });
    expect(calls).toBe(2);
  });
});
