import { execFile } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { isGitRevision, parseGitUrl, type GitUrl } from "../api/git-url.js";
import type { GitCredential } from "../credentials/git.js";
import { DEFAULT_SERVICE_ACCOUNT } from "../credentials/tekton-secrets.js";
import { classifyGitStderr, GitFetchError, redact, stderrTail } from "./git-errors.js";
import { hasKnownHostsEntry, knownHostsName, UnsafeTempDirError, writeSshFiles } from "./git-ssh.js";

const execFileAsync = promisify(execFile);

/** A login for http(s) git URLs (`kind` may be left out). */
export interface GitBasicAuth {
  kind?: "basic";
  username: string;
  password: string;
}

/** A kubernetes.io/ssh-auth Secret's key and known_hosts, for ssh and `user@host:path` URLs. */
export interface GitSshAuth {
  kind: "ssh";
  /** `namespace/name` of the Secret, for messages. */
  secret: string;
  privateKey: string;
  knownHosts?: string | undefined;
}

export type GitAuth = GitBasicAuth | GitSshAuth;

export interface FetchSourceOptions {
  /** A URL the settings accept (parseGitUrl); user info of an http(s) URL is moved out of it into auth. */
  url: string;
  /** Branch, tag or full commit; empty for the remote HEAD. */
  revision: string;
  /** Checkout directory; created when missing, expected empty. */
  dir: string;
  /** The credential for the URL's transport (gitCredentialFor); one of the other transport is not used. */
  auth?: GitAuth | undefined;
  /** Where credentials were looked for (`ServiceAccount ns/name`), named when an ssh URL has none. */
  credentialsFrom?: string | undefined;
  signal: AbortSignal;
}

/** The credentials part of the options, as a build hands them over. */
export type GitFetchAuth = Pick<FetchSourceOptions, "auth" | "credentialsFrom">;

/** The fetch's part of a run's git credential (gitCredentialFor's pick), and where it was looked for. */
export function gitFetchAuth(
  credential: GitCredential | undefined,
  namespace: string,
  serviceAccountName: string | undefined,
): GitFetchAuth {
  const credentialsFrom = `ServiceAccount ${namespace}/${serviceAccountName || DEFAULT_SERVICE_ACCOUNT}`;
  if (credential === undefined) return { credentialsFrom };
  const auth: GitAuth =
    credential.kind === "basic"
      ? { username: credential.username, password: credential.password }
      : {
          kind: "ssh",
          secret: `${namespace}/${credential.secretName}`,
          privateKey: credential.privateKey,
          knownHosts: credential.knownHosts,
        };
  return { auth, credentialsFrom };
}

/** What a fetch will do, judged from its options alone, before git runs. */
export interface FetchPlan {
  url: GitUrl;
  basic?: { username: string; password: string };
  ssh?: { secret: string; privateKey: string; knownHosts: string };
}

// The askpass helper answers git's "Username for ..." / "Password for ..." prompts from its environment, so
// credentials never appear in argv, in the URL git records (FETCH_HEAD, a clone's remote), or on disk.
const ASKPASS_SCRIPT = `#!/bin/sh
case "$1" in
  Username*) printf '%s\\n' "$VMBUILD_GIT_USERNAME" ;;
  *) printf '%s\\n' "$VMBUILD_GIT_PASSWORD" ;;
esac
`;

/**
 * Shallow-fetches one revision into `dir` and checks it out. Resolves with the commit checked out. Credentials live,
 * for the fetch only, in a private temp dir removed afterwards (an askpass script reading the environment, or an
 * ssh key and known_hosts).
 */
export async function fetchSource(opts: FetchSourceOptions): Promise<{ commit: string }> {
  const plan = planFetch(opts);
  const url = plan.url.url;
  const secrets = [plan.basic?.password ?? "", ...keyLines(plan.ssh?.privateKey ?? "")];
  const context: RunContext = { cwd: opts.dir, env: {}, signal: opts.signal, url, revision: opts.revision, secrets };
  const git = async (args: readonly string[]): Promise<string> => runGit(args, context);
  let helperDir: string | undefined;
  try {
    if (plan.basic !== undefined || plan.ssh !== undefined) {
      helperDir = await mkdtemp(join(tmpdir(), "vmbuild-git-"));
    }
    context.env = await gitEnv(plan, helperDir);
    await mkdir(opts.dir, { recursive: true });
    if (clonesByName(opts.revision)) {
      // One process instead of three: each spawn forks the whole controller, which cost more than git's own work.
      // A name that is both a branch and a tag means the branch here (git fetch would take the tag).
      const branch = opts.revision === "" ? [] : ["--branch", opts.revision];
      await git(["clone", "--quiet", "--depth", "1", "--no-tags", ...branch, "--", url, "."]);
    } else {
      await git(["init", "--quiet"]);
      await git(["fetch", "--quiet", "--depth", "1", "--no-tags", "--", url, opts.revision]);
      await git(["checkout", "--quiet", "--detach", "FETCH_HEAD"]);
    }
    return { commit: await headCommit(opts.dir, context) };
  } catch (error) {
    throw explain(error, plan, opts.revision);
  } finally {
    if (helperDir !== undefined) await rm(helperDir, { recursive: true, force: true });
  }
}

