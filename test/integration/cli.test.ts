import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { RbacAuthorizationV1Api } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import type { Testenv } from "../../hack/testenv/index.js";
import { vmbuildLogName } from "../../src/api/vmbuild-log.js";
import { Cluster, result, succeeded } from "../support/cluster.js";
import { createContextRepo } from "../support/context-repo.js";
import { startController, type ControllerProcess } from "../support/controller.js";
import { openHarness, type Harness } from "../support/harness.js";
import { waitUntil } from "../support/processes.js";

// Issue #17 item 3: `kubectl vmbuild` reads runs, their stored logs and the pools with the user's own kubeconfig,
// and RBAC decides. alice authenticates with a client certificate of the testenv's client CA and is bound in the
// test's namespace to the shipped ClusterRoles (deploy/rbac-users.yaml); vmbuild-test-nobody, a token user, is
// bound to nothing there. The CLI runs as a child process from src/ under tsx, as kubectl would run the bin.

const ROOT = new URL("../..", import.meta.url).pathname;
const LOGS = { group: "vmbuild.dev", version: "v1alpha1", plural: "vmbuildlogs" };

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Each stdout chunk with when it came, to tell a followed log from one printed at the end. */
  chunks: { at: number; text: string }[];
}

/** Runs `kubectl vmbuild ARGS` with KUBECONFIG=kubeconfig; `onStdout` sees the output as it grows. */
function cli(kubeconfig: string, args: string[], onStdout?: (all: string) => void, timeoutMs = 120_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "src/cli/main.ts"), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, KUBECONFIG: kubeconfig },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: CliRun = { code: null, stdout: "", stderr: "", chunks: [] };
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`kubectl vmbuild ${args.join(" ")} ran over ${timeoutMs} ms: ${out.stdout}${out.stderr}`));
    }, timeoutMs);
    child.stdout.on("data", (chunk: Buffer) => {
      out.stdout += chunk.toString("utf8");
      out.chunks.push({ at: Date.now(), text: chunk.toString("utf8") });
      onStdout?.(out.stdout);
    });
    child.stderr.on("data", (chunk: Buffer) => (out.stderr += chunk.toString("utf8")));
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ ...out, code });
    });
  });
}

