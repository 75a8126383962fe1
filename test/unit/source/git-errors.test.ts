import { describe, expect, it } from "vitest";
import { classifyGitStderr, GitFetchError, redact, stderrTail, type GitFetchReason } from "../../../src/source/git-errors.js";

describe("classifyGitStderr", () => {
  // Messages as git 2.39 prints them with LC_ALL=C (the first five measured against git http-backend).
  const cases: [string, GitFetchReason][] = [
    ["fatal: Authentication failed for 'http://127.0.0.1:36517/app.git/'", "AuthFailed"],
    ["fatal: could not read Username for 'http://127.0.0.1:36517': terminal prompts disabled", "AuthFailed"],
    ["fatal: couldn't find remote ref nope", "UnknownRevision"],
    ["warning: Could not find remote branch nope to clone.\nfatal: Remote branch nope not found in upstream origin", "UnknownRevision"],
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
  // What OpenSSH 9.2 and git 2.39 print for an ssh fetch (measured against sshd; the git lines end every one).
  const GIT_SSH_TAIL =
    "fatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n";
  const sshCases: [string, string, GitFetchReason][] = [
    ["a changed host key", `${HOST_KEY_CHANGED}${GIT_SSH_TAIL}`, "HostKeyMismatch"],
    [
      "a host known_hosts does not name",
      `No ED25519 host key is known for [127.0.0.1]:34999 and you have requested strict checking.\nHost key verification failed.\n${GIT_SSH_TAIL}`,
      "HostKeyMismatch",
    ],
    ["a refused key", `git@127.0.0.1: Permission denied (publickey).\n${GIT_SSH_TAIL}`, "AuthFailed"],
    ["a refused key (more methods)", `root@h: Permission denied (publickey,keyboard-interactive).\n${GIT_SSH_TAIL}`, "AuthFailed"],
    [
      "a key that does not load",
      `Load key "/tmp/vmbuild-git-x/id": error in libcrypto\nroot@h: Permission denied (publickey).\n${GIT_SSH_TAIL}`,
      "AuthFailed",
    ],
    ["a refused connection", `ssh: connect to host 127.0.0.1 port 1: Connection refused\n${GIT_SSH_TAIL}`, "Unreachable"],
    ["an unknown host", `ssh: Could not resolve hostname no-such.invalid: Name or service not known\n${GIT_SSH_TAIL}`, "Unreachable"],
    ["a connect timeout", `ssh: connect to host 10.0.0.1 port 22: Connection timed out\n${GIT_SSH_TAIL}`, "Unreachable"],
    ["a server that hangs up", `kex_exchange_identification: Connection closed by remote host\nConnection closed by 10.0.0.1 port 22\n${GIT_SSH_TAIL}`, "Unreachable"],
    ["a missing repository", `fatal: '/srv/missing.git' does not appear to be a git repository\n${GIT_SSH_TAIL}`, "RepositoryNotFound"],
  ];
  it.each(sshCases)("ssh: %s → %s", (_what, stderr, reason) => {
    expect(classifyGitStderr(stderr)).toBe(reason);
  });
  it.each(cases)("%s → %s", (stderr, reason) => {
    expect(classifyGitStderr(stderr)).toBe(reason);
  });
});

const HOST_KEY_CHANGED = `@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
Someone could be eavesdropping on you right now (man-in-the-middle attack)!
It is also possible that a host key has just been changed.
The fingerprint for the ED25519 key sent by the remote host is
SHA256:xVhRf/jixUCHe43Dk2BsyYxR1n4Hbs9iaZ2+qxCf/ZM.
Please contact your system administrator.
Add correct host key in /tmp/vmbuild-git-x/known_hosts to get rid of this message.
Offending ED25519 key in /tmp/vmbuild-git-x/known_hosts:1
  remove with:
  ssh-keygen -f "/tmp/vmbuild-git-x/known_hosts" -R "[127.0.0.1]:34999"
Host key for [127.0.0.1]:34999 has changed and you have requested strict checking.
Host key verification failed.
`;

describe("stderrTail", () => {
  it("keeps the lines that tell the cause, not git's advice or ssh's banner", () => {
    expect(
      stderrTail(`${HOST_KEY_CHANGED}fatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n`, []),
    ).toBe("Host key for [127.0.0.1]:34999 has changed and you have requested strict checking. | Host key verification failed.");
    expect(stderrTail("fatal: Could not read from remote repository.\n", [])).toBe("fatal: Could not read from remote repository.");
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