/**
 * Branch and tag names and the remote HEAD are what `git clone --branch` takes; a commit (which it does not take)
 * and a full ref name (`refs/...`, `HEAD`) are fetched.
 */
function clonesByName(revision: string): boolean {
  // git takes a commit's name in either case.
  const commit = OBJECT_NAME.test(revision.toLowerCase());
  return revision === "" || !(commit || revision.startsWith("refs/") || revision === "HEAD");
}

const OBJECT_NAME = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * The commit checked out, read from the files git wrote rather than asked of a `git rev-parse` process: a detached
 * HEAD holds the object name itself; a clone's HEAD names the branch, whose loose ref (or packed-refs line) holds it.
 * A clone of an empty repository succeeds with a HEAD naming a branch that does not exist.
 */
async function headCommit(dir: string, ctx: RunContext): Promise<string> {
  const head = (await readFile(join(dir, ".git", "HEAD"), "utf8")).trim();
  if (OBJECT_NAME.test(head)) return head;
  const ref = /^ref: (refs\/heads\/\S+)$/.exec(head)?.[1];
  const commit = ref === undefined ? undefined : await refCommit(dir, ref);
  if (commit !== undefined) return commit;
  if (ref !== undefined) {
    const detail = "the repository has no commits";
    throw new GitFetchError({ reason: "UnknownRevision", url: ctx.url, revision: ctx.revision, detail });
  }
  const detail = `HEAD after the checkout is not a commit: ${head.slice(0, 100)}`;
  throw new GitFetchError({ reason: "GitFailed", url: ctx.url, revision: ctx.revision, detail });
}

async function refCommit(dir: string, ref: string): Promise<string | undefined> {
  const loose = (await readFile(join(dir, ".git", ref), "utf8").catch(() => "")).trim();
  if (OBJECT_NAME.test(loose)) return loose;
  const packed = await readFile(join(dir, ".git", "packed-refs"), "utf8").catch(() => "");
  for (const line of packed.split("\n")) {
    const [name, target] = line.split(" ");
    if (target === ref && name !== undefined && OBJECT_NAME.test(name)) return name;
  }
  return undefined;
}

/**
 * Judges a fetch from its options alone: the URL (the settings' rules, parseGitUrl), the revision, and the
 * credential the transport needs. An ssh URL needs an ssh credential with known_hosts: the host key is always
 * checked, never learnt.
 */
export function planFetch(opts: Pick<FetchSourceOptions, "url" | "revision" | "auth" | "credentialsFrom">): FetchPlan {
  const parsed = parseGitUrl(opts.url);
  if (!parsed.ok) {
    // A refused URL may hold anything, credentials too: only its scheme-and-host-less form is kept.
    const shown = /^[a-z]+:\/\//i.test(opts.url) ? redact(opts.url).slice(0, 200) : "(invalid URL)";
    throw new GitFetchError({ reason: "InvalidSource", url: shown, revision: opts.revision, message: parsed.message });
  }
  const url = parsed.url;
  if (!isGitRevision(opts.revision)) {
    throw new GitFetchError({ reason: "InvalidSource", url: url.url, revision: "(invalid)", message: "invalid revision" });
  }
  const auth = opts.auth;
  if (url.transport !== "ssh") {
    const basic = auth !== undefined && auth.kind !== "ssh" ? auth : url.login;
    return { url, ...(basic ? { basic: { username: basic.username, password: basic.password } } : {}) };
  }
  const where = knownHostsName(url.host, url.port);
  if (auth?.kind !== "ssh") {
    const from = opts.credentialsFrom ?? "the run's ServiceAccount";
    throw new GitFetchError({
      reason: "AuthFailed",
      url: url.url,
      revision: opts.revision,
      message: `no kubernetes.io/ssh-auth Secret with a tekton.dev/git-N annotation matching host ${url.host} is linked to ${from}`,
    });
  }
  if (!hasKnownHostsEntry(auth.knownHosts)) {
    throw new GitFetchError({
      reason: "AuthFailed",
      url: url.url,
      revision: opts.revision,
      message:
        `Secret ${auth.secret} has no known_hosts key (or it is empty): vmbuild always checks the host key; ` +
        `add a known_hosts key with the host key of ${where} (from \`${keyscan(url)}\`, checked against a fingerprint you trust)`,
    });
  }
  return { url, ssh: { secret: auth.secret, privateKey: auth.privateKey, knownHosts: auth.knownHosts ?? "" } };
}

