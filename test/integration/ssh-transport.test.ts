import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { BuildEvent } from "../../src/podman/build-events.js";
import { createPodmanClient, type PodmanClient } from "../../src/podman/client.js";
import { PodmanError, permanentTransportError } from "../../src/podman/errors.js";
import { parseKnownHosts } from "../../src/podman/known-hosts.js";
import { connectSsh, type SshTarget } from "../../src/podman/ssh.js";
import { packContext } from "../../src/source/context-tar.js";
import { startPodmanService, type PodmanService } from "../support/podman-service.js";
import { freePort } from "../support/ports.js";
import { startSshd, type Sshd } from "../support/sshd.js";
import { makeTempDir } from "../support/temp-dir.js";

// The ssh transport as podman remote uses it, end to end on loopback: a real OpenSSH sshd, a real podman
// service on a unix socket, and the podman client tunnelled to that socket through an ssh2 session.

describe("podman over ssh: a real sshd tunnelling to podman's unix socket", { timeout: 180_000 }, () => {
  let sshd: Sshd;
  let podman: PodmanService;
  let temp: { path: string; remove(): Promise<void> };
  let target: SshTarget;
  const clients: PodmanClient[] = [];

  const client = (overrides: Partial<SshTarget> = {}): PodmanClient => {
    const c = createPodmanClient(connectSsh({ ...target, ...overrides }, { readyTimeoutMs: 5_000 }));
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    temp = await makeTempDir("ssh-transport");
    [sshd, podman] = await Promise.all([startSshd(), startPodmanService({ unixSocket: true })]);
    await podman.importBusybox(["amd64"]);
    target = {
      host: sshd.host,
      port: sshd.port,
      username: sshd.username,
      privateKey: sshd.clientKey,
      knownHosts: parseKnownHosts(`[${sshd.host}]:${sshd.port} ${sshd.hostKey}\n`),
      socketPath: new URL(podman.endpoint).pathname,
      source: "Secret test/ssh",
    };
  }, 120_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all([sshd?.stop(), podman?.stop()]);
    await temp?.remove();
  }, 60_000);

  it("pings, reads info and builds through the tunnel", async () => {
    const podmanClient = client();
    let started = performance.now();
    expect((await podmanClient.ping()).apiVersion).toMatch(/^\d+\.\d+\.\d+$/);
    const first = performance.now() - started;
    started = performance.now();
    for (let i = 0; i < 20; i++) await podmanClient.ping();
    console.log(`ssh: first ping (handshake included) ${first.toFixed(0)} ms, then ${((performance.now() - started) / 20).toFixed(1)} ms per ping`);
    expect(await podmanClient.info()).toMatchObject({ os: "linux", arch: "amd64" });

    const root = join(temp.path, "ctx");
    await mkdir(root, { recursive: true });
    await writeFile(join(root, "Dockerfile"), "FROM localhost/busybox:amd64\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\n");
    await writeFile(join(root, "hello.txt"), "hello over ssh\n");
    const context = await packContext({ root, contextDir: ".", dockerfile: "Dockerfile", maxBytes: 1 << 20 });
    const manifest = "localhost/vmbuild-test/over-ssh:latest";
    const events: BuildEvent[] = [];
    for await (const event of podmanClient.build(
      { context: context.tar, dockerfile: context.dockerfile, platforms: ["linux/amd64"], manifest },
      AbortSignal.timeout(120_000),
    )) {
      events.push(event);
    }
    expect(events.filter((e) => e.kind === "error")).toEqual([]);
    expect(JSON.stringify(events)).toContain("hello over ssh");
    const list = await podmanClient.manifestInspect(manifest);
    expect(list.entries.map((e) => e.platform)).toEqual(["linux/amd64"]);
  });

  it("a build cut off with its ssh session says how the session ended, beside undici's bare words", async () => {
    const podmanClient = client();
    const root = join(temp.path, "cut");
    await mkdir(root, { recursive: true });
    await writeFile(join(root, "Dockerfile"), "FROM localhost/busybox:amd64\nRUN echo started && sleep 20\n");
    const context = await packContext({ root, contextDir: ".", dockerfile: "Dockerfile", maxBytes: 1 << 20 });
    let cut = 0;
    const err = await (async () => {
      for await (const event of podmanClient.build(
        { context: context.tar, dockerfile: context.dockerfile, platforms: ["linux/amd64"], manifest: "localhost/vmbuild-test/cut:latest" },
        AbortSignal.timeout(120_000),
      )) {
        if (cut === 0 && event.kind === "output" && event.text.includes("started")) cut = sshd.cutSessions();
      }
    })().catch((e: unknown) => e);
    expect(cut).toBeGreaterThan(0);
    expect(err).toBeInstanceOf(PodmanError);
    expect((err as PodmanError).message).toMatch(
      /: HTTP 200: the build's output broke off: .+; the ssh session to \S+@\[127\.0\.0\.1\]:\d+ (closed|ended: .+)$/,
    );
    // The next request opens a new session, and its errors no longer speak of the old one.
    expect((await podmanClient.ping()).apiVersion).not.toBe("");
  });

  it("warm() opens the session ahead of the first request, which then uses it: one login", async () => {
    const logins = () => sshd.output().split("Accepted publickey").length;
    const before = logins();
    const warmed = client();
    await warmed.warm();
    await vi.waitFor(() => expect(logins()).toBe(before + 1));
    expect((await warmed.ping()).apiVersion).not.toBe("");
    expect(await warmed.info()).toMatchObject({ os: "linux" });
    // sshd logs a login before it answers it: a second session would be in the log by now.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(logins()).toBe(before + 1);
  });

  it("warm() with nothing listening yet (a guest still booting) fails as transient: the job tries again", async () => {
    const booting = client({ port: await freePort("127.0.0.1") });
    const err = await booting.warm().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(permanentTransportError(err)).toBeUndefined();
  });

  it("accepts a wildcard known_hosts entry, as a pool whose VMs share the image's host key uses", async () => {
    expect((await client({ knownHosts: parseKnownHosts(`* ${sshd.hostKey}\n`) }).ping()).apiVersion).not.toBe("");
  });

  it("refuses a host whose key does not match known_hosts, before offering the client key", async () => {
    const [, otherHostKey] = await sshd.newKey("impostor");
    const logins = () => sshd.output().split("Accepted publickey").length;
    const before = logins();
    const err = await client({ knownHosts: parseKnownHosts(`* ${otherHostKey}\n`) }).ping().catch((e: unknown) => e);
    const cause = permanentTransportError(err);
    expect(cause?.message).toMatch(/host key of \[127\.0\.0\.1\]:\d+ does not match known_hosts: it presented ssh-ed25519 SHA256:/);
    expect(cause?.message).toContain("known_hosts of Secret test/ssh");
    // No login happened: the host key is checked before the client key is offered.
    expect(logins()).toBe(before);
  });

  it("once a refusal: tries the newer target retarget gives, and none for an sshd that does not answer", async () => {
    const [, otherHostKey] = await sshd.newKey("before-rotation");
    const stale = { ...target, knownHosts: parseKnownHosts(`* ${otherHostKey}\n`) };
    const asked: string[] = [];
    const track = (c: PodmanClient) => (clients.push(c), c);
    const rotated = track(createPodmanClient(connectSsh(stale, { retarget: async () => (asked.push("rotated"), target) })));
    expect((await rotated.ping()).apiVersion).not.toBe("");
    // Nothing newer: the refusal stands.
    const unchanged = track(createPodmanClient(connectSsh(stale, { retarget: async () => (asked.push("unchanged"), undefined) })));
    expect(permanentTransportError(await unchanged.ping().catch((e: unknown) => e))?.message).toContain("does not match known_hosts");
    // Nothing listening is no refusal: the same target is tried again later, retarget is not spent.
    const closed = await freePort("127.0.0.1");
    const silent = track(createPodmanClient(connectSsh({ ...target, port: closed }, { retarget: async () => (asked.push("silent"), target) })));
    const err = await silent.ping().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(permanentTransportError(err)).toBeUndefined();
    expect(asked).toEqual(["rotated", "unchanged"]);
  });

  it("reports a known_hosts without an entry for the host", async () => {
    const err = await client({ knownHosts: parseKnownHosts(`other.example ${sshd.hostKey}\n`) }).ping().catch((e: unknown) => e);
    expect(permanentTransportError(err)?.message).toMatch(/known_hosts has no entry for \[127\.0\.0\.1\]:\d+/);
  });

  it("reports a client key the server does not accept", async () => {
    const [strangerKey] = await sshd.newKey("stranger");
    const err = await client({ privateKey: strangerKey }).ping().catch((e: unknown) => e);
    expect(permanentTransportError(err)?.message).toMatch(/ssh \S+@\[127\.0\.0\.1\]:\d+: the VM refused the private key of Secret test\/ssh/);
  });

  it("reports a socket path with nothing behind it as a transient error naming the path", async () => {
    const err = await client({ socketPath: "/run/no-such/podman.sock" }).ping().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(permanentTransportError(err)).toBeUndefined();
    expect(String((err as Error).message)).toMatch(/could not open podman's socket \/run\/no-such\/podman\.sock/);
  });
});
