/** Why a fetch failed, as a stable reason a CustomRun condition can carry. */
export type GitFetchReason =
  | "InvalidSource"
  | "RepositoryNotFound"
  | "AuthFailed"
  | "HostKeyMismatch"
  | "UnknownRevision"
  | "Unreachable"
  | "GitFailed";

/** A failed source fetch. Its message and fields hold redacted URLs only, never a credential. */
export class GitFetchError extends Error {
  override readonly name = "GitFetchError";
  readonly reason: GitFetchReason;
  /** The repository URL without user info. */
  readonly url: string;
  readonly revision: string;
  /** git's last stderr lines, redacted; empty when git did not run. */
  readonly detail: string;

  constructor(init: { reason: GitFetchReason; url: string; revision: string; detail?: string; message?: string }) {
    const what = init.message ?? REASON_TEXT[init.reason];
    const revision = init.revision === "" ? "remote HEAD" : init.revision;
    const detail = init.detail === undefined || init.detail === "" ? "" : `: ${init.detail}`;
    super(`git fetch ${init.url} (${revision}): ${what}${detail}`);
    this.reason = init.reason;
    this.url = init.url;
    this.revision = init.revision;
    this.detail = init.detail ?? "";
  }
}

const REASON_TEXT: Record<GitFetchReason, string> = {
  InvalidSource: "invalid repository URL or revision",
  RepositoryNotFound: "repository not found",
  AuthFailed: "authentication failed or required",
  HostKeyMismatch: "the server's host key is not one known_hosts lists (host key verification failed)",
  UnknownRevision: "revision not found in the repository",
  Unreachable: "repository host unreachable",
  GitFailed: "git failed",
};

// Order matters: an auth failure on a missing repository is reported as auth (hosts hide private repos); ssh's
// host key check comes before everything (ssh stops there, git then says it "could not read from remote").
const PATTERNS: readonly (readonly [GitFetchReason, readonly RegExp[]])[] = [
  [
    "HostKeyMismatch",
    [
      /Host key verification failed/i,
      /REMOTE HOST IDENTIFICATION HAS CHANGED/i,
      /No \S+ host key is known for/i,
      /Host key for .* has changed/i,
    ],
  ],
  [
    "AuthFailed",
    [
      /Authentication failed/i,
      /could not read (Username|Password)/i,
      /terminal prompts disabled/i,
      /HTTP Basic: Access denied/i,
      /returned error: 40[13]\b/i,
      /Permission denied \(/i,
      /Load key .*: (invalid format|incorrect passphrase|error in libcrypto|bad permissions)/i,
      /Too many authentication failures/i,
    ],
  ],
  [
    "UnknownRevision",
    [
      /couldn't find remote ref/i,
      /Remote branch \S+ not found in upstream/i,
      /not our ref/i,
      /unadvertised object/i,
      /no such remote ref/i,
      /invalid refspec/i,
      /is not a valid ref/i,
    ],
  ],
  [
    "RepositoryNotFound",
    [
      /repository '.*' not found/i,
      /Repository not found/i,
      /does not appear to be a git repository/i,
      /not exported/i,
      /returned error: 404\b/i,
      /No such repository/i,
    ],
  ],
  [
    "Unreachable",
    [
      /Could not resolve host|unable to look up|Name or service not known|Temporary failure in name resolution/i,
      /Connection refused|Failed to connect|unable to connect|Connection reset/i,
      /Connection timed out|Operation timed out|timed out during banner exchange/i,
      /Connection closed by .* port \d+|kex_exchange_identification/i,
      /Network is unreachable|No route to host/i,
      /Could not read from remote repository/i,
      /SSL certificate problem|server certificate verification failed/i,
      /returned error: 5\d\d\b/i,
    ],
  ],
];

/** Maps git's stderr (run with LC_ALL=C) to a failure reason. */
export function classifyGitStderr(stderr: string): GitFetchReason {
  for (const [reason, patterns] of PATTERNS) {
    if (patterns.some((pattern) => pattern.test(stderr))) return reason;
  }
  return "GitFailed";
}

/** Removes user info from every URL in `text` and every occurrence of the given secrets. */
export function redact(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/\s@'"]*@/gi, "$1");
  for (const secret of secrets) {
    if (secret !== "") out = out.split(secret).join("***");
  }
  return out;
}

// Lines that say nothing of the cause: git's advice after any failed ssh or local transport, and ssh's banner
// around a changed host key (its "Host key for ... has changed" and "Host key verification failed" lines stay).
const BOILERPLATE: readonly RegExp[] = [
  /^fatal: Could not read from remote repository\.?$/i,
  /^Please make sure you have the correct access rights$/i,
  /^and the repository exists\.?$/i,
  /^@+/,
  /^IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY/i,
  /^Someone could be eavesdropping/i,
  /^It is also possible that a host key has just been changed/i,
  /^The fingerprint for the .* key sent by the remote host is/i,
  /^SHA256:\S+\.?$/,
  /^Please contact your system administrator/i,
  /^Add correct host key in/i,
  /^Offending .* key in/i,
  /^remove with:$/i,
  /^ssh-keygen -f /,
];

/**
 * The last few non-empty lines of git's stderr that tell the cause (boilerplate dropped unless that is all there
 * is), redacted: enough to diagnose, short enough for a condition.
 */
export function stderrTail(stderr: string, secrets: readonly string[]): string {
  const lines = stderr
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "");
  const telling = lines.filter((line) => !BOILERPLATE.some((pattern) => pattern.test(line)));
  return redact((telling.length > 0 ? telling : lines).slice(-3).join(" | "), secrets).slice(0, 500);
}
