import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GitFetchError } from "../../src/source/git-errors.js";
import { fetchSource, type FetchSourceOptions, type GitSshAuth } from "../../src/source/git.js";
import { createFixtureRepo, type FixtureRepo } from "../support/git-repo.js";
import { freePort } from "../support/ports.js";
import { createSshKeys, startSshd, type Sshd } from "../support/sshd.js";
import { makeTempDir } from "../support/temp-dir.js";

// fetchSource over ssh against a real OpenSSH sshd serving the fixture repository through git-shell: the key and
// known_hosts of a kubernetes.io/ssh-auth Secret, the host key always checked, nothing left on disk.

describe("fetchSource over ssh against a real sshd", { timeout: 60_000 }, () => {
  let temp: { path: string; remove(): Promise<void> };
  let repo: FixtureRepo;
  let sshd: Sshd;
  /** A second sshd on port 22 of a loopback address of its own, for `user@host:path` (scp-like: always port 22). */
  let sshd22: Sshd | undefined;
  let gitKey: string;
  let strangerKey: string;
  let otherHostKey: string;
  /** The fetch's TMPDIR: where its key files go, checked empty after every fetch. */
  let fetchTmp: string;
  const savedTmp = process.env.TMPDIR;
  let checkouts = 0;
  const nextDir = (): string => join(temp.path, `checkout-${++checkouts}`);
  const signal = (): AbortSignal => AbortSignal.timeout(30_000);

  beforeAll(async () => {
    temp = await makeTempDir("git-ssh");
    repo = await createFixtureRepo(temp.path, "app");
    fetchTmp = join(temp.path, "tmp");
    await mkdir(fetchTmp, { mode: 0o700 });
    const keys = await createSshKeys();
    const [key, pub] = await keys.newKey("git-client");
    [strangerKey] = await keys.newKey("stranger");
    [, otherHostKey] = await keys.newKey("other-host");
    gitKey = key;
    sshd = await startSshd({ keys, gitClients: [pub] });
    const host22 = `127.${1 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
    sshd22 = await startSshd({ keys, host: host22, port: 22, gitClients: [pub] }).catch((err: unknown) => {
      console.log(`no sshd on ${host22}:22, the scp-like case is skipped: ${String(err)}`);
      return undefined;
    });
    process.env.TMPDIR = fetchTmp;
  });

  afterAll(async () => {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
    await sshd22?.stop();
    await sshd?.stop();
    await sshd?.remove();
    await temp?.remove();
  });

  const url = (path = repo.bareDir): string => `ssh://${sshd.username}@${sshd.host}:${sshd.port}${path}`;
  const knownHosts = (hostKey = sshd.hostKey): string => `[${sshd.host}]:${sshd.port} ${hostKey}\n`;
  const secret = (over: Partial<GitSshAuth> = {}): GitSshAuth => ({
    kind: "ssh",
    secret: "ns/git-ssh",
    privateKey: gitKey,
    knownHosts: knownHosts(),
    ...over,
  });
  const leftInTmp = async (): Promise<string[]> => readdir(fetchTmp);

  it.each([
    ["main", () => repo.main],
    ["feature", () => repo.feature],
    ["v1", () => repo.first],
    ["", () => repo.main],
  ])("fetches %j over ssh:// with the Secret's key and known_hosts, and leaves no key file", async (revision, commit) => {
    const result = await fetchSource({ url: url(), revision, dir: nextDir(), auth: secret(), signal: signal() });
    expect(result.commit).toBe(commit());
    expect(await leftInTmp()).toEqual([]);
  });

  it("fetches a user@host:path URL (port 22)", async (ctx) => {
    if (sshd22 === undefined) ctx.skip();
    const s = sshd22 as Sshd;
    const result = await fetchSource({
      url: `${s.username}@${s.host}:${repo.bareDir}`,
      revision: "feature",
      dir: nextDir(),
      auth: secret({ knownHosts: `${s.host} ${s.hostKey}\n` }),
      signal: signal(),
    });
    expect(result.commit).toBe(repo.feature);
    expect(await leftInTmp()).toEqual([]);
  });

  it("refuses a host key that does not match known_hosts, saying so", async () => {
    const error = await fetchError({ url: url(), revision: "main", dir: nextDir(), auth: secret({ knownHosts: knownHosts(otherHostKey) }), signal: signal() });
    expect(error.reason).toBe("HostKeyMismatch");
    expect(error.message).toMatch(
      new RegExp(`the host key of \\[${sshd.host}\\]:${sshd.port} did not match the known_hosts of Secret ns/git-ssh`),
    );
    expect(error.message).toMatch(/Host key verification failed|has changed/);
    expect(await leftInTmp()).toEqual([]);
  });

  it("refuses a host known_hosts does not name at all (never accepts a new key)", async () => {
    const error = await fetchError({
      url: url(),
      revision: "main",
      dir: nextDir(),
      auth: secret({ knownHosts: `other.example ${sshd.hostKey}\n` }),
      signal: signal(),
    });
    expect(error.reason).toBe("HostKeyMismatch");
    expect(error.message).toContain("did not match the known_hosts of Secret ns/git-ssh");
  });

  it("fails before running git when the Secret has no known_hosts, naming the Secret and the key", async () => {
    for (const missing of [undefined, "", "# nothing\n\n"]) {
      const error = await fetchError({ url: url(), revision: "main", dir: nextDir(), auth: secret({ knownHosts: missing }), signal: signal() });
      expect(error.reason).toBe("AuthFailed");
      expect(error.message).toContain("Secret ns/git-ssh has no known_hosts key");
      expect(error.detail).toBe("");
    }
    expect(await leftInTmp()).toEqual([]);
  });

  it("fails clearly when no ssh credential is linked", async () => {
    const error = await fetchError({
      url: url(),
      revision: "main",
      dir: nextDir(),
      credentialsFrom: "ServiceAccount ns/pipeline",
      signal: signal(),
    });
    expect(error.message).toContain(
      `no kubernetes.io/ssh-auth Secret with a tekton.dev/git-N annotation matching host ${sshd.host} is linked to ServiceAccount ns/pipeline`,
    );
    // An http login is no ssh credential.
    const basic = await fetchError({ url: url(), revision: "main", dir: nextDir(), auth: { username: "u", password: "p" }, signal: signal() });
    expect(basic.message).toContain("no kubernetes.io/ssh-auth Secret");
  });

  it("fails with AuthFailed for a key the server does not accept, the key in no message", async () => {
    const error = await fetchError({ url: url(), revision: "main", dir: nextDir(), auth: secret({ privateKey: strangerKey }), signal: signal() });
    expect(error.reason).toBe("AuthFailed");
    expect(error.message).toContain(`[${sshd.host}]:${sshd.port} did not accept the key of Secret ns/git-ssh`);
    expect(error.message).toMatch(/Permission denied \(publickey/);
    for (const line of strangerKey.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"))) {
      expect(JSON.stringify({ ...error, message: error.message })).not.toContain(line);
    }
    expect(await leftInTmp()).toEqual([]);
  });

  it("fails with AuthFailed for a key that does not load", async () => {
    const error = await fetchError({ url: url(), revision: "main", dir: nextDir(), auth: secret({ privateKey: "not a key" }), signal: signal() });
    expect(error.reason).toBe("AuthFailed");
    expect(error.message).toContain("ssh could not load the ssh-privatekey of Secret ns/git-ssh");
  });

  it("fails with RepositoryNotFound for a missing repository", async () => {
    const error = await fetchError({ url: url(join(temp.path, "missing.git")), revision: "main", dir: nextDir(), auth: secret(), signal: signal() });
    expect(error.reason).toBe("RepositoryNotFound");
  });

  it("fails with Unreachable when nothing listens", async () => {
    const port = await freePort("127.0.0.1");
    const error = await fetchError({
      url: `ssh://git@127.0.0.1:${port}/app.git`,
      revision: "main",
      dir: nextDir(),
      auth: secret({ knownHosts: `[127.0.0.1]:${port} ${sshd.hostKey}\n` }),
      signal: signal(),
    });
    expect(error.reason).toBe("Unreachable");
    expect(error.message).toMatch(/Connection refused/);
  });

  it("says what to do when ssh does not run for the controller's uid (no passwd entry)", async () => {
    // As ssh does for a uid without a passwd entry, e.g. a random uid instead of the image's user 65532.
    const bin = join(temp.path, "fake-bin");
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, "ssh"), "#!/bin/sh\necho 'No user exists for uid 4242' >&2\nexit 255\n", { mode: 0o755 });
    const savedPath = process.env.PATH;
    process.env.PATH = `${bin}:${savedPath ?? ""}`;
    try {
      const error = await fetchError({ url: url(), revision: "main", dir: nextDir(), auth: secret(), signal: signal() });
      expect(error.reason).toBe("GitFailed");
      expect(error.message).toContain("ssh does not run for uid 4242, which has no passwd entry: run the controller as the image's user 65532");
    } finally {
      process.env.PATH = savedPath;
    }
    expect(await leftInTmp()).toEqual([]);
  });

  it("removes the key files when aborted mid-fetch", async () => {
    const controller = new AbortController();
    // Abort as soon as the key file exists: git (or ssh) is starting with it.
    const watcher = setInterval(() => {
      void readdir(fetchTmp).then(async (entries) => {
        for (const entry of entries) {
          if ((await readdir(join(fetchTmp, entry)).catch((): string[] => [])).includes("id")) controller.abort(new Error("run cancelled"));
        }
      });
    }, 1);
    try {
      await expect(fetchSource({ url: url(), revision: "main", dir: nextDir(), auth: secret(), signal: controller.signal })).rejects.toThrow(
        "run cancelled",
      );
    } finally {
      clearInterval(watcher);
    }
    expect(controller.signal.aborted).toBe(true);
    expect(await leftInTmp()).toEqual([]);
  });
});

async function fetchError(opts: FetchSourceOptions): Promise<GitFetchError> {
  try {
    await fetchSource(opts);
  } catch (error) {
    if (error instanceof GitFetchError) return error;
    throw error;
  }
  throw new Error("fetch unexpectedly succeeded");
}
