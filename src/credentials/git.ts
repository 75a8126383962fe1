// Git credentials from `tekton.dev/git-N` annotated Secrets, and which one a repository URL gets.

interface GitCredentialBase {
  /** The annotation's value, as written (`https://github.com`, `github.com`, `example.com:2222`). */
  urlPrefix: string;
  /** The Secret it came from, for messages; never its content. */
  secretName: string;
}

export type GitCredential =
  | (GitCredentialBase & { kind: "basic"; username: string; password: string })
  | (GitCredentialBase & { kind: "ssh"; privateKey: string; knownHosts?: string });

/** A URL or prefix reduced to what matching compares. */
interface GitLocation {
  /** Lower-case scheme; undefined for a scheme-less prefix (`github.com`). scp-like URLs are `ssh`. */
  scheme: string | undefined;
  /** Lower-case host, without user info or port. */
  host: string;
  /** Explicit or scheme-default port; undefined when neither is known. */
  port: string | undefined;
  /** Non-empty path segments; a trailing `.git` is dropped so `org/app` and `org/app.git` are one repository. */
  path: string[];
}

const DEFAULT_PORTS: Readonly<Record<string, string>> = { http: "80", https: "443", ssh: "22", git: "9418" };
const SSH_SCHEMES = new Set(["ssh", "git+ssh", "ssh+git"]);
const HTTP_SCHEMES = new Set(["http", "https"]);
const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;
// `[user@]host:path` (git's scp-like syntax); a `:` followed by `//` is a scheme, handled before.
const SCP_LIKE = /^(?:[^@/]+@)?(\[[^\]]+\]|[^:/]+):(.*)$/;

/**
 * The credential git would use for `url`: among those of the URL's transport (basic for http(s), ssh for ssh and
 * scp-like URLs), the one whose prefix matches with the most path segments, then the one that names a scheme, then
 * a port; ties go to the first in order (ServiceAccount order, then annotation value, as Tekton sorts them).
 *
 * Matching, as git's `credential.<url>` and Tekton's `~/.ssh/config` `Host` entries do it:
 * - host: case-insensitive, user info ignored;
 * - basic: a prefix with a scheme needs the same scheme; a port (explicit or the scheme's default) must be equal;
 *   the prefix's path segments must start the URL's path;
 * - ssh: the host alone decides (Tekton writes `Host <host>`; the annotation's port only sets the default port).
 */
export function gitCredentialFor(
  credentials: { readonly git: readonly GitCredential[] },
  url: string,
): GitCredential | undefined {
  const target = parseGitLocation(url, "url");
  if (target?.scheme === undefined) return undefined;
  const kind = HTTP_SCHEMES.has(target.scheme) ? "basic" : SSH_SCHEMES.has(target.scheme) ? "ssh" : undefined;
  if (kind === undefined) return undefined;
  let best: { credential: GitCredential; score: number } | undefined;
  for (const credential of credentials.git) {
    if (credential.kind !== kind) continue;
    const prefix = parseGitLocation(credential.urlPrefix, "prefix");
    if (prefix === undefined) continue;
    const score = kind === "basic" ? basicScore(prefix, target) : sshScore(prefix, target);
    if (score !== undefined && (best === undefined || score > best.score)) best = { credential, score };
  }
  return best?.credential;
}

/** Whether a `tekton.dev/git-N` value can ever match: a host, optionally with scheme, port and path. */
export function isValidGitPrefix(prefix: string): boolean {
  return parseGitLocation(prefix, "prefix") !== undefined;
}

function basicScore(prefix: GitLocation, target: GitLocation): number | undefined {
  if (prefix.host !== target.host) return undefined;
  if (prefix.scheme !== undefined && prefix.scheme !== target.scheme) return undefined;
  if (prefix.port !== undefined && prefix.port !== target.port) return undefined;
  if (prefix.path.length > target.path.length) return undefined;
  if (prefix.path.some((segment, i) => segment !== target.path[i])) return undefined;
  return prefix.path.length * 4 + (prefix.scheme === undefined ? 0 : 2) + (prefix.port === undefined ? 0 : 1);
}

function sshScore(prefix: GitLocation, target: GitLocation): number | undefined {
  return prefix.host === target.host ? 0 : undefined;
}

/**
 * `mode: "url"`: a repository URL (scheme-less means scp-like ssh). `mode: "prefix"`: an annotation value, where
 * scheme-less means `host[:port][/path]` (Tekton's `github.com`, `example.com:2222`).
 */
function parseGitLocation(text: string, mode: "url" | "prefix"): GitLocation | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  if (SCHEME.test(trimmed)) return parseWithScheme(trimmed);
  if (mode === "prefix") return parseWithScheme(`vmbuild-any://${trimmed}`, true);
  const scp = SCP_LIKE.exec(trimmed);
  if (scp === null) return undefined;
  const host = (scp[1] ?? "").toLowerCase();
  if (host === "") return undefined;
  return { scheme: "ssh", host, port: DEFAULT_PORTS.ssh, path: segments(scp[2] ?? "") };
}

function parseWithScheme(text: string, schemeless = false): GitLocation | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.hostname === "") return undefined;
  const scheme = schemeless ? undefined : url.protocol.slice(0, -1).toLowerCase();
  const port = url.port !== "" ? url.port : scheme === undefined ? undefined : DEFAULT_PORTS[scheme];
  return { scheme, host: url.hostname.toLowerCase(), port, path: segments(decodeSafe(url.pathname)) };
}

function segments(path: string): string[] {
  const parts = path.split("/").filter((part) => part !== "");
  const last = parts.length - 1;
  const tail = parts[last];
  if (tail !== undefined && tail.endsWith(".git")) parts[last] = tail.slice(0, -".git".length);
  return parts.filter((part) => part !== "");
}

function decodeSafe(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}
