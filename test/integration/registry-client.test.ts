import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inspectManifest, resolveDigest } from "../../src/registry/client.js";
import { RegistryError } from "../../src/registry/errors.js";
import { freePort } from "../support/ports.js";
import { pushTestImage, type PushedImage } from "../support/registry-push.js";
import { startRegistry, type TestRegistry } from "../support/registry.js";
import { makeTempDir } from "../support/temp-dir.js";
import { startTokenServer, type TokenServer } from "../support/token-server.js";

const LOGIN = { username: "puller", password: "reg-s3cret-Pa55" };
const WRONG = { username: "puller", password: "not-the-Pa55word" };

async function resolveError(...args: Parameters<typeof resolveDigest>): Promise<RegistryError> {
  try {
    await resolveDigest(...args);
  } catch (error) {
    if (error instanceof RegistryError) return error;
    throw error;
  }
  throw new Error("resolveDigest unexpectedly succeeded");
}

describe("resolveDigest against a real registry with htpasswd (Basic)", { timeout: 60_000 }, () => {
  let registry: TestRegistry;
  let image: PushedImage;

  beforeAll(async () => {
    registry = await startRegistry({ auth: { kind: "htpasswd", ...LOGIN } });
    image = await pushTestImage(registry.host, "demo/basic", "v1", LOGIN);
  });
  afterAll(async () => registry?.stop());

  it("serves the index digest for a multi-arch tag", async () => {
    const started = Date.now();
    expect(await resolveDigest(`${registry.host}/demo/basic:v1`, LOGIN, { tlsVerify: false })).toBe(image.indexDigest);
    console.log(`resolveDigest (https attempt, then http, Basic): ${Date.now() - started} ms`);
  });

  it("serves a single-arch manifest digest, by tag and by digest", async () => {
    const amd64 = image.manifests.find((entry) => entry.arch === "amd64");
    expect(amd64).toBeDefined();
    expect(await resolveDigest(`${registry.host}/demo/basic:v1-amd64`, LOGIN, { tlsVerify: false })).toBe(amd64?.digest);
    expect(await resolveDigest(`${registry.host}/demo/basic@${amd64?.digest}`, LOGIN, { tlsVerify: false })).toBe(
      amd64?.digest,
    );
  });

  it("fails with AuthFailed without credentials and with a wrong password, never echoing it", async () => {
    const anonymous = await resolveError(`${registry.host}/demo/basic:v1`, undefined, { tlsVerify: false });
    expect(anonymous).toMatchObject({ reason: "AuthFailed", status: 401 });
    const wrong = await resolveError(`${registry.host}/demo/basic:v1`, WRONG, { tlsVerify: false });
    expect(wrong).toMatchObject({ reason: "AuthFailed", status: 401 });
    expect(wrong.message).not.toContain(WRONG.password);
  });

  it("fails with NotFound for an unknown tag and an unknown repository", async () => {
    for (const ref of [`${registry.host}/demo/basic:nope`, `${registry.host}/demo/missing:v1`]) {
      expect(await resolveError(ref, LOGIN, { tlsVerify: false })).toMatchObject({ reason: "NotFound", status: 404 });
    }
  });

  it("fails with Unreachable when TLS is required from a plain-HTTP registry, or nothing listens", async () => {
    expect(await resolveError(`${registry.host}/demo/basic:v1`, LOGIN, { tlsVerify: true })).toMatchObject({
      reason: "Unreachable",
    });
    const port = await freePort("127.0.0.1");
    expect(await resolveError(`127.0.0.1:${port}/demo/basic:v1`, LOGIN, { tlsVerify: false })).toMatchObject({
      reason: "Unreachable",
      status: undefined,
    });
  });

  it("rejects with the signal's reason when aborted", async () => {
    const controller = new AbortController();
    controller.abort(new Error("run cancelled"));
    await expect(
      resolveDigest(`${registry.host}/demo/basic:v1`, LOGIN, { tlsVerify: false, signal: controller.signal }),
    ).rejects.toThrow("run cancelled");
  });
});

