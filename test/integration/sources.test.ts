import { execFile } from "node:child_process";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import type { V1Secret } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registryDockerConfigJson, type Testenv } from "../../hack/testenv/index.js";
import { readRecord } from "../../hack/kubevirt-sim/record.js";
import { Cluster, result, succeeded, type CustomRunObject } from "../support/cluster.js";
import { startController, type ControllerProcess } from "../support/controller.js";
import type { GitHttpServer } from "../support/git-http-server.js";
import { openHarness, type Harness } from "../support/harness.js";
import { waitUntil } from "../support/processes.js";

// The article's users' setup, unchanged: a private git repo, a private registry, secrets linked to the pipeline
// ServiceAccount with Tekton's annotations, a dockerconfig workspace. And the promise that no secret leaks.

const exec = promisify(execFile);
const GIT_USER = "builder";
const GIT_PASSWORD = `gitpw-${Math.random().toString(36).slice(2)}-distinctive`;

interface Repo {
  main: string;
  tagged: string;
  feature: string;
}

const SLOW = "sleep 10";

/** A repo with main (latest), tag v1 (first commit) and branch feature, each saying which it is; plus a big ignored file. */
async function createRepo(root: string, baseImage: string): Promise<Repo> {
  const work = join(root, "app-work");
  const env = {
    ...process.env,
    GIT_AUTHOR_NAME: "t",
    GIT_AUTHOR_EMAIL: "t@vmbuild.invalid",
    GIT_COMMITTER_NAME: "t",
    GIT_COMMITTER_EMAIL: "t@vmbuild.invalid",
  };
  const git = async (...args: string[]) => (await exec("git", args, { cwd: work, env })).stdout.trim();
  const commit = async (which: string, extraStep = "true") => {
    await writeFile(
      join(work, "Dockerfile"),
      `FROM ${baseImage}\nCOPY . /ctx\nRUN ls /ctx && echo "built from ${which}"\nRUN ${extraStep}\n`,
    );
    await git("add", "--all");
    await git("commit", "--quiet", "-m", which);
    return git("rev-parse", "HEAD");
  };
  await mkdir(work, { recursive: true });
  await git("init", "--quiet", "--initial-branch=main");
  // 64 MiB the context must never carry: .dockerignore excludes it, and the controller's limit is 16 MiB.
  await writeFile(join(work, "big.bin"), Buffer.alloc(64 * 1024 * 1024, 7));
  await writeFile(join(work, ".dockerignore"), "big.bin\n");
  await writeFile(join(work, "hello.txt"), "hello\n");
  const tagged = await commit("v1");
  await git("tag", "v1");
  await git("checkout", "--quiet", "-b", "feature");
  const feature = await commit("feature");
  await git("checkout", "--quiet", "-b", "slow", "main");
  await commit("slow", SLOW);
  await git("checkout", "--quiet", "main");
  const main = await commit("main");
  await exec("git", ["clone", "--quiet", "--bare", work, join(root, "app.git")], { env });
  return { main, tagged, feature };
}

