import { describe, expect, it } from "vitest";
import { isGitRevision, parseGitUrl, withoutCredentials } from "../../../src/api/git-url.js";
import { resolveSettings } from "../../../src/api/resolve.js";
import { GitFetchError } from "../../../src/source/git-errors.js";
import { planFetch, type GitAuth } from "../../../src/source/git.js";

// The settings schema and the fetch judge a run's gitUrl and gitRevision alike: whatever the fetch would refuse is
// refused at validation (InvalidParams), before a VM is leased; whatever validation lets through, the fetch takes.

const base = { pool: "builders", image: "registry.test/app:1" };
const SSH: GitAuth = { kind: "ssh", secret: "ns/key", privateKey: "KEY", knownHosts: "h ssh-ed25519 AAAA\n" };

const settingsAccept = (gitUrl: string, gitRevision = "main"): boolean =>
  resolveSettings({ ...base, gitUrl, gitRevision }, []).ok;

/** Whether the fetch takes the URL and revision, given the credential its transport needs. */
const fetchAccepts = (url: string, revision = "main"): boolean => {
  try {
    planFetch({ url, revision, auth: /^https?:/.test(url) ? undefined : SSH });
    return true;
  } catch (error) {
    if (error instanceof GitFetchError && error.reason === "InvalidSource") return false;
    throw error;
  }
};

const ACCEPTED = [
  "https://github.com/org/app.git",
  "https://github.com/org/app",
  "http://127.0.0.1:8080/app.git",
  "https://user:p%40ss@git.example/app.git",
  "https://git.example/app.git?ref=x",
  "https://[::1]:8443/app.git",
  "git://git.example/app.git",
  "git://git.example:9418/org/app.git",
  "ssh://git@github.com/org/app.git",
  "ssh://github.com/org/app.git",
  "ssh://git@git.example:2222/org/app.git",
  "ssh://git@[::1]:2222/org/app.git",
  "ssh://git@host/~user/app.git",
  "ssh://git_x@host_name.example/app.git",
  "git@github.com:org/app.git",
  "git@github.com:/srv/app.git",
  "deploy.bot@git.example:app",
];

const REFUSED = [
  "file:///etc",
  "file:///srv/app.git",
  "/srv/app.git",
  "ext::sh -c touch% /tmp/pwned",
  "git+ssh://git@github.com/org/app.git",
  "ssh+git://git@github.com/org/app.git",
  "HTTPS://github.com/org/app.git",
  "ftp://host/app.git",
  "github.com:org/app.git",
  "github.com/org/app.git",
  "https://github.com",
  "https://github.com/",
  "ssh://git@github.com",
  "ssh://git:secret@github.com/org/app.git",
  "ssh://-oProxyCommand=touch%20x/app.git",
  "ssh://%2DoProxyCommand@host/app.git",
  "ssh://-user@host/app.git",
  "ssh://us%20er@host/app.git",
  "ssh://git@host/app.git?x=1",
  "https://github.com/org/app.git#main",
  "-oProxyCommand=x@host:app",
  "git@-host:app",
  "git@host:-app",
  "git@host:",
  "https://git.example/app .git",
  "https://git.example/app\u0000.git",
  "ssh://git@host/app\u007f.git",
  "https://exa mple.com/app.git",
  "https://[bad/app.git",
  "",
];

