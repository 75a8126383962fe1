// `npm run demo`: the seed article's multi-arch build, end to end on a local control plane.
// Brings the testenv up (building what is missing), runs the controller as its own process, creates a 2-VM pool
// and a CustomRun building linux/amd64 + linux/arm64 from a git repo, and shows the pushed index, the arm64 RUN
// output and the VM's scratch. Exits 0 only if all of that happened.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { down, readTestenv, up } from "./testenv/index.js";
import { readRecord, scratchedVMs, startedVMs } from "./kubevirt-sim/record.js";
import { Cluster, result, succeeded } from "../test/support/cluster.js";
import { startController } from "../test/support/controller.js";
import { startGitHttpServer } from "../test/support/git-http-server.js";
import { inspectRaw } from "../test/support/skopeo.js";
import { createContextRepo } from "../test/support/context-repo.js";

const say = (text: string) => process.stdout.write(`${text}\n`);
const step = (text: string) => say(`\n==> ${text}`);

async function main(): Promise<number> {
  const t0 = Date.now();
  const wasUp = readTestenv() !== undefined;
  step(wasUp ? "Using the running test environment" : "Bringing up the test environment (kube-apiserver, etcd, registry, KubeVirt stand-in)");
  const env = await up();
  const cluster = new Cluster(env);
  const scratchDir = await mkdtemp(join(tmpdir(), "vmbuild-demo-"));
  const git = await startGitHttpServer({ projectRoot: scratchDir });
  let controller: Awaited<ReturnType<typeof startController>> | undefined;
  try {
    step("Creating a git repository with a Containerfile that runs `uname -m`");
    const repoUrl = `${git.url}/hello.git`;
    await createContextRepo(scratchDir, "hello", {
      Dockerfile: `FROM ${env.baseImage}\nRUN uname -m\nRUN echo built > /built.txt\n`,
    });
    say(`    ${repoUrl}`);

    step("Starting the vmbuild controller (as its own identity, with deploy/rbac.yaml's permissions)");
    controller = await startController(env, { name: "demo-controller" });
    say(`    ready at ${controller.url}`);

    const ns = await cluster.namespace("demo");
    step(`Creating VirtualMachinePool ${ns}/builders with 2 VMs and a registry Secret`);
    await cluster.pool(ns, "builders", 2);

    const image = `${env.registry.host}/${ns}/hello:latest`;
    step(`Creating the CustomRun Tekton would create for taskRef {apiVersion: vmbuild.dev/v1alpha1, kind: VMBuild}`);
    await cluster.createRun(ns, "hello-build", {
      pool: "builders",
      gitUrl: repoUrl,
      image,
      platforms: "linux/amd64,linux/arm64",
      registrySecret: "registry",
      pullSecret: "registry",
      tlsVerify: "false",
    });
    const run = await cluster.waitForRun(ns, "hello-build", 600_000, (c) =>
      say(`    ${new Date().toISOString().slice(11, 19)}  ${c.reason}: ${c.message ?? ""}`),
    );
    const cond = succeeded(run);
    if (cond?.status !== "True") {
      say(`\nThe build did not succeed: ${cond?.reason}: ${cond?.message}`);
      return 1;
    }
    say(`    results: IMAGE_URL=${result(run, "IMAGE_URL")} IMAGE_DIGEST=${result(run, "IMAGE_DIGEST")}`);

    step(`skopeo inspect --raw docker://${image}`);
    const stdout = await inspectRaw(env, image);
    const index = JSON.parse(stdout) as { manifests?: { platform?: { architecture?: string } }[] };
    say(JSON.stringify(index, null, 2));
    const arches = (index.manifests ?? []).map((m) => m.platform?.architecture).sort();

    step("The build log: `RUN uname -m` printed x86_64 natively and aarch64 under qemu on the build VM");
    const logURL = result(run, "LOG_URL") ?? "";
    say(`    (from the LOG_URL result: ${logURL}, read with a token that may get the CustomRun)`);
    const log = await (await fetch(logURL, { headers: { authorization: `Bearer ${env.tokens.admin}` } })).text();
    for (const line of log.trimEnd().split("\n")) say(`    ${line}`);
    const sawAarch64 = log.split("\n").some((l) => l.trim() === "aarch64");

    step("The VM's lifecycle, as the KubeVirt stand-in recorded it");
    const record = readRecord(env.simStateDir).filter((e) => e.namespace === ns);
    for (const e of record) say(`    ${e.ts}  ${e.event.padEnd(14)} ${e.vm}${e.ip ? `  ${e.ip}` : ""}`);
    const started = startedVMs(record).length;
    const scratched = scratchedVMs(record).length;
    const leases = await cluster.leases(ns);

    const checks: [string, boolean][] = [
      ["index holds amd64 and arm64", arches.join(",") === "amd64,arm64"],
      ["IMAGE_DIGEST is the digest the registry serves", result(run, "IMAGE_DIGEST")?.startsWith("sha256:") === true],
      ["the arm64 RUN step printed aarch64", sawAarch64],
      ["every started VM was scratched", started > 0 && scratched === started],
      ["no lease is left", leases.length === 0],
    ];
    step(`Checks (${((Date.now() - t0) / 1000).toFixed(0)} s in all)`);
    for (const [what, ok] of checks) say(`    ${ok ? "ok  " : "FAIL"}  ${what}`);
    return checks.every(([, ok]) => ok) ? 0 : 1;
  } finally {
    await controller?.stop();
    await git.stop();
    await rm(scratchDir, { recursive: true, force: true });
    if (!wasUp) {
      step("Stopping the test environment (it was started by this demo)");
      await down();
    }
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  },
);
