import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GitFetchError } from "../../src/source/git-errors.js";
import { fetchSource } from "../../src/source/git.js";
import { run } from "../support/exec.js";
import { createFixtureRepo, type FixtureRepo } from "../support/git-repo.js";
import { startGitHttpServer, type GitHttpServer } from "../support/git-http-server.js";
import { freePort } from "../support/ports.js";
import { makeTempDir } from "../support/temp-dir.js";

const LOGIN = { username: "builder", password: "git-s3cret-Pa55" };

describe("fetchSource against real git servers on loopback", { timeout: 60_000 }, () => {
  let temp: { path: string; remove(): Promise<void> };
  let repo: FixtureRepo;
  let open: GitHttpServer;
  let guarded: GitHttpServer;
  let checkouts = 0;
  const nextDir = (): string => join(temp.path, `checkout-${++checkouts}`);
  const signal = (): AbortSignal => AbortSignal.timeout(30_000);

  beforeAll(async () => {
    temp = await makeTempDir("git");
    repo = await createFixtureRepo(temp.path, "app");
    [open, guarded] = await Promise.all([
      startGitHttpServer({ projectRoot: temp.path }),
      startGitHttpServer({ projectRoot: temp.path, auth: LOGIN }),
    ]);
  });

  afterAll(async () => {
    await Promise.all([open?.stop(), guarded?.stop()]);
    await temp?.remove();
  });

  const revisions: { name: string; revision: () => string; commit: () => string }[] = [
    { name: "branch main", revision: () => "main", commit: () => repo.main },
    { name: "branch feature", revision: () => "feature", commit: () => repo.feature },
    { name: "annotated tag", revision: () => "v1", commit: () => repo.first },
    { name: "lightweight tag", revision: () => "light", commit: () => repo.first },
    { name: "full commit (not a branch head)", revision: () => repo.first, commit: () => repo.first },
    { name: "full commit in capitals", revision: () => repo.first.toUpperCase(), commit: () => repo.first },
    { name: "empty revision = remote HEAD", revision: () => "", commit: () => repo.main },
    { name: "full ref name", revision: () => "refs/heads/feature", commit: () => repo.feature },
    { name: "HEAD", revision: () => "HEAD", commit: () => repo.main },
  ];

  it.each(revisions)("fetches $name anonymously", async ({ revision, commit }) => {
    const dir = nextDir();
    const started = Date.now();
    const result = await fetchSource({ url: `${open.url}/app.git`, revision: revision(), dir, signal: signal() });
    console.log(`fetch ${revision() || "HEAD"}: ${Date.now() - started} ms`);
    expect(result.commit).toBe(commit());
    expect((await git(dir, ["rev-parse", "HEAD"])).trim()).toBe(commit());
    expect((await git(dir, ["rev-list", "--count", "HEAD"])).trim()).toBe("1");
  });

  it("runs one git process for a branch, a tag or the remote HEAD, three for a commit or a full ref name", async () => {
    // A git on PATH that records its command and runs the real one: git's own helpers run from its exec path.
    const real = (await run("sh", ["-c", "command -v git"])).trim();
    const shim = join(temp.path, "shim");
    await mkdir(shim, { recursive: true });
    const calls = join(shim, "calls");
    await writeFile(join(shim, "git"), `#!/bin/sh\necho "$1" >> '${calls}'\nexec '${real}' "$@"\n`, { mode: 0o755 });
    const path = process.env.PATH;
    process.env.PATH = `${shim}:${path ?? ""}`;
    try {
      const commands = async (revision: string): Promise<string[]> => {
        await writeFile(calls, "");
        await fetchSource({ url: `${open.url}/app.git`, revision, dir: nextDir(), signal: signal() });
        // The test's git server, in this process, runs `git http-backend` per request through the shim too.
        return (await readFile(calls, "utf8")).split("\n").filter((line) => line !== "" && line !== "http-backend");
      };
      for (const revision of ["", "feature", "v1"]) expect(await commands(revision)).toEqual(["clone"]);
      for (const revision of [repo.first, "refs/heads/feature"]) {
        expect(await commands(revision)).toEqual(["init", "fetch", "checkout"]);
      }
    } finally {
      process.env.PATH = path;
    }
  });

  it("fails with UnknownRevision for a repository without commits", async () => {
    await run("git", ["init", "--quiet", "--bare", join(temp.path, "empty.git")]);
    for (const revision of ["", repo.first]) {
      const error = await fetchError({ url: `${open.url}/empty.git`, revision, dir: nextDir(), signal: signal() });
      expect(error.reason).toBe("UnknownRevision");
    }
  });

  it("keeps the fetched pack as received: one pack, no loose objects", async () => {
    const dir = nextDir();
    await fetchSource({ url: `${open.url}/app.git`, revision: "main", dir, signal: signal() });
    // The fixture has far fewer objects than git's default unpack limit (100), so git would unpack them.
    const counts = Object.fromEntries(
      (await git(dir, ["count-objects", "-v"])).trim().split("\n").map((line) => line.split(": ")),
    ) as Record<string, string>;
    expect(counts.count).toBe("0");
    expect(counts.packs).toBe("1");
    expect(Number(counts["in-pack"])).toBeGreaterThan(0);
  });

  it("fetches with credentials and leaves them nowhere in the checkout", async () => {
    const dir = nextDir();
    const result = await fetchSource({ url: `${guarded.url}/app.git`, revision: "feature", dir, auth: LOGIN, signal: signal() });
    expect(result.commit).toBe(repo.feature);
    expect(await grepTree(dir, LOGIN.password)).toEqual([]);
  });

  it("moves credentials out of the URL", async () => {
    const dir = nextDir();
    const url = `${guarded.url.replace("http://", `http://${LOGIN.username}:${LOGIN.password}@`)}/app.git`;
    const result = await fetchSource({ url, revision: "main", dir, signal: signal() });
    expect(result.commit).toBe(repo.main);
    expect(await grepTree(dir, LOGIN.password)).toEqual([]);
  });

  it("fails with AuthFailed on a wrong password, without the password in the error", async () => {
    const before = guarded.unauthorized();
    const error = await fetchError({
      url: `${guarded.url}/app.git`,
      revision: "main",
      dir: nextDir(),
      auth: { username: LOGIN.username, password: "wrong-Pa55word" },
      signal: signal(),
    });
    expect(error.reason).toBe("AuthFailed");
    expect(guarded.unauthorized()).toBeGreaterThan(before);
    expect(error.message).not.toContain("wrong-Pa55word");
    expect(JSON.stringify(error)).not.toContain("wrong-Pa55word");
  });

  it("fails with AuthFailed when the server wants credentials and none are given", async () => {
    const error = await fetchError({ url: `${guarded.url}/app.git`, revision: "main", dir: nextDir(), signal: signal() });
    expect(error.reason).toBe("AuthFailed");
  });

  it("fails with AuthFailed for credentials given in the URL, without them in the error", async () => {
    const url = `${guarded.url.replace("http://", "http://builder:url-Pa55word@")}/app.git`;
    const error = await fetchError({ url, revision: "main", dir: nextDir(), signal: signal() });
    expect(error.reason).toBe("AuthFailed");
    expect(error.url).toBe(`${guarded.url}/app.git`);
    expect(error.message).not.toContain("url-Pa55word");
  });

  it("fails with UnknownRevision for a missing branch and an unknown commit", async () => {
    for (const revision of ["no-such-branch", "0123456789abcdef0123456789abcdef01234567"]) {
      const error = await fetchError({ url: `${open.url}/app.git`, revision, dir: nextDir(), signal: signal() });
      expect(error.reason).toBe("UnknownRevision");
    }
  });

  it("fails with RepositoryNotFound for a missing repository", async () => {
    const error = await fetchError({ url: `${open.url}/missing.git`, revision: "main", dir: nextDir(), signal: signal() });
    expect(error.reason).toBe("RepositoryNotFound");
  });

  it("fails with Unreachable when nothing listens", async () => {
    const port = await freePort("127.0.0.1");
    const error = await fetchError({ url: `http://127.0.0.1:${port}/app.git`, revision: "main", dir: nextDir(), signal: signal() });
    expect(error.reason).toBe("Unreachable");
  });

  it("refuses option-like revisions and unsupported schemes before running git", async () => {
    for (const [url, revision] of [
      [`${open.url}/app.git`, "--upload-pack=touch /tmp/pwned"],
      [`${open.url}/app.git`, "main:refs/heads/x"],
      ["ext::sh -c touch% /tmp/pwned", "main"],
      ["file:///etc", "main"],
      ["git+ssh://git@example.invalid/app.git", "main"],
    ] as const) {
      const error = await fetchError({ url, revision, dir: nextDir(), signal: signal() });
      expect(error.reason).toBe("InvalidSource");
    }
  });

  it("rejects with the signal's reason when aborted", async () => {
    const controller = new AbortController();
    controller.abort(new Error("run cancelled"));
    await expect(
      fetchSource({ url: `${open.url}/app.git`, revision: "main", dir: nextDir(), signal: controller.signal }),
    ).rejects.toThrow("run cancelled");
  });
});

async function fetchError(opts: Parameters<typeof fetchSource>[0]): Promise<GitFetchError> {
  try {
    await fetchSource(opts);
  } catch (error) {
    if (error instanceof GitFetchError) return error;
    throw error;
  }
  throw new Error("fetch unexpectedly succeeded");
}

function git(cwd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("git", args, { cwd }, (error, stdout) => (error === null ? resolve(stdout) : reject(error)));
  });
}

/** Files under `dir` (including .git) that contain `needle`. */
function grepTree(dir: string, needle: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    execFile("grep", ["-r", "-l", "-F", "--", needle, dir], (error, stdout) => {
      if (error !== null && error.code !== 1) reject(error);
      else resolve(stdout.split("\n").filter((line) => line !== ""));
    });
  });
}