describe("kubectl vmbuild, with the user's own credentials", () => {
  let h: Harness;
  let env: Testenv;
  let cluster: Cluster;
  let controller: ControllerProcess;
  let ns: string;
  let alice: string;
  /** When the followed build's last marker line was printed by `logs -f`, and when the run finished. */
  let followed: CliRun;

  const params = (repo: string) => ({
    pool: "builders",
    gitUrl: `${h.git.url}/${repo}.git`,
    image: `${env.registry.host}/${ns}/${repo}:1`,
    registrySecret: "registry",
    pullSecret: "registry",
    tlsVerify: "false",
  });

  beforeAll(async () => {
    h = await openHarness("cli");
    ({ env, cluster } = h);
    await createContextRepo(h.repos, "slow", {
      // Marker lines computed by the shell, so the step's own line (which quotes the command) does not hold them.
      Dockerfile: `FROM ${env.baseImage}\nRUN echo cli-first-$((1+2)) && sleep 20 && echo cli-last-$((6*7))\n`,
    });
    await createContextRepo(h.repos, "quick", { Dockerfile: `FROM ${env.baseImage}\nRUN echo quick-$((2+2))\n` });
    ns = await cluster.namespace("cli");
    await cluster.pool(ns, "builders", 1);
    const rbac = cluster.kc.makeApiClient(RbacAuthorizationV1Api);
    for (const role of ["vmbuild-view", "vmbuild-pools-view"]) {
      await rbac.createNamespacedRoleBinding({
        namespace: ns,
        body: {
          metadata: { name: `alice-${role}` },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
          subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: env.users.cert }],
        },
      });
    }
    // alice's kubeconfig with the test's namespace as its context's: the CLI's default namespace.
    const kubeconfig = parse(await readFile(env.certKubeconfig, "utf8")) as { contexts: { context: { namespace: string } }[] };
    for (const c of kubeconfig.contexts) c.context.namespace = ns;
    alice = join(env.stateDir, "cli-alice.kubeconfig");
    await writeFile(alice, stringify(kubeconfig), { mode: 0o600 });
    // Synced every second, so a live copy exists while the 20 s step sleeps: long enough for the CLI calls below,
    // each a process of its own, on a loaded machine.
    controller = await startController(env, { name: "cli-test", extraEnv: { VMBUILD_LOG_SYNC_SECONDS: "1" } });
  });

  afterAll(async () => {
    await controller?.stop();
    await h?.close();
  });

  it("as the client-certificate user: logs -f follows a live build until it completes; meanwhile describe shows the queue and pools the lease", async () => {
    await cluster.createRun(ns, "slow", params("slow"));
    let firstAt = 0;
    // Started before the log exists: -f waits for it.
    const following = cli(alice, ["logs", "slow", "-f"], (all) => {
      if (firstAt === 0 && /^cli-first-3$/m.test(all)) firstAt = Date.now();
    });
    await waitUntil(async () => firstAt > 0, 90_000, () => "logs -f never printed the first marker line");
    // Printed while the build still runs.
    expect(succeeded(await cluster.getRun(ns, "slow"))?.status ?? "Unknown").toBe("Unknown");

    // The one VM is leased: a second run waits for it.
    await cluster.createRun(ns, "queued", params("quick"));
    await waitUntil(
      async () => (await cluster.getRun(ns, "queued")).status?.extraFields?.["phase"] === "Queued",
      30_000,
      () => "the second run never queued",
    );
    const queued = await cli(alice, ["describe", "queued", "-n", ns]);
    expect(queued.code, queued.stderr).toBe(0);
    expect(queued.stdout).toMatch(/^Phase: +Queued$/m);
    expect(queued.stdout).toMatch(/^Status: +Unknown \(WaitingForVM\)$/m);
    // alice may not list runs cluster-wide: the position counts her namespace's and says so.
    expect(queued.stdout).toContain(`Queue:       ${ns}/builders: position 1 of 1, next in line (counting the runs of ${ns} only`);
    expect(queued.stdout).toMatch(/^Timeline:\n {2}\S+ {2}created\n {2}\S+ {2}(started|queued)/m);

    const noLog = await cli(alice, ["logs", "queued"]);
    expect(noLog.code).toBe(1);
    expect(noLog.stderr).toMatch(new RegExp(`^no log yet for ${ns}/queued`));

    const pools = await cli(alice, ["pools"]);
    expect(pools.code, pools.stderr).toBe(0);
    expect(pools.stdout).toMatch(/^POOL +VMS +FREE +LEASED +WARM +QUEUED\nbuilders +1 +0 +1 +0 +1$/m);
    expect(pools.stdout).toMatch(new RegExp(`^ {2}builders-0 +\\w+ +${ns}/slow \\(attempt 0, \\w+\\)$`, "m"));
    expect(pools.stdout).toContain(`queued 1: ${ns}/queued`);

    followed = await following;
    expect(followed.code, followed.stderr).toBe(0);
    // Each line once, in order, the last one printed after the first (followed, not printed at the end).
    expect(followed.stdout.match(/^cli-first-3$/gm)).toHaveLength(1);
    expect(followed.stdout.match(/^cli-last-42$/gm)).toHaveLength(1);
    expect(followed.stdout).toMatch(/^cli-first-3\n[\s\S]*^cli-last-42\n[\s\S]*^pushed /m);
    const lastAt = followed.chunks.find((c) => /^cli-last-42$/m.test(c.text))?.at ?? 0;
    expect(lastAt - firstAt).toBeGreaterThan(4000);
  });

  it("as the client-certificate user: logs of the finished run print its stored log whole, and describe its outcome", async () => {
    const done = await cluster.waitForRun(ns, "slow", 120_000);
    expect(succeeded(done)?.reason, succeeded(done)?.message).toBe("Succeeded");
    const stored = (await cluster.custom.getNamespacedCustomObject({
      ...LOGS,
      namespace: ns,
      name: vmbuildLogName(done.metadata?.uid ?? "", 0),
    })) as { text: string; complete: boolean };
    expect(stored.complete).toBe(true);

    const logs = await cli(alice, ["logs", "slow"]);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toBe(stored.text);
    expect(followed.stdout).toBe(stored.text);

    const described = await cli(alice, ["describe", "slow", "-n", ns, "--kubeconfig", alice]);
    expect(described.code, described.stderr).toBe(0);
    expect(described.stdout).toMatch(/^Status: +True \(Succeeded\)$/m);
    expect(described.stdout).toMatch(/^Phase: +Done$/m);
    expect(described.stdout).toMatch(/^Attempt: +0$/m);
    expect(described.stdout).toMatch(new RegExp(`^ {2}linux/amd64 +pool ${ns}/builders +vm builders-0 +lease ${ns}/vmbuild-vm-builders-0$`, "m"));
    expect(described.stdout).toMatch(/^Owner: +\S+$/m);
    expect(described.stdout).toMatch(new RegExp(`^ {2}IMAGE_DIGEST +${result(done, "IMAGE_DIGEST")}$`, "m"));
    const timeline = described.stdout.split("Timeline:\n")[1]?.split(/\n(?! )/)[0] ?? "";
    expect(timeline.split("\n").map((l) => l.trim().split("  ")[1])).toEqual([
      "created",
      expect.stringMatching(/^(started|queued)/),
      expect.stringMatching(/^(started|queued)/),
      "leased its VM",
      "Done since",
      "completed",
    ]);

    await cluster.waitForRun(ns, "queued", 120_000);
    await h.everyVMScratched(ns);
  });

  it("a token user without any right in the namespace is refused, Forbidden, exit 1; a missing run is NotFound", async () => {
    for (const args of [["logs", "slow"], ["logs", "slow", "-f"], ["describe", "slow"]]) {
      const refused = await cli(env.nobodyKubeconfig, [...args, "-n", ns]);
      expect(refused.code, args.join(" ")).toBe(1);
      expect(refused.stdout).toBe("");
      expect(refused.stderr).toBe(
        `Error from server (Forbidden): customruns.tekton.dev "slow" is forbidden: User "${env.users.nobody}" cannot get resource "customruns" in API group "tekton.dev" in the namespace "${ns}"\n`,
      );
    }
    const pools = await cli(env.nobodyKubeconfig, ["pools", "-n", ns]);
    expect(pools.code).toBe(1);
    expect(pools.stderr).toMatch(/^Error from server \(Forbidden\): virtualmachinepools\.pool\.kubevirt\.io is forbidden: User "vmbuild-test-nobody" cannot list/);

    const missing = await cli(alice, ["logs", "no-such-run"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`Error from server (NotFound): customruns.tekton.dev "no-such-run" not found\n`);
  });

  it("a user who may read runs but not their logs is refused the log, the VMBuildLog named", async () => {
    const rbac = cluster.kc.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: ns,
      body: { metadata: { name: "runs-only" }, rules: [{ apiGroups: ["tekton.dev"], resources: ["customruns"], verbs: ["get"] }] },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: "nobody-runs-only" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "runs-only" },
        subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: env.users.nobody }],
      },
    });
    const uid = (await cluster.getRun(ns, "slow")).metadata?.uid ?? "";
    let refused: CliRun | undefined;
    // RBAC takes a moment to see a new binding.
    await waitUntil(
      async () => {
        refused = await cli(env.nobodyKubeconfig, ["logs", "slow", "-n", ns]);
        return refused.stderr.includes("vmbuildlogs");
      },
      20_000,
      () => `never refused the log itself: ${refused?.stderr}`,
    );
    expect(refused?.code).toBe(1);
    expect(refused?.stderr).toBe(
      `Error from server (Forbidden): vmbuildlogs.vmbuild.dev "${vmbuildLogName(uid, 0)}" is forbidden: User "${env.users.nobody}" cannot get resource "vmbuildlogs" in API group "vmbuild.dev" in the namespace "${ns}"\n`,
    );
  });
});
