import { execFile } from "node:child_process";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BuildEvent } from "../../src/podman/build-events.js";
import { createPodmanClient, type PodmanClient } from "../../src/podman/client.js";
import { PodmanError } from "../../src/podman/errors.js";
import { resolveDigest } from "../../src/registry/client.js";
import { ContextTooLargeError } from "../../src/source/context-errors.js";
import { packContext } from "../../src/source/context-tar.js";
import { startPodmanService, type PodmanService } from "../support/podman-service.js";
import { startRegistry, type TestRegistry } from "../support/registry.js";
import { waitUntil } from "../support/processes.js";
import { makeTempDir } from "../support/temp-dir.js";

// A password whose auth JSON needs '+' or '/' in standard base64: podman decodes the URL alphabet only.
const PASSWORD = "p>>>?~~~s3cret";

describe("podman client against a real podman service and registry", { timeout: 180_000 }, () => {
  let podman: PodmanService;
  let registry: TestRegistry;
  let client: PodmanClient;
  let temp: { path: string; remove(): Promise<void> };

  beforeAll(async () => {
    temp = await makeTempDir("podman-client");
    [podman, registry] = await Promise.all([
      startPodmanService(),
      startRegistry({ auth: { kind: "htpasswd", username: "builder", password: PASSWORD } }),
    ]);
    await podman.importBusybox(["amd64", "arm64"]);
    client = createPodmanClient(podman.endpoint);
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await Promise.all([podman?.stop(), registry?.stop()]);
    await temp?.remove();
  }, 60_000);

  async function writeContext(name: string, dockerfile: string): Promise<string> {
    const dir = join(temp.path, name);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "Dockerfile"), dockerfile);
    await writeFile(join(dir, "message.txt"), "hello from the context\n");
    return dir;
  }

  async function collect(events: AsyncIterable<BuildEvent>): Promise<BuildEvent[]> {
    const all: BuildEvent[] = [];
    for await (const event of events) all.push(event);
    return all;
  }

  it("pings and reports host info", async () => {
    expect((await client.ping()).apiVersion).toBe("4.3.1");
    const info = await client.info();
    expect(info).toMatchObject({ arch: "amd64", os: "linux", version: "4.3.1", apiVersion: "4.3.1" });
    expect(info.emulatedArchitectures).toEqual([]);
  });

  it("builds two platforms, pushes the list with auth, and the registry serves the pushed digest", async () => {
    expect(Buffer.from(JSON.stringify({ username: "builder", password: PASSWORD })).toString("base64")).toMatch(
      /[+/]/,
    );
    const root = await writeContext(
      "multi",
      [
        "ARG TARGETARCH",
        "FROM localhost/busybox:${TARGETARCH}",
        "ARG GREETING TARGETARCH",
        "COPY message.txt /message.txt",
        'RUN echo "$GREETING for $TARGETARCH" && cat /message.txt',
        "",
      ].join("\n"),
    );
    const context = await packContext({ root, contextDir: ".", dockerfile: "Dockerfile", maxBytes: 1 << 20 });
    const manifest = "localhost/vmbuild-test/multi:latest";
    await client.manifestDelete(manifest);

    const started = Date.now();
    const events = await collect(
      client.build(
        {
          context: context.tar,
          dockerfile: context.dockerfile,
          platforms: ["linux/amd64", "linux/arm64"],
          manifest,
          buildArgs: { GREETING: "built" },
          labels: { "org.opencontainers.image.revision": "test" },
        },
        AbortSignal.timeout(120_000),
      ),
    );
    console.log(`two-platform build: ${Date.now() - started} ms`);

    expect(events.filter((event) => event.kind === "error")).toEqual([]);
    for (const platform of ["linux/amd64", "linux/arm64"]) {
      expect(events).toContainEqual({ kind: "step", platform, step: 4, total: 5, text: expect.stringContaining("RUN echo") });
    }
    const output = events.flatMap((event) => (event.kind === "output" ? [event.text] : []));
    expect(output).toContain("built for amd64");
    expect(output).toContain("built for arm64");
    expect(output).toContain("hello from the context");

    expect(await client.manifestExists(manifest)).toBe(true);
    const list = await client.manifestInspect(manifest);
    expect(list.entries.map((entry) => entry.platform).sort()).toEqual(["linux/amd64", "linux/arm64"]);
    for (const entry of list.entries) expect(entry.digest).toMatch(/^sha256:[a-f0-9]{64}$/);

    const destination = `${registry.host}/demo/app:v1`;
    const pushStarted = Date.now();
    const pushed = await client.manifestPush(
      manifest,
      destination,
      { all: true, tlsVerify: false, auth: { username: "builder", password: PASSWORD, serveraddress: registry.host } },
      AbortSignal.timeout(60_000),
    );
    console.log(`push: ${Date.now() - pushStarted} ms`);
    expect(pushed).toMatch(/^sha256:[a-f0-9]{64}$/);

    const served = await resolveDigest(destination, { username: "builder", password: PASSWORD }, { tlsVerify: false });
    expect(served).toBe(pushed);
    expect(await filesContaining(podman.dir, PASSWORD)).toEqual([]);

    // The per-platform images were pushed too (all=true). Podman re-encodes them on push, so the registry's
    // index names other digests than the local list: what counts is what the registry serves.
    const index = (await (
      await fetch(`http://${registry.host}/v2/demo/app/manifests/${pushed}`, {
        headers: {
          accept: "application/vnd.oci.image.index.v1+json",
          authorization: `Basic ${Buffer.from(`builder:${PASSWORD}`).toString("base64")}`,
        },
      })
    ).json()) as { manifests: { digest: string; platform: { os: string; architecture: string } }[] };
    expect(index.manifests.map((entry) => `${entry.platform.os}/${entry.platform.architecture}`).sort()).toEqual([
      "linux/amd64",
      "linux/arm64",
    ]);
    for (const entry of index.manifests) {
      const login = { username: "builder", password: PASSWORD };
      const byDigest = await resolveDigest(`${registry.host}/demo/app@${entry.digest}`, login, { tlsVerify: false });
      expect(byDigest).toBe(entry.digest);
    }

    expect(await client.manifestDelete(manifest)).toBe(true);
    expect(await client.manifestExists(manifest)).toBe(false);
    expect(await client.manifestDelete(manifest)).toBe(false);
  });

  it("pulls a base image from the authenticated registry with X-Registry-Config", async () => {
    // Needs the image pushed by the previous test.
    const root = await writeContext("pull", `FROM ${registry.host}/demo/app:v1\nRUN cat /message.txt\n`);
    const build = async (withLogin: boolean): Promise<BuildEvent[]> => {
      const context = await packContext({ root, contextDir: ".", dockerfile: "Dockerfile", maxBytes: 1 << 20 });
      const manifest = `localhost/vmbuild-test/pull-${String(withLogin)}:latest`;
      await client.manifestDelete(manifest);
      return collect(
        client.build(
          {
            context: context.tar,
            dockerfile: context.dockerfile,
            platforms: ["linux/arm64"],
            manifest,
            pull: true,
            tlsVerify: false,
            registryConfig: withLogin ? { [registry.host]: { username: "builder", password: PASSWORD } } : undefined,
          },
          AbortSignal.timeout(120_000),
        ),
      );
    };

    const denied = await build(false);
    expect(denied.at(-1)).toMatchObject({ kind: "error", message: expect.stringMatching(/unauthorized|authentication required/i) });

    const pulled = await build(true);
    expect(pulled.filter((event) => event.kind === "error")).toEqual([]);
    expect(pulled).toContainEqual({ kind: "output", text: "hello from the context" });
  });

  it("reports a failing RUN step as an error event on an HTTP 200 stream", async () => {
    const root = await writeContext("failing", "FROM localhost/busybox:amd64\nRUN echo before-failure; exit 3\n");
    const context = await packContext({ root, contextDir: ".", dockerfile: "Dockerfile", maxBytes: 1 << 20 });
    const events = await collect(
      client.build(
        { context: context.tar, dockerfile: context.dockerfile, platforms: ["linux/amd64"], manifest: "localhost/vmbuild-test/failing" },
        AbortSignal.timeout(60_000),
      ),
    );
    expect(events).toContainEqual({ kind: "step", step: 2, total: 2, text: "RUN echo before-failure; exit 3" });
    expect(events).toContainEqual({ kind: "output", text: "before-failure" });
    expect(events.at(-1)).toMatchObject({ kind: "error", message: expect.stringContaining("exit status 3") });
  });

  it("stops a build when the signal aborts", async () => {
    const root = await writeContext("slow", "FROM localhost/busybox:amd64\nRUN echo sleeping; sleep 6 # vmbuild-abort-test\n");
    const context = await packContext({ root, contextDir: ".", dockerfile: "Dockerfile", maxBytes: 1 << 20 });
    const controller = new AbortController();
    const started = Date.now();
    const seen: BuildEvent[] = [];
    const run = (async () => {
      for await (const event of client.build(
        { context: context.tar, dockerfile: context.dockerfile, platforms: ["linux/amd64"], manifest: "localhost/vmbuild-test/slow" },
        controller.signal,
      )) {
        seen.push(event);
        if (event.kind === "output" && event.text === "sleeping") controller.abort(new Error("cancelled by test"));
      }
    })();
    await expect(run).rejects.toThrow("cancelled by test");
    expect(Date.now() - started).toBeLessThan(30_000);
    // Measured on 4.3.1 (chroot isolation): the disconnect does not kill the running RUN step, it runs to its
    // end; cancelling a build for real means stopping the VM. Wait for it so no process outlives the test.
    await waitUntil(async () => !(await processRunning("vmbuild-abort-test")), 30_000, () => "RUN step still running");
    // The service is still usable afterwards.
    expect((await client.ping()).apiVersion).toBe("4.3.1");
  });

  it("fails a push without credentials with podman's cause and no secret", async () => {
    const root = await writeContext("nocreds", "FROM localhost/busybox:amd64\n");
    const context = await packContext({ root, contextDir: ".", dockerfile: "Dockerfile", maxBytes: 1 << 20 });
    const manifest = "localhost/vmbuild-test/nocreds";
    await client.manifestDelete(manifest);
    await collect(
      client.build(
        { context: context.tar, dockerfile: context.dockerfile, platforms: ["linux/amd64"], manifest },
        AbortSignal.timeout(60_000),
      ),
    );
    const error = await client
      .manifestPush(manifest, `${registry.host}/demo/denied:v1`, { all: true, tlsVerify: false }, AbortSignal.timeout(60_000))
      .then(
        () => undefined,
        (caught: unknown) => caught,
      );
    expect(error).toBeInstanceOf(PodmanError);
    const podmanError = error as PodmanError;
    expect(podmanError.status).toBe(400);
    expect(podmanError.podmanCause).toMatch(/authentication required/);
    expect(podmanError.path).toBe(
      `/v4.0.0/libpod/manifests/${encodeURIComponent(manifest)}/registry/${encodeURIComponent(`${registry.host}/demo/denied:v1`)}`,
    );
    expect(podmanError.message).not.toContain(PASSWORD);
    await client.manifestDelete(manifest);
  });

  it("maps a missing manifest list to a 404 PodmanError", async () => {
    await expect(client.manifestInspect("localhost/vmbuild-test/absent")).rejects.toMatchObject({
      name: "PodmanError",
      status: 404,
    });
  });

  it("fails the build call with the context's ContextTooLargeError, unwrapped", async () => {
    const root = await writeContext("toolarge", "FROM localhost/busybox:amd64\n");
    await writeFile(join(root, "blob.bin"), Buffer.alloc(2 << 20));
    const context = await packContext({ root, contextDir: ".", dockerfile: "Dockerfile", maxBytes: 1 << 20 });
    const events = client.build(
      { context: context.tar, dockerfile: context.dockerfile, platforms: ["linux/amd64"], manifest: "localhost/vmbuild-test/toolarge" },
      AbortSignal.timeout(60_000),
    );
    await expect(collect(events)).rejects.toBeInstanceOf(ContextTooLargeError);
    expect((await client.ping()).apiVersion).toBe("4.3.1");
  });

  it("names podman and the endpoint when the service dies mid-build", async () => {
    const doomed = await startPodmanService({ host: "127.0.0.3" });
    const doomedClient = createPodmanClient(doomed.endpoint);
    try {
      await doomed.importBusybox(["amd64"]);
      const root = await writeContext("doomed", "FROM localhost/busybox:amd64\nRUN echo started; sleep 5 # vmbuild-doomed-test\n");
      const context = await packContext({ root, contextDir: ".", dockerfile: "Dockerfile", maxBytes: 1 << 20 });
      const run = (async () => {
        for await (const event of doomedClient.build(
          { context: context.tar, dockerfile: context.dockerfile, platforms: ["linux/amd64"], manifest: "localhost/vmbuild-test/doomed" },
          AbortSignal.timeout(60_000),
        )) {
          if (event.kind === "output" && event.text === "started") process.kill(doomed.pid, "SIGKILL");
        }
      })();
      const error = await run.then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(PodmanError);
      expect((error as PodmanError).message).toMatch(
        new RegExp(`^podman POST /v4.0.0/libpod/build at ${doomed.endpoint}: HTTP 200: the build's output broke off: \\S+`),
      );
      // The orphaned RUN step ends by itself shortly; no process outlives the test.
      await waitUntil(async () => !(await processRunning("vmbuild-doomed-test")), 30_000, () => "RUN step still running");
    } finally {
      await doomedClient.close();
      await doomed.stop();
    }
  });

  it("reports an unreachable service without an HTTP status", async () => {
    const dead = createPodmanClient("tcp://127.0.0.2:1");
    try {
      await expect(dead.ping()).rejects.toMatchObject({ name: "PodmanError", status: undefined, path: "/libpod/_ping" });
    } finally {
      await dead.close();
    }
  });
});

async function processRunning(commandLine: string): Promise<boolean> {
  for (const pid of await readdir("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    if (cmdline.split("\0").join(" ").includes(commandLine)) return true;
  }
  return false;
}

/** Files under `dir` whose bytes contain `needle` (grep exits 1 when there are none). */
async function filesContaining(dir: string, needle: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile("grep", ["-r", "-l", "-F", "--", needle, dir], (error, stdout) => {
      if (error !== null && error.code !== 1) reject(error);
      else resolve(stdout.split("\n").filter((line) => line !== ""));
    });
  });
}

describe("podman client over a unix socket", { timeout: 60_000 }, () => {
  it("pings and reads info through unix://", async () => {
    const service = await startPodmanService({ unixSocket: true });
    const client = createPodmanClient(service.endpoint);
    try {
      expect(service.endpoint).toMatch(/^unix:\/\/\/.+podman\.sock$/);
      expect((await client.ping()).apiVersion).toBe("4.3.1");
      expect((await client.info()).arch).toBe("amd64");
    } finally {
      await client.close();
      await service.stop();
    }
  });
});
