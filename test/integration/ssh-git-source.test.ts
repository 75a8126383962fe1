import { execFile } from "node:child_process";
import { mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { V1Secret } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Testenv } from "../../hack/testenv/index.js";
import { Cluster, result, succeeded, type CustomRunObject } from "../support/cluster.js";
import { createContextRepo } from "../support/context-repo.js";
import { startController, type ControllerProcess } from "../support/controller.js";
import { openHarness, type Harness } from "../support/harness.js";
import { createSshKeys, startSshd, type SshKeys, type Sshd } from "../support/sshd.js";

// The Tekton way with ssh deploy keys: a kubernetes.io/ssh-auth Secret (ssh-privatekey, known_hosts) annotated
// tekton.dev/git-N and linked to the run's ServiceAccount, a git URL over ssh, served by a real OpenSSH sshd.

const exec = promisify(execFile);

describe("builds from ssh git URLs with a kubernetes.io/ssh-auth Secret", () => {
  let h: Harness;
  let env: Testenv;
  let cluster: Cluster;
  let controller: ControllerProcess;
  let keys: SshKeys;
  let sshd: Sshd;
  /** On port 22 of a loopback address of its own, for `user@host:path` (scp-like URLs have no port). */
  let sshd22: Sshd | undefined;
  let deployKey: string;
  let otherHostKey: string;
  let commit: string;
  let repoPath: string;
  /** The controller's TMPDIR, where the fetch writes the key for its duration. */
  let controllerTmp: string;
  let ns: string;
  const runs: CustomRunObject[] = [];

  beforeAll(async () => {
    h = await openHarness("ssh-git");
    ({ env, cluster } = h);
    commit = await createContextRepo(h.repos, "app", {
      Dockerfile: `FROM ${env.baseImage}\nCOPY hello.txt /hello.txt\nRUN echo "built over ssh"\n`,
      "hello.txt": "hello over ssh\n",
    });
    repoPath = join(h.repos, "app.git");
    keys = await createSshKeys();
    let deployPub: string;
    [deployKey, deployPub] = await keys.newKey("deploy-key");
    [, otherHostKey] = await keys.newKey("impostor-host");
    sshd = await startSshd({ keys, gitClients: [deployPub] });
    const host22 = `127.${1 + Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
    sshd22 = await startSshd({ keys, host: host22, port: 22, gitClients: [deployPub] }).catch((err: unknown) => {
      console.log(`no sshd on ${host22}:22, the scp-like run is skipped: ${String(err)}`);
      return undefined;
    });
    controllerTmp = join(env.stateDir, "ssh-git-tmp");
    await mkdir(controllerTmp, { recursive: true, mode: 0o700 });
    controller = await startController(env, { name: "ssh-git", extraEnv: { TMPDIR: controllerTmp } });
    ns = await cluster.namespace("ssh-git");
    await cluster.pool(ns, "builders", 2);
    const secret = (body: V1Secret) => cluster.core.createNamespacedSecret({ namespace: ns, body });
    const sshAuth = (name: string, annotations: Record<string, string>, knownHosts: string | undefined): V1Secret => ({
      metadata: { name, annotations },
      type: "kubernetes.io/ssh-auth",
      stringData: { "ssh-privatekey": deployKey, ...(knownHosts === undefined ? {} : { known_hosts: knownHosts }) },
    });
    const knownHosts = [`[${sshd.host}]:${sshd.port} ${sshd.hostKey}`, ...(sshd22 ? [`${sshd22.host} ${sshd22.hostKey}`] : [])];
    await secret(
      sshAuth(
        "deploy-key",
        { "tekton.dev/git-0": `${sshd.host}:${sshd.port}`, ...(sshd22 ? { "tekton.dev/git-1": sshd22.host } : {}) },
        `${knownHosts.join("\n")}\n`,
      ),
    );
    await secret(sshAuth("impostor", { "tekton.dev/git-0": `${sshd.host}:${sshd.port}` }, `[${sshd.host}]:${sshd.port} ${otherHostKey}\n`));
    await secret(sshAuth("no-known-hosts", { "tekton.dev/git-0": `${sshd.host}:${sshd.port}` }, undefined));
    const serviceAccount = (name: string, secrets: string[]) =>
      cluster.core.createNamespacedServiceAccount({
        namespace: ns,
        body: { metadata: { name }, secrets: secrets.map((s) => ({ name: s })) },
      });
    await serviceAccount("pipeline", ["deploy-key"]);
    await serviceAccount("impostor", ["impostor"]);
    await serviceAccount("no-known-hosts", ["no-known-hosts"]);
    await serviceAccount("no-ssh", []);
  });

  afterAll(async () => {
    await controller?.stop();
    await sshd22?.stop();
    await sshd?.stop();
    await keys?.remove();
    await h?.close();
  });

  const sshUrl = (): string => `ssh://${sshd.username}@${sshd.host}:${sshd.port}${repoPath}`;
  const params = (name: string, gitUrl: string) => ({
    pool: "builders",
    gitUrl,
    image: `${env.registry.host}/${ns}/${name}:1`,
    registrySecret: "registry",
    pullSecret: "registry",
    tlsVerify: "false",
  });
  const runTo = async (name: string, gitUrl: string, serviceAccountName: string): Promise<CustomRunObject> => {
    await cluster.createRun(ns, name, params(name, gitUrl), { serviceAccountName });
    const run = await cluster.waitForRun(ns, name, 300_000);
    runs.push(run);
    return run;
  };

  it("builds from an ssh:// URL: Succeeded, CHAINS-GIT_COMMIT the repository's commit", async () => {
    const run = await runTo("ssh-url", sshUrl(), "pipeline");
    expect(succeeded(run)?.reason, succeeded(run)?.message).toBe("Succeeded");
    expect(result(run, "CHAINS-GIT_COMMIT")).toBe(commit);
    expect(result(run, "IMAGE_DIGEST")).toMatch(/^sha256:[a-f0-9]{64}$/);
  });

  it("builds from a user@host:path URL (port 22)", async (ctx) => {
    if (sshd22 === undefined) ctx.skip();
    const s = sshd22 as Sshd;
    const run = await runTo("scp-url", `${s.username}@${s.host}:${repoPath}`, "pipeline");
    expect(succeeded(run)?.reason, succeeded(run)?.message).toBe("Succeeded");
    expect(result(run, "CHAINS-GIT_COMMIT")).toBe(commit);
  });

  it("fails SourceFailed when the host key does not match the Secret's known_hosts, and the VM is scratched", async () => {
    const run = await runTo("impostor", sshUrl(), "impostor");
    const c = succeeded(run);
    expect(c).toMatchObject({ status: "False", reason: "SourceFailed" });
    expect(c?.message).toContain(`the host key of [${sshd.host}]:${sshd.port} did not match the known_hosts of Secret ${ns}/impostor`);
    expect(c?.message).toMatch(/Host key for .* has changed/);
    await h.everyVMScratched(ns);
  });

  it("fails SourceFailed naming the Secret without known_hosts, and the ServiceAccount without an ssh Secret", async () => {
    const missing = succeeded(await runTo("no-known-hosts", sshUrl(), "no-known-hosts"));
    expect(missing).toMatchObject({ status: "False", reason: "SourceFailed" });
    expect(missing?.message).toContain(`Secret ${ns}/no-known-hosts has no known_hosts key`);
    const none = succeeded(await runTo("no-ssh", sshUrl(), "no-ssh"));
    expect(none).toMatchObject({ status: "False", reason: "SourceFailed" });
    expect(none?.message).toContain(
      `no kubernetes.io/ssh-auth Secret with a tekton.dev/git-N annotation matching host ${sshd.host} is linked to ServiceAccount ${ns}/no-ssh`,
    );
    await h.everyVMScratched(ns);
  });

  it("refuses an ssh URL with a password as InvalidParams, before any VM is leased", async () => {
    const before = h.vmisCreated(ns);
    const run = await runTo("password-url", `ssh://git:hunter2-pw@${sshd.host}:${sshd.port}${repoPath}`, "pipeline");
    expect(succeeded(run)).toMatchObject({ status: "False", reason: "InvalidParams" });
    expect(succeeded(run)?.message).toMatch(/an ssh:\/\/ URL carries no password/);
    expect(succeeded(run)?.message).not.toContain("hunter2-pw");
    expect(h.vmisCreated(ns)).toBe(before);
  });

  it("leaves no key material on the controller's disk, and none in statuses or logs", async () => {
    await h.everyVMScratched(ns);
    // (tsx keeps its cache there too.)
    expect((await readdir(controllerTmp)).filter((entry) => entry.startsWith("vmbuild-"))).toEqual([]);
    const keyLines = deployKey.split("\n").filter((line) => line.length >= 20 && !line.startsWith("-----"));
    expect(keyLines.length).toBeGreaterThan(0);
    const workDir = join(env.stateDir, "ssh-git");
    const filesWithKey = await exec("grep", ["-rlaF", ...keyLines.flatMap((l) => ["-e", l]), workDir, controllerTmp]).then(
      (r) => r.stdout.split("\n").filter(Boolean),
      () => [],
    );
    expect(filesWithKey).toEqual([]);
    const statuses = JSON.stringify(runs.map((r) => r.status));
    for (const line of keyLines) expect(statuses).not.toContain(line);
  });
});
