import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { GitFetchError } from "../../../src/source/git-errors.js";
import {
  hasKnownHostsEntry,
  knownHostsName,
  shellQuote,
  sshCommand,
  UnsafeTempDirError,
  writeSshFiles,
} from "../../../src/source/git-ssh.js";
import { gitFetchAuth, planFetch, type FetchSourceOptions, type GitAuth } from "../../../src/source/git.js";

const exec = promisify(execFile);
const SSH: GitAuth = { kind: "ssh", secret: "ns/deploy-key", privateKey: "KEY", knownHosts: "[h]:2222 ssh-ed25519 AAAA\n" };

describe("sshCommand", () => {
  it("uses only the given key and known_hosts, checks the host key strictly, reads no config, never prompts", () => {
    expect(sshCommand("/tmp/vmbuild-git-abc/id", "/tmp/vmbuild-git-abc/known_hosts")).toBe(
      [
        "'ssh' '-F' '/dev/null' '-i' '/tmp/vmbuild-git-abc/id'",
        "'-o' 'IdentitiesOnly=yes' '-o' 'IdentityAgent=none'",
        "'-o' 'UserKnownHostsFile=/tmp/vmbuild-git-abc/known_hosts' '-o' 'GlobalKnownHostsFile=/dev/null'",
        "'-o' 'StrictHostKeyChecking=yes' '-o' 'UpdateHostKeys=no' '-o' 'CheckHostIP=no'",
        "'-o' 'BatchMode=yes' '-o' 'PasswordAuthentication=no' '-o' 'KbdInteractiveAuthentication=no'",
        "'-o' 'ConnectTimeout=30'",
      ].join(" "),
    );
  });

  it.each(["/tmp/a b/id", "/tmp/%d/id", "/tmp/~x/id", "/tmp/a'b/id", 'tmp/"x"/id', "relative/id", "/tmp/a\nb/id"])(
    "refuses a path ssh would split or expand: %j",
    (path) => {
      expect(() => sshCommand(path, "/tmp/ok/known_hosts")).toThrow(UnsafeTempDirError);
      expect(() => sshCommand("/tmp/ok/id", path)).toThrow(UnsafeTempDirError);
    },
  );

  it("quotes words so that sh passes them through unchanged", async () => {
    const words = ["plain", "it's", "$(id)", "`id`", "a b", "\\", '"', "*", ""];
    const { stdout } = await exec("sh", ["-c", `printf '%s\\n' ${words.map(shellQuote).join(" ")}`]);
    expect(stdout).toBe(words.map((w) => `${w}\n`).join(""));
  });
});

