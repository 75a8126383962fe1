/** Why a fetch failed, as a stable reason a CustomRun condition can carry. */
export type GitFetchReason =
  | "InvalidSource"
  | "RepositoryNotFound"
  | "AuthFailed"
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
  UnknownRevision: "revision not found in the repository",
  Unreachable: "repository host unreachable",
  GitFailed: "git failed",
};

// Order matters: an auth failure on a missing repository is reported as auth (hosts hide private repos).
const PATTERNS: readonly (readonly [GitFetchReason, readonly RegExp[]])[] = [
  [
    "AuthFailed",
    [
      /Authentication failed/i,
      /could not read (Username|Password)/i,
      /terminal prompts disabled/i,
      /HTTP Basic: Access denied/i,
      /returned error: 40[13]\b/i,
      /Permission denied \(publickey/i,
    ],
  ],
  [
    "UnknownRevision",
    [
      /couldn't find remote ref/i,
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
      /Could not resolve host|unable to look up/i,
      /Connection refused|Failed to connect|unable to connect|Connection reset/i,
      /Connection timed out|Operation timed out/i,
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

/** The last few non-empty lines of git's stderr, redacted: enough to diagnose, short enough for a condition. */
export function stderrTail(stderr: string, secrets: readonly string[]): string {
  const lines = stderr
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "");
  return redact(lines.slice(-3).join(" | "), secrets).slice(0, 500);
}