describe("resolveDigest against a real registry with a token service (Bearer)", { timeout: 60_000 }, () => {
  let temp: { path: string; remove(): Promise<void> };
  let tokens: TokenServer;
  let registry: TestRegistry;
  let image: PushedImage;

  beforeAll(async () => {
    temp = await makeTempDir("token");
    tokens = await startTokenServer({ dir: temp.path, users: { [LOGIN.username]: LOGIN.password } });
    registry = await startRegistry({ auth: { kind: "token", ...tokens } });
    image = await pushTestImage(registry.host, "demo/bearer", "v2", LOGIN);
  });
  afterAll(async () => {
    await registry?.stop();
    await tokens?.stop();
    await temp?.remove();
  });

  it("follows the challenge to the token service and serves the index digest", async () => {
    const before = tokens.issued();
    expect(await resolveDigest(`${registry.host}/demo/bearer:v2`, LOGIN, { tlsVerify: false })).toBe(image.indexDigest);
    expect(tokens.issued()).toBe(before + 1);
  });

  it("fails with AuthFailed when the anonymous token grants nothing", async () => {
    expect(await resolveError(`${registry.host}/demo/bearer:v2`, undefined, { tlsVerify: false })).toMatchObject({
      reason: "AuthFailed",
      status: 401,
    });
  });

  it("fails with AuthFailed when the token service refuses the password", async () => {
    const error = await resolveError(`${registry.host}/demo/bearer:v2`, WRONG, { tlsVerify: false });
    expect(error).toMatchObject({ reason: "AuthFailed", status: 401 });
    expect(error.message).not.toContain(WRONG.password);
  });
});

/**
 * A proxy on loopback in front of the real registry that answers 500 to the first `failing` manifest requests, as
 * a registry does while another push writes the same tag.
 */
async function flakyProxy(target: string): Promise<{ host: string; failing: number; manifestRequests: string[]; close(): Promise<void> }> {
  const [targetHost = "", targetPort = ""] = target.split(":");
  const state = { failing: 0, manifestRequests: [] as string[] };
  const server: Server = createServer((req, res) => {
    if (req.url?.includes("/manifests/")) {
      state.manifestRequests.push(req.method ?? "");
      if (state.failing > 0) {
        state.failing -= 1;
        res.writeHead(500, { "content-type": "application/json" }).end('{"errors":[{"code":"UNKNOWN"}]}');
        return;
      }
    }
    const upstream = request(
      { host: targetHost, port: Number(targetPort), method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.writeHead(502).end());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    host: `127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

describe("registry reads through a registry answering 500 for a moment", { timeout: 60_000 }, () => {
  let registry: TestRegistry;
  let image: PushedImage;
  let proxy: Awaited<ReturnType<typeof flakyProxy>>;

  beforeAll(async () => {
    registry = await startRegistry({ auth: { kind: "htpasswd", ...LOGIN } });
    image = await pushTestImage(registry.host, "demo/flaky", "v1", LOGIN);
    proxy = await flakyProxy(registry.host);
  });
  afterAll(async () => {
    await proxy?.close();
    await registry?.stop();
  });

  it("reads the digest with GET after a HEAD's 500, tries the GET again after its 500, and serves the digest", async () => {
    proxy.manifestRequests.length = 0;
    proxy.failing = 2;
    expect(await resolveDigest(`${proxy.host}/demo/flaky:v1`, LOGIN, { tlsVerify: false })).toBe(image.indexDigest);
    // The HEAD's 500, the GET's 500, the GET's 401 challenge, the answer.
    expect(proxy.manifestRequests).toEqual(["HEAD", "GET", "GET", "GET"]);
    proxy.manifestRequests.length = 0;
    proxy.failing = 1;
    expect((await inspectManifest(`${proxy.host}/demo/flaky:v1`, LOGIN, { tlsVerify: false })).digest).toBe(image.indexDigest);
    expect(proxy.manifestRequests).toEqual(["GET", "GET", "GET"]);
  });

  it("after three more tries of the GET, fails with the registry's status", async () => {
    proxy.manifestRequests.length = 0;
    proxy.failing = 100;
    const error = await resolveError(`${proxy.host}/demo/flaky:v1`, LOGIN, { tlsVerify: false });
    proxy.failing = 0;
    expect(error).toMatchObject({ reason: "Failed", status: 500 });
    expect(proxy.manifestRequests).toEqual(["HEAD", "GET", "GET", "GET", "GET"]);
  });
});
