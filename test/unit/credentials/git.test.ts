import { describe, expect, it } from "vitest";
import { gitCredentialFor, isValidGitPrefix, type GitCredential } from "../../../src/credentials/git.js";

const basic = (urlPrefix: string, secretName = urlPrefix): GitCredential => ({
  urlPrefix,
  kind: "basic",
  secretName,
  username: "u",
  password: "p",
});
const ssh = (urlPrefix: string, secretName = urlPrefix): GitCredential => ({
  urlPrefix,
  kind: "ssh",
  secretName,
  privateKey: "KEY",
});

/** Which prefix (by secretName) `url` gets from `git`; undefined for none. */
const pick = (git: GitCredential[], url: string): string | undefined => gitCredentialFor({ git }, url)?.secretName;

describe("gitCredentialFor", () => {
  const nested = [basic("https://github.com"), basic("https://github.com/org"), basic("https://github.com/org/app")];

  it.each<[string, GitCredential[], string, string | undefined]>([
    // Host, scheme, port.
    ["the article's https://github.com", [basic("https://github.com")], "https://github.com/team/app.git", "https://github.com"],
    ["hosts compare case-insensitively", [basic("https://GitHub.com")], "https://github.COM/team/app", "https://GitHub.com"],
    ["user info in the URL is ignored", [basic("https://github.com")], "https://bob@github.com/team/app", "https://github.com"],
    ["another host does not match", [basic("https://github.com")], "https://gitlab.com/team/app", undefined],
    ["a sub-domain is another host", [basic("https://github.com")], "https://api.github.com/x", undefined],
    ["a prefix's scheme must be the URL's", [basic("http://git.local")], "https://git.local/app", undefined],
    ["a scheme-less prefix matches https", [basic("github.com")], "https://github.com/team/app", "github.com"],
    ["a scheme-less prefix matches http", [basic("git.local")], "http://git.local:3000/app", "git.local"],
    ["an explicit port must be equal", [basic("https://git.example:8443")], "https://git.example/app", undefined],
    ["an explicit port matches", [basic("https://git.example:8443")], "https://git.example:8443/app", "https://git.example:8443"],
    ["the default port is implied", [basic("https://git.example:443")], "https://git.example/app", "https://git.example:443"],
    ["scheme-less host:port", [basic("git.example:8443")], "https://git.example:8443/app", "git.example:8443"],
    // Paths: segment-wise prefix, trailing slash and .git insignificant.
    ["the longest prefix wins (repo)", nested, "https://github.com/org/app.git", "https://github.com/org/app"],
    ["the longest prefix wins (org)", nested, "https://github.com/org/other", "https://github.com/org"],
    ["the longest prefix wins (host)", nested, "https://github.com/else/x", "https://github.com"],
    ["prefixes end at a segment boundary", [basic("https://github.com/org")], "https://github.com/organisation/x", undefined],
    ["a trailing slash is insignificant", [basic("https://github.com/org/")], "https://github.com/org/app", "https://github.com/org/"],
    ["a trailing .git is insignificant", [basic("https://github.com/org/app.git")], "https://github.com/org/app", "https://github.com/org/app.git"],
    ["a longer prefix than the URL does not match", [basic("https://github.com/org/app")], "https://github.com/org", undefined],
    // Ties.
    ["a scheme beats no scheme at equal depth", [basic("github.com", "bare"), basic("https://github.com", "https")], "https://github.com/a", "https"],
    ["equal prefixes: the first wins", [basic("https://github.com", "first"), basic("https://github.com/", "second")], "https://github.com/a", "first"],
    // ssh: host only, for ssh and scp-like URLs.
    ["ssh key for an scp-like URL", [ssh("github.com")], "git@github.com:team/app.git", "github.com"],
    ["ssh key for an ssh:// URL", [ssh("github.com")], "ssh://git@github.com/team/app.git", "github.com"],
    ["ssh: the URL's port does not matter", [ssh("github.com")], "ssh://git@github.com:2222/team/app", "github.com"],
    ["ssh: Tekton's host:port form", [ssh("example.com:2222")], "git@example.com:team/app", "example.com:2222"],
    ["ssh: a prefix with a scheme still names its host", [ssh("https://github.com")], "git@github.com:team/app", "https://github.com"],
    ["ssh: another host", [ssh("github.com")], "git@gitlab.com:team/app", undefined],
    // Transports.
    ["no ssh key for https", [ssh("github.com")], "https://github.com/team/app", undefined],
    ["no password for ssh", [basic("https://github.com")], "git@github.com:team/app", undefined],
    ["the transport picks among both", [ssh("github.com", "key"), basic("https://github.com", "pw")], "git@github.com:a/b", "key"],
    ["nothing for git://", [basic("github.com")], "git://github.com/team/app", undefined],
    ["nothing for file://", [basic("github.com")], "file:///srv/app.git", undefined],
    ["nothing for a local path", [basic("github.com")], "/srv/app.git", undefined],
    ["nothing without credentials", [], "https://github.com/team/app", undefined],
  ])("%s", (_name, git, url, expected) => {
    expect(pick(git, url)).toBe(expected);
  });

  it("returns the whole credential", () => {
    const key: GitCredential = { urlPrefix: "github.com", kind: "ssh", secretName: "k", privateKey: "PK", knownHosts: "KH" };
    expect(gitCredentialFor({ git: [key] }, "git@github.com:a/b.git")).toEqual(key);
  });
});

describe("isValidGitPrefix", () => {
  it.each([
    ["https://github.com", true],
    ["github.com", true],
    ["example.com:2222", true],
    ["https://github.com/org", true],
    ["", false],
    ["https://", false],
    ["not a host", false],
  ])("%j → %s", (prefix, valid) => {
    expect(isValidGitPrefix(prefix)).toBe(valid);
  });
});
