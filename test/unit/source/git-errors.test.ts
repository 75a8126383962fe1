import { describe, expect, it } from "vitest";
import { classifyGitStderr, GitFetchError, redact, type GitFetchReason } from "../../../src/source/git-errors.js";

describe("classifyGitStderr", () => {
  // Messages as git 2.39 prints them with LC_ALL=C (the first five measured against git http-backend).
  const cases: [string, GitFetchReason][] = [
    ["fatal: Authentication failed for 'http://127.0.0.1:36517/app.git/'", "AuthFailed"],
    ["fatal: could not read Username for 'http://127.0.0.1:36517': terminal prompts disabled", "AuthFailed"],
    ["fatal: couldn't find remote ref nope", "UnknownRevision"],
    ["fatal: remote error: upload-pack: not our ref 0123456789012345678901234567890123456789", "UnknownRevision"],
    ["fatal: repository 'http://127.0.0.1:36517/nope.git/' not found", "RepositoryNotFound"],
    [
      "fatal: unable to access 'http://127.0.0.1:1/app.git/': Failed to connect to 127.0.0.1 port 1 after 0 ms: Couldn't connect to server",
      "Unreachable",
    ],
    ["fatal: unable to access 'https://git.invalid/x.git/': Could not resolve host: git.invalid", "Unreachable"],
    ["remote: HTTP Basic: Access denied\nfatal: Authentication failed for 'https://gitlab.example/x.git/'", "AuthFailed"],
    ["fatal: unable to access 'https://h/x.git/': The requested URL returned error: 403", "AuthFailed"],
    ["fatal: unable to access 'https://h/x.git/': The requested URL returned error: 502", "Unreachable"],
    ["fatal: '/srv/x' does not appear to be a git repository", "RepositoryNotFound"],
    ["fatal: remote error: access denied or repository not exported: /x.git", "RepositoryNotFound"],
    ["error: Server does not allow request for unadvertised object abc", "UnknownRevision"],
    ["fatal: the remote end hung up unexpectedly", "GitFailed"],
  ];
  it.each(cases)("%s → %s", (stderr, reason) => {
    expect(classifyGitStderr(stderr)).toBe(reason);
  });
});

describe("redact", () => {
  it("drops user info from URLs and secrets anywhere", () => {
    expect(redact("fatal: unable to access 'https://bob:hunter2@git.example/x.git/': hunter2", ["hunter2"])).toBe(
      "fatal: unable to access 'https://git.example/x.git/': ***",
    );
    expect(redact("see http://token@h/x and git://u:p@h/y")).toBe("see http://h/x and git://h/y");
  });
});

describe("GitFetchError", () => {
  it("names the revision, or the remote HEAD", () => {
    expect(new GitFetchError({ reason: "UnknownRevision", url: "https://h/x.git", revision: "v9" }).message).toBe(
      "git fetch https://h/x.git (v9): revision not found in the repository",
    );
    expect(new GitFetchError({ reason: "Unreachable", url: "https://h/x.git", revision: "", detail: "d" }).message).toBe(
      "git fetch https://h/x.git (remote HEAD): repository host unreachable: d",
    );
  });
});
