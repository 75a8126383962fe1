// The git URLs a run may name, judged once: the settings schema accepts exactly the URLs this parses, and the fetch
// (source/git.ts) fetches what it returns. Anything the fetch would refuse for the URL alone is refused here, as
// InvalidParams, before a VM is leased.

/** What the settings' `gitUrl` pattern (and the CRD's) lets through; `parseGitUrl` then checks the rest. */
export const GIT_URL = /^(?:(?:https?|git|ssh):\/\/[^\s]+|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+)$/;
export const GIT_URL_FORMS = "an http(s)://, git://, ssh:// or user@host:path git URL";

export type GitTransport = "http" | "https" | "git" | "ssh";

export interface GitUrl {
  transport: GitTransport;
  /** What git fetches: user info removed for http(s) and git (it goes into auth), the ssh user kept. */
  url: string;
  /** Lower-case host as the URL names it (`[::1]` for IPv6). */
  host: string;
  /** The explicit port, or "". */
  port: string;
  /** `user@host:path`: ssh on port 22. */
  scpLike: boolean;
  /** User info of an http(s) or git URL, decoded; git gets it through askpass, never in the URL. */
  login?: { username: string; password: string };
}

export type GitUrlParse = { ok: true; url: GitUrl } | { ok: false; message: string };

// A host name or an IPv4 address (no leading "-", which ssh would read as an option), or a bracketed IPv6 address.
const HOST = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])$/;
// The ssh user as git hands it to ssh (`user@host`): no encoding, no option-like start.
const SSH_USER = /^[A-Za-z0-9._][A-Za-z0-9._-]*$/;
const SCP_LIKE = /^([A-Za-z0-9._-]+)@([A-Za-z0-9.-]+):(.+)$/;
const CONTROL = /[\x00-\x1f\x7f]/;

// A branch, tag or commit the fetch passes to git: conservative ref syntax, so no option-like (`-x`) or refspec-like
// (`a:b`, `+a`, `a..b`) input reaches git's argv. The settings' own pattern is looser (the CRD's RE2 has no
// lookahead); this decides, for both.
const REVISION = /^(?!-)(?!.*\.\.)(?!.*\/\/)[A-Za-z0-9._/-]*$/;

/** Whether the fetch takes `revision` (empty: the remote HEAD); the settings accept exactly these. */
export function isGitRevision(revision: string): boolean {
  return REVISION.test(revision);
}

export const GIT_REVISION_FORM = "letters, digits, '.', '_', '/' and '-', not starting with '-', without '..' or '//'";

/** Parses a run's `gitUrl`; refuses, with the reason, every URL the fetch would refuse. */
export function parseGitUrl(text: string): GitUrlParse {
  const refuse = (message: string): GitUrlParse => ({ ok: false, message });
  if (CONTROL.test(text)) return refuse("a git URL must not contain control characters");
  if (!GIT_URL.test(text)) return refuse(`expected ${GIT_URL_FORMS}`);
  const scp = SCP_LIKE.exec(text);
  if (scp !== null && !/^[a-z]+:\/\//.test(text)) {
    const [, user = "", host = "", path = ""] = scp;
    if (!SSH_USER.test(user)) return refuse(`the ssh user "${user}" must not start with "-"`);
    if (!HOST.test(host)) return refuse(`"${host}" is not a host name`);
    if (path.startsWith("-")) return refuse('the repository path must not start with "-"');
    return { ok: true, url: { transport: "ssh", url: text, host: host.toLowerCase(), port: "", scpLike: true } };
  }
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    return refuse(`expected ${GIT_URL_FORMS}; this one does not parse`);
  }
  const transport = parsed.protocol.slice(0, -1) as GitTransport;
  // URL keeps the brackets of an IPv6 host of a non-special scheme (ssh, git) and drops nothing else.
  const host = parsed.hostname.toLowerCase();
  if (!HOST.test(host)) return refuse(`"${parsed.hostname}" is not a host name`);
  if (parsed.pathname === "" || parsed.pathname === "/") return refuse("the URL names no repository (its path is empty)");
  if (parsed.hash !== "") return refuse('a git URL has no "#fragment"');
  if (transport === "ssh") {
    if (parsed.password !== "") {
      return refuse("an ssh:// URL carries no password: link a kubernetes.io/ssh-auth Secret to the ServiceAccount");
    }
    if (parsed.username !== "" && !SSH_USER.test(parsed.username)) {
      return refuse("the ssh user must be letters, digits, '.', '_' or '-', not starting with '-'");
    }
    if (parsed.search !== "") return refuse('an ssh:// URL has no "?query"');
    return { ok: true, url: { transport, url: parsed.toString(), host, port: parsed.port, scpLike: false } };
  }
  const login =
    parsed.username === "" && parsed.password === ""
      ? undefined
      : { username: decodeSafe(parsed.username), password: decodeSafe(parsed.password) };
  parsed.username = "";
  parsed.password = "";
  return {
    ok: true,
    url: { transport, url: parsed.toString(), host, port: parsed.port, scpLike: false, ...(login ? { login } : {}) },
  };
}

function decodeSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * The URL without credentials, for results, logs and messages: user info of http(s) and git URLs may hold a token.
 * An ssh URL keeps its user (`git@`: no secret, and it says how to fetch), never a password.
 */
export function withoutCredentials(url: string): string {
  return url
    .replace(/^([a-z+]+:\/\/)([^@/]*)@/i, (_, scheme: string, info: string) =>
      /ssh/i.test(scheme) ? `${scheme}${info.split(":")[0]}@` : scheme,
    )
    .replace(/^([^:@/\s]+):[^@/\s]*@/, "$1@"); // user:password@host:path, which no form takes
}
