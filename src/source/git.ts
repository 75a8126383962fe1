import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { classifyGitStderr, GitFetchError, redact, stderrTail } from "./git-errors.js";

const execFileAsync = promisify(execFile);

export interface GitAuth {
  username: string;
  password: string;
}

export interface FetchSourceOptions {
  /** http(s)://, git:// or file:// URL; user info in it is moved out of the URL into auth. */
  url: string;
  /** Branch, tag or full commit; empty for the remote HEAD. */
  revision: string;
  /** Checkout directory; created when missing, expected empty. */
  dir: string;
  auth?: GitAuth | undefined;
  signal: AbortSignal;
}

const SCHEMES = ["http:", "https:", "git:", "file:"];
// Conservative ref/commit syntax: no option-like or refspec-like input reaches git's argv.
const REVISION = /^(?!-)(?!.*\.\.)(?!.*\/\/)[A-Za-z0-9._/-]*$/;

// The askpass helper answers git's "Username for ..." / "Password for ..." prompts from its environment, so
// credentials never appear in argv, in the URL git records (FETCH_HEAD), or on disk.
const ASKPASS_SCRIPT = `#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "$VMBUILD_GIT_USERNAME" ;;
  *) printf '%s\\n' "$VMBUILD_GIT_PASSWORD" ;;
esac
`;

/**
 * Shallow-fetches one revision into `dir` and checks it out detached: `git init`, `git fetch --depth 1`,
 * `git checkout --detach FETCH_HEAD`. Resolves with the commit checked out.
 */
export async function fetchSource(opts: FetchSourceOptions): Promise<{ commit: string }> {
  const { url, auth } = splitCredentials(opts.url, opts.auth, opts.revision);
  if (!REVISION.test(opts.revision)) {
    throw new GitFetchError({ reason: "InvalidSource", url, revision: "(invalid)", message: "invalid revision" });
  }
  const secrets = auth === undefined ? [] : [auth.password];
  const askpassDir = auth === undefined ? undefined : await writeAskpass();
  const context: RunContext = {
    cwd: opts.dir,
    env: gitEnv(auth, askpassDir),
    signal: opts.signal,
    url,
    revision: opts.revision,
    secrets,
  };
  const git = async (args: readonly string[]): Promise<string> => runGit(args, context);
  try {
    await mkdir(opts.dir, { recursive: true });
    await git(["init", "--quiet"]);
    const fetchArgs = ["fetch", "--quiet", "--depth", "1", "--no-tags", "--", url];
    if (opts.revision !== "") fetchArgs.push(opts.revision);
    await git(fetchArgs);
    await git(["checkout", "--quiet", "--detach", "FETCH_HEAD"]);
    const commit = (await git(["rev-parse", "HEAD"])).trim();
    return { commit };
  } finally {
    if (askpassDir !== undefined) await rm(askpassDir, { recursive: true, force: true });
  }
}

function splitCredentials(
  raw: string,
  auth: GitAuth | undefined,
  revision: string,
): { url: string; auth: GitAuth | undefined } {
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    // Not even redactable reliably (scp-like `user:pass@host:repo`): leave the URL out of the error.
    throw new GitFetchError({ reason: "InvalidSource", url: "(unparseable URL)", revision, message: "URL does not parse" });
  }
  const embedded =
    parsed.username === ""
      ? undefined
      : { username: decodeURIComponent(parsed.username), password: decodeURIComponent(parsed.password) };
  parsed.username = "";
  parsed.password = "";
  const url = parsed.toString();
  if (!SCHEMES.includes(parsed.protocol)) {
    throw new GitFetchError({
      reason: "InvalidSource",
      url,
      revision,
      message: `unsupported scheme ${parsed.protocol} (use ${SCHEMES.join(" ")})`,
    });
  }
  return { url, auth: auth ?? embedded };
}

async function writeAskpass(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "vmbuild-askpass-"));
  const script = join(dir, "askpass.sh");
  await writeFile(script, ASKPASS_SCRIPT, { mode: 0o700 });
  await chmod(script, 0o700);
  return dir;
}

function gitEnv(auth: GitAuth | undefined, askpassDir: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // English messages: classifyGitStderr parses them.
    LC_ALL: "C",
    GIT_TERMINAL_PROMPT: "0",
    // Blocks ext:: and friends, also for anything git would follow on its own.
    GIT_ALLOW_PROTOCOL: "http:https:git:file",
    // An empty credential.helper clears configured helpers, so no helper stores the password.
    GIT_CONFIG_COUNT: "3",
    GIT_CONFIG_KEY_0: "credential.helper",
    GIT_CONFIG_VALUE_0: "",
    GIT_CONFIG_KEY_1: "advice.detachedHead",
    GIT_CONFIG_VALUE_1: "false",
    // Keep the fetched pack as received: below the default limit (100 objects) git inflates and re-deflates
    // every object into a loose file, minutes of CPU for a repository of a few large files.
    GIT_CONFIG_KEY_2: "fetch.unpackLimit",
    GIT_CONFIG_VALUE_2: "1",
  };
  delete env.GIT_ASKPASS;
  delete env.SSH_ASKPASS;
  if (auth !== undefined && askpassDir !== undefined) {
    env.GIT_ASKPASS = join(askpassDir, "askpass.sh");
    env.VMBUILD_GIT_USERNAME = auth.username;
    env.VMBUILD_GIT_PASSWORD = auth.password;
  }
  return env;
}

interface RunContext {
  cwd: string;
  env: NodeJS.ProcessEnv;
  signal: AbortSignal;
  url: string;
  revision: string;
  secrets: readonly string[];
}

async function runGit(args: readonly string[], ctx: RunContext): Promise<string> {
  try {
    const { stdout } = await execFileAsync("git", args, {
      cwd: ctx.cwd,
      env: ctx.env,
      signal: ctx.signal,
      maxBuffer: 4 * 1024 * 1024,
      encoding: "utf8",
    });
    return stdout;
  } catch (error) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    const stderr = stderrOf(error);
    const command = args[0] ?? "git";
    if (stderr === "") {
      const detail = `git ${command}: ${redact(messageOf(error), ctx.secrets)}`;
      throw new GitFetchError({ reason: "GitFailed", url: ctx.url, revision: ctx.revision, detail });
    }
    throw new GitFetchError({
      reason: classifyGitStderr(stderr),
      url: ctx.url,
      revision: ctx.revision,
      detail: stderrTail(stderr, ctx.secrets),
    });
  }
}

function stderrOf(error: unknown): string {
  if (typeof error === "object" && error !== null && "stderr" in error && typeof error.stderr === "string") {
    return error.stderr;
  }
  return "";
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