describe("gitUrl: the schema and the fetch accept the same URLs", () => {
  it.each(ACCEPTED)("accepts %j", (url) => {
    expect(parseGitUrl(url).ok).toBe(true);
    expect(settingsAccept(url)).toBe(true);
    expect(fetchAccepts(url)).toBe(true);
  });

  it.each(REFUSED)("refuses %j", (url) => {
    expect(parseGitUrl(url).ok).toBe(false);
    expect(settingsAccept(url)).toBe(false);
    expect(fetchAccepts(url)).toBe(false);
  });

  it("names the accepted forms, and never file:", () => {
    const r = resolveSettings({ ...base, gitUrl: "file:///srv/app.git" }, []);
    expect(r.ok).toBe(false);
    const message = r.ok ? "" : r.message;
    expect(message).toContain("gitUrl: expected an http(s)://, git://, ssh:// or user@host:path git URL");
    expect(message.replace(/ \(got .*\)$/, "")).not.toMatch(/file:/);
    let fetchMessage = "";
    try {
      planFetch({ url: "file:///srv/app.git", revision: "main" });
    } catch (error) {
      fetchMessage = (error as Error).message;
    }
    expect(fetchMessage).toContain("expected an http(s)://, git://, ssh:// or user@host:path git URL");
    expect(fetchMessage.replace("git fetch file:///srv/app.git", "")).not.toMatch(/file:/);
  });

  it("says why a URL of an accepted scheme is refused", () => {
    const message = (gitUrl: string) => {
      const r = resolveSettings({ ...base, gitUrl }, []);
      return r.ok ? "" : r.message;
    };
    expect(message("ssh://git:pw@host/app.git")).toMatch(/an ssh:\/\/ URL carries no password: link a kubernetes.io\/ssh-auth Secret/);
    expect(message("https://github.com")).toMatch(/names no repository/);
    expect(message("git@-host:app")).toMatch(/is not a host name/);
    // The refused URL is echoed without its user info.
    expect(message("ssh://git:pw-Secret1@host/app.git")).not.toContain("pw-Secret1");
    expect(message("https://bob:tok-Secret2@github.com")).not.toContain("tok-Secret2");
  });

  it("parses what the fetch needs: transport, host, port, the URL git gets, http logins moved out", () => {
    expect(parseGitUrl("ssh://git@Git.Example:2222/org/app.git")).toEqual({
      ok: true,
      url: { transport: "ssh", url: "ssh://git@Git.Example:2222/org/app.git", host: "git.example", port: "2222", scpLike: false },
    });
    expect(parseGitUrl("git@github.com:org/app.git")).toEqual({
      ok: true,
      url: { transport: "ssh", url: "git@github.com:org/app.git", host: "github.com", port: "", scpLike: true },
    });
    expect(parseGitUrl("https://bob:p%40ss@git.example/app.git")).toEqual({
      ok: true,
      url: {
        transport: "https",
        url: "https://git.example/app.git",
        host: "git.example",
        port: "",
        scpLike: false,
        login: { username: "bob", password: "p@ss" },
      },
    });
  });
});

const REVISIONS_ACCEPTED = ["", "main", "feature/x-1", "v1.2.3", "release_2", "0123456789abcdef0123456789abcdef01234567"];
const REVISIONS_REFUSED = ["-x", "--upload-pack=evil", "main:refs/heads/x", "+main", "a..b", "a//b", "a@{1}", "ü", "a b", "a~1", "HEAD^"];

describe("gitRevision: the schema and the fetch accept the same revisions", () => {
  it.each(REVISIONS_ACCEPTED)("accepts %j", (revision) => {
    expect(isGitRevision(revision)).toBe(true);
    expect(settingsAccept("https://git.example/app.git", revision)).toBe(true);
    expect(fetchAccepts("https://git.example/app.git", revision)).toBe(true);
  });

  it.each(REVISIONS_REFUSED)("refuses %j", (revision) => {
    expect(isGitRevision(revision)).toBe(false);
    expect(settingsAccept("https://git.example/app.git", revision)).toBe(false);
    expect(fetchAccepts("https://git.example/app.git", revision)).toBe(false);
  });
});

describe("withoutCredentials", () => {
  it.each([
    ["https://user:token@git.example.com/app.git", "https://git.example.com/app.git"],
    ["http://token@git.example.com/app.git", "http://git.example.com/app.git"],
    ["git://git.example.com/app.git", "git://git.example.com/app.git"],
    ["ssh://git@git.example.com:2222/app.git", "ssh://git@git.example.com:2222/app.git"],
    ["ssh://git:secret@git.example.com/app.git", "ssh://git@git.example.com/app.git"],
    ["git@git.example.com:team/app.git", "git@git.example.com:team/app.git"],
    ["git:secret@git.example.com:team/app.git", "git@git.example.com:team/app.git"],
    ["git.example.com:2222/app.git", "git.example.com:2222/app.git"],
  ])("%s → %s", (url, want) => expect(withoutCredentials(url)).toBe(want));
});