describe("writeSshFiles", () => {
  it("writes the key and known_hosts 0600 into the given dir, with a final newline and no CRs", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vmbuild-unit-ssh-"));
    try {
      expect((await stat(dir)).mode & 0o777).toBe(0o700);
      const command = await writeSshFiles(dir, "-----BEGIN KEY-----\r\nabc\r\n-----END KEY-----", "h ssh-ed25519 AAAA");
      expect(command).toContain(`'-i' '${join(dir, "id")}'`);
      expect(command).toContain(`'UserKnownHostsFile=${join(dir, "known_hosts")}'`);
      for (const file of ["id", "known_hosts"]) expect((await stat(join(dir, file))).mode & 0o777).toBe(0o600);
      expect(await readFile(join(dir, "id"), "utf8")).toBe("-----BEGIN KEY-----\nabc\n-----END KEY-----\n");
      expect(await readFile(join(dir, "known_hosts"), "utf8")).toBe("h ssh-ed25519 AAAA\n");
      // Never over a file that is there already.
      await expect(writeSshFiles(dir, "k", "h")).rejects.toThrow(/EEXIST/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("known_hosts", () => {
  it.each([
    [undefined, false],
    ["", false],
    ["\n  \n", false],
    ["# only a comment\n", false],
    ["github.com ssh-ed25519 AAAA", true],
    ["# c\r\n[h]:2222 ssh-ed25519 AAAA\r\n", true],
  ])("hasKnownHostsEntry(%j) = %s", (text, expected) => {
    expect(hasKnownHostsEntry(text)).toBe(expected);
  });

  it("names a host the way known_hosts does", () => {
    expect(knownHostsName("github.com", "")).toBe("github.com");
    expect(knownHostsName("github.com", "22")).toBe("github.com");
    expect(knownHostsName("git.example", "2222")).toBe("[git.example]:2222");
    expect(knownHostsName("[::1]", "2222")).toBe("[::1]:2222");
    expect(knownHostsName("[::1]", "")).toBe("::1");
  });
});

describe("planFetch", () => {
  const plan = (opts: Partial<FetchSourceOptions>) =>
    planFetch({ url: "ssh://git@git.example:2222/org/app.git", revision: "main", ...opts });
  const failure = (opts: Partial<FetchSourceOptions>): GitFetchError => {
    try {
      plan(opts);
    } catch (error) {
      if (error instanceof GitFetchError) return error;
      throw error;
    }
    throw new Error("planned");
  };

  it("takes the ssh credential for an ssh URL, with its known_hosts", () => {
    expect(plan({ auth: SSH })).toMatchObject({
      url: { transport: "ssh", url: "ssh://git@git.example:2222/org/app.git" },
      ssh: { secret: "ns/deploy-key", privateKey: "KEY", knownHosts: SSH.kind === "ssh" ? SSH.knownHosts : "" },
    });
    expect(plan({ url: "git@github.com:org/app.git", auth: SSH })).toMatchObject({ url: { transport: "ssh", scpLike: true } });
  });

  it("without an ssh credential, names the host and where credentials were looked for", () => {
    for (const auth of [undefined, { username: "u", password: "p" }]) {
      const error = failure({ auth, credentialsFrom: "ServiceAccount ns/pipeline" });
      expect(error.reason).toBe("AuthFailed");
      expect(error.message).toBe(
        "git fetch ssh://git@git.example:2222/org/app.git (main): no kubernetes.io/ssh-auth Secret with a tekton.dev/git-N annotation matching host git.example is linked to ServiceAccount ns/pipeline",
      );
    }
  });

  it("without known_hosts, names the Secret and the key; the host key is always checked", () => {
    const error = failure({ auth: { ...SSH, knownHosts: undefined } as GitAuth });
    expect(error.reason).toBe("AuthFailed");
    expect(error.message).toContain("Secret ns/deploy-key has no known_hosts key (or it is empty): vmbuild always checks the host key");
    expect(error.message).toContain("[git.example]:2222");
    expect(error.message).not.toContain("KEY");
  });

  it("uses a login for http(s) only: the given one over the URL's own, never an ssh credential", () => {
    expect(planFetch({ url: "https://a:b@h/x.git", revision: "" })).toEqual({
      url: expect.objectContaining({ url: "https://h/x.git" }),
      basic: { username: "a", password: "b" },
    });
    expect(planFetch({ url: "https://a:b@h/x.git", revision: "", auth: { username: "c", password: "d" } }).basic).toEqual({
      username: "c",
      password: "d",
    });
    expect(planFetch({ url: "https://h/x.git", revision: "", auth: SSH })).toEqual({ url: expect.objectContaining({ url: "https://h/x.git" }) });
  });

  it("shows a refused URL without user info", () => {
    const error = failure({ url: "ftp://user:pw-Secret@h/x.git" });
    expect(error.reason).toBe("InvalidSource");
    expect(error.message).not.toContain("pw-Secret");
    expect(failure({ url: "user:pw-Secret@h:x" }).message).not.toContain("pw-Secret");
  });
});

describe("gitFetchAuth", () => {
  it("hands the fetch the picked credential and where credentials were looked for", () => {
    expect(gitFetchAuth(undefined, "ns", undefined)).toEqual({ credentialsFrom: "ServiceAccount ns/default" });
    expect(gitFetchAuth(undefined, "ns", "")).toEqual({ credentialsFrom: "ServiceAccount ns/default" });
    expect(
      gitFetchAuth({ kind: "basic", urlPrefix: "https://h", secretName: "s", username: "u", password: "p" }, "ns", "pipeline"),
    ).toEqual({ auth: { username: "u", password: "p" }, credentialsFrom: "ServiceAccount ns/pipeline" });
    expect(
      gitFetchAuth({ kind: "ssh", urlPrefix: "h:2222", secretName: "key", privateKey: "K", knownHosts: "KH" }, "ns", "pipeline"),
    ).toEqual({
      auth: { kind: "ssh", secret: "ns/key", privateKey: "K", knownHosts: "KH" },
      credentialsFrom: "ServiceAccount ns/pipeline",
    });
  });
});