describe("sources, credentials and logs the Tekton way", () => {
  let h: Harness;
  let env: Testenv;
  let cluster: Cluster;
  let controller: ControllerProcess;
  let git: GitHttpServer;
  let repo: Repo;
  let ns: string;
  const runs: CustomRunObject[] = [];

  beforeAll(async () => {
    h = await openHarness("sources", { gitAuth: { username: GIT_USER, password: GIT_PASSWORD } });
    ({ env, cluster, git } = h);
    repo = await createRepo(h.repos, env.baseImage);
    controller = await startController(env, {
      name: "sources",
      extraEnv: { VMBUILD_MAX_CONTEXT_BYTES: String(16 * 1024 * 1024) },
    });
    ns = await cluster.namespace("sources");
    await cluster.pool(ns, "builders", 2);
    // As the article sets them up: a registry secret annotated tekton.dev/docker-0, a git basic-auth secret
    // annotated tekton.dev/git-0, both linked to the pipeline ServiceAccount.
    const secret = (body: V1Secret) => cluster.core.createNamespacedSecret({ namespace: ns, body });
    await secret({
      metadata: { name: "multi-arch", annotations: { "tekton.dev/docker-0": `http://${env.registry.host}` } },
      type: "kubernetes.io/dockerconfigjson",
      data: { ".dockerconfigjson": Buffer.from(registryDockerConfigJson(env)).toString("base64") },
    });
    await secret({
      metadata: { name: "github", annotations: { "tekton.dev/git-0": git.url } },
      type: "kubernetes.io/basic-auth",
      stringData: { username: GIT_USER, password: GIT_PASSWORD },
    });
    await cluster.core.createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name: "pipeline" }, secrets: [{ name: "multi-arch" }, { name: "github" }] },
    });
  });

  afterAll(async () => {
    await controller?.stop();
    await h?.close();
  });

  // The base image is behind the test registry's login: every build pulls with the namespace's registry Secret.
  // The push login comes from where each test says (the ServiceAccount, the workspace, a registrySecret).
  const params = (image: string, extra: Record<string, string> = {}) => ({
    pool: "builders",
    gitUrl: `${git.url}/app.git`,
    image: `${env.registry.host}/${ns}/${image}:1`,
    pullSecret: "registry",
    tlsVerify: "false",
    ...extra,
  });

  it.each([
    ["branch", "feature", "feature"],
    ["tag", "v1", "v1"],
    ["commit", "", "main"],
  ])("builds a private repo at a %s with the ServiceAccount's secrets, ignoring what .dockerignore excludes", async (kind, revision, which) => {
    const name = `rev-${kind}`;
    const rev = kind === "commit" ? repo.main : revision;
    await cluster.createRun(ns, name, params(name, { gitRevision: rev }), { serviceAccountName: "pipeline" });
    const run = await cluster.waitForRun(ns, name, 300_000);
    runs.push(run);
    expect(succeeded(run)?.reason, succeeded(run)?.message).toBe("Succeeded");
    const expected = { branch: repo.feature, tag: repo.tagged, commit: repo.main }[kind];
    expect(result(run, "CHAINS-GIT_COMMIT")).toBe(expected);
    expect(result(run, "CHAINS-GIT_URL")).toBe(`${git.url}/app.git`);
    expect(result(run, "PLATFORM_DIGESTS")).toMatch(/^linux\/amd64=sha256:[a-f0-9]{64}$/);
    expect(result(run, "BUILD_VM")).toMatch(new RegExp(`^${ns}/builders-[01]$`));
    const logURL = result(run, "LOG_URL") ?? "";
    expect(logURL).toBe(`${controller.url}/logs/${ns}/${name}/0`);
    const log = await (await fetch(logURL, { headers: { authorization: `Bearer ${env.tokens.admin}` } })).text();
    expect(log).toContain(`built from ${which}`);
    expect(log).toContain("hello.txt");
    expect(log).not.toContain("big.bin");
  });

  it("takes registry credentials from a dockerconfig workspace bound to a Secret, as the article's Task does", async () => {
    await cluster.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: "git-only" }, secrets: [{ name: "github" }] } });
    await cluster.createRun(ns, "workspace", params("workspace"), {
      serviceAccountName: "git-only",
      workspaces: [{ name: "dockerconfig", secret: { secretName: "multi-arch" } }],
    });
    const run = await cluster.waitForRun(ns, "workspace", 300_000);
    runs.push(run);
    expect(succeeded(run)?.reason, succeeded(run)?.message).toBe("Succeeded");
  });

  it.each([
    ["a wrong registry password", "bad-registry", {}, /unauthorized|authentication required/i],
    ["an unknown repository", "bad-repo", { gitUrl: "missing.git" }, /not found/i],
    ["an unknown revision", "bad-rev", { gitRevision: "no-such-branch" }, /revision|couldn't find|not found/i],
  ])("%s fails with its own clear message and the VM is scratched", async (_what, name, extra: Record<string, string>, message) => {
    if (name === "bad-registry") {
      await cluster.core.createNamespacedSecret({
        namespace: ns,
        body: {
          metadata: { name: "wrong-registry" },
          type: "kubernetes.io/dockerconfigjson",
          stringData: {
            ".dockerconfigjson": JSON.stringify({ auths: { [env.registry.host]: { username: env.registry.username, password: "wrong" } } }),
          },
        },
      });
    }
    const p = params(name, name === "bad-registry" ? { registrySecret: "wrong-registry", pullSecret: "wrong-registry" } : {});
    if (extra.gitUrl) p.gitUrl = `${git.url}/${extra.gitUrl}`;
    if (extra.gitRevision) Object.assign(p, { gitRevision: extra.gitRevision });
    await cluster.createRun(ns, name, p, { serviceAccountName: "pipeline" });
    const run = await cluster.waitForRun(ns, name, 300_000);
    runs.push(run);
    const c = succeeded(run);
    expect(c?.status).toBe("False");
    expect(c?.reason).toBe(name === "bad-registry" ? "BuildFailed" : "SourceFailed");
    expect(c?.message).toMatch(message);
    expect(c?.message).toContain(`Full log: ${controller.url}/logs/${ns}/${name}/0`);
  });

  it("serves logs only to callers who may get the CustomRun: 200 with get, 403 without, 401 with no token", async () => {
    const url = `${controller.url}/logs/${ns}/rev-branch`;
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: "Bearer not-a-token" } })).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: `Bearer ${env.tokens.nobody}` } })).status).toBe(403);
    const ok = await fetch(url, { headers: { authorization: `Bearer ${env.tokens.admin}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("built from feature");
  });

  it("streams a running build's log, then scratches; no secret in logs, events, status, results or the web view, and on the VM's disk only podman's temporary auth file", async () => {
    // Each secret as itself and as the base64 user:password that Basic auth and docker configs carry.
    const secrets = [
      env.registry.password,
      GIT_PASSWORD,
      Buffer.from(`${env.registry.username}:${env.registry.password}`).toString("base64"),
      Buffer.from(`${GIT_USER}:${GIT_PASSWORD}`).toString("base64"),
    ];
    const admin = { headers: { authorization: `Bearer ${env.tokens.admin}` } };
    const view = async (path: string) => {
      const res = await fetch(`${controller.url}${path}`, admin);
      expect(res.status, path).toBe(200);
      return res.text();
    };
    await cluster.createRun(ns, "live", params("live", { gitRevision: "slow" }), { serviceAccountName: "pipeline" });
    let building: CustomRunObject | undefined;
    await waitUntil(
      async () => {
        building = await cluster.getRun(ns, "live");
        return succeeded(building)?.message?.includes(SLOW) === true;
      },
      120_000,
      () => `the build never reached its slow step: ${JSON.stringify(building?.status?.conditions)}`,
    );
    const res = await fetch(`${controller.url}/logs/${ns}/live`, admin);
    expect(res.status).toBe(200);
    // While it builds: the web view's state (the live step, the VM, the lease) and the VM's podman storage.
    const liveState = await view("/api/state");
    expect(liveState).toContain(`"namespace":"${ns}","name":"live"`);
    const record = readRecord(env.simStateDir).filter((e) => e.namespace === ns && e.event === "podman-started");
    const disk = record.at(-1)?.storageDir;
    if (!disk) throw new Error("no VM disk recorded");
    const files = (await exec("find", [disk, "-type", "f"])).stdout.split("\n").filter(Boolean);
    expect(files.length).toBeGreaterThan(10);
    const filesWith = async (forms: string[]) =>
      exec("grep", ["-rlaF", ...forms.flatMap((f) => ["-e", f]), disk]).then(
        (r) => r.stdout.split("\n").filter(Boolean),
        () => [],
      );
    // Git credentials never reach the VM, in any form.
    expect(await filesWith([secrets[1] ?? "", secrets[3] ?? ""])).toEqual([]);
    // The registry login, here the pullSecret's (the test registry has one login, the push login too): podman's
    // libpod API writes the X-Registry-Config it receives to a temporary auth file in its tmpdir for the build's
    // duration (as base64 user:password). That file is the only place, on a disk the scratch throws away
    // (SECURITY.md).
    const registryOnDisk = await filesWith([secrets[0] ?? "", secrets[2] ?? ""]);
    expect(registryOnDisk.filter((f) => !/\/tmp\/auth\.json\.\d+$/.test(f))).toEqual([]);
    const streamed = await res.text();
    expect(streamed).toContain(`RUN ${SLOW}`);
    expect(streamed).toContain("pushed ");
    const run = await cluster.waitForRun(ns, "live", 300_000);
    runs.push(run);

    const events = await cluster.core.listNamespacedEvent({ namespace: ns });
    const logDir = join(controller.logDir, ns);
    const logFiles = await readdir(logDir, { recursive: true });
    const logs = await Promise.all(
      logFiles.filter((f) => f.endsWith(".log")).map((f) => readFile(join(logDir, f), "utf8")),
    );
    const results = runs.flatMap((r) => r.status?.results ?? []);
    expect(results.length).toBeGreaterThan(runs.length);
    const haystacks: [string, string][] = [
      ["controller output", await readFile(controller.outputPath, "utf8")],
      ["events", JSON.stringify(events.items)],
      ["run status", JSON.stringify(runs.map((r) => r.status))],
      ["results", JSON.stringify(results)],
      ["build logs", logs.join("\n")],
      ["web view page", await view("/")],
      ["web view state while building", liveState],
      ["web view state after", await view("/api/state")],
      ["metrics", await (await fetch(`${controller.metricsURL}/metrics`)).text()],
    ];
    const found = haystacks.flatMap(([where, text]) =>
      secrets.flatMap((secret, i) => {
        const n = text.split(secret).length - 1;
        return n > 0 ? [{ where, secret: i, n }] : [];
      }),
    );
    console.log(
      `secret scan: ${haystacks.length + 1} places (${haystacks.map(([w]) => w).join(", ")}, VM disk: ${files.length} files), ` +
        `${secrets.length} secret forms, ${found.reduce((sum, f) => sum + f.n, 0)} occurrences; ` +
        `on the VM's disk during the build: ${registryOnDisk.length} podman temporary auth file(s) with the registry login`,
    );
    expect(found).toEqual([]);
    await h.everyVMScratched(ns);
  });
});