/** The command that prints a host's keys in known_hosts form. */
function keyscan(url: GitUrl): string {
  const host = url.host.replace(/^\[|\]$/g, "");
  return url.port === "" ? `ssh-keyscan ${host}` : `ssh-keyscan -p ${url.port} ${host}`;
}

/** Host key and key failures of an ssh fetch, told in terms of the Secret the user can fix. */
function explain(error: unknown, plan: FetchPlan, revision: string): unknown {
  if (error instanceof UnsafeTempDirError) {
    return new GitFetchError({ reason: "GitFailed", url: plan.url.url, revision, message: error.message });
  }
  if (plan.ssh === undefined || !(error instanceof GitFetchError)) return error;
  const uid = /No user exists for uid (\d+)/.exec(error.detail)?.[1];
  if (uid !== undefined) {
    const message = `ssh does not run for uid ${uid}, which has no passwd entry: run the controller as the image's user 65532`;
    return new GitFetchError({ reason: "GitFailed", url: error.url, revision: error.revision, detail: error.detail, message });
  }
  const where = knownHostsName(plan.url.host, plan.url.port);
  const message =
    error.reason === "HostKeyMismatch"
      ? `the host key of ${where} did not match the known_hosts of Secret ${plan.ssh.secret} (host key verification failed)`
      : error.reason === "AuthFailed" && /Load key /i.test(error.detail)
        ? `ssh could not load the ssh-privatekey of Secret ${plan.ssh.secret} (not an unencrypted OpenSSH or PEM private key)`
        : error.reason === "AuthFailed"
          ? `${where} did not accept the key of Secret ${plan.ssh.secret}`
          : undefined;
  if (message === undefined) return error;
  return new GitFetchError({ reason: error.reason, url: error.url, revision: error.revision, detail: error.detail, message });
}

/** The base64 lines of a private key, masked should any ever show up in git's or ssh's stderr. */
function keyLines(privateKey: string): string[] {
  return privateKey
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line.length >= 16 && !line.startsWith("-----"));
}

async function writeAskpass(dir: string): Promise<string> {
  const script = join(dir, "askpass.sh");
  await writeFile(script, ASKPASS_SCRIPT, { mode: 0o700 });
  await chmod(script, 0o700);
  return script;
}

async function gitEnv(plan: FetchPlan, helperDir: string | undefined): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    // English messages: classifyGitStderr parses them.
    LC_ALL: "C",
    GIT_TERMINAL_PROMPT: "0",
    // Blocks file://, ext:: and friends, also for anything git would follow on its own; ssh only for an ssh URL.
    GIT_ALLOW_PROTOCOL: plan.ssh === undefined ? "http:https:git" : "ssh",
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
  // Neither the controller's credential helpers nor a repository of its own: the fetch's is `dir`/.git, where
  // headCommit reads it.
  const inherited = ["GIT_ASKPASS", "SSH_ASKPASS", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSH_VARIANT", "SSH_AUTH_SOCK"];
  for (const name of [...inherited, "GIT_DIR", "GIT_WORK_TREE"]) {
    delete env[name];
  }
  if (helperDir === undefined) return env;
  if (plan.basic !== undefined) {
    env.GIT_ASKPASS = await writeAskpass(helperDir);
    env.VMBUILD_GIT_USERNAME = plan.basic.username;
    env.VMBUILD_GIT_PASSWORD = plan.basic.password;
  }
  if (plan.ssh !== undefined) {
    env.GIT_SSH_COMMAND = await writeSshFiles(helperDir, plan.ssh.privateKey, plan.ssh.knownHosts);
    env.GIT_SSH_VARIANT = "ssh";
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
