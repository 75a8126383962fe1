// The controller image, built by vmbuild itself and then run: issue #17's "the image, built and started here".
import { execFile } from "node:child_process";
import { copyFile, mkdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import type { Testenv } from "../../hack/testenv/index.js";
import { ensureNodeImage } from "../../hack/testenv/node-image.js";
import { Cluster, result, succeeded } from "../support/cluster.js";
import { createContextRepo } from "../support/context-repo.js";
import { startController, type ControllerProcess } from "../support/controller.js";
import { openHarness, type Harness } from "../support/harness.js";
import { runImageAsPod, type ImagePod, type PodTemplate } from "../support/image-pod.js";
import { startNpmMirror, type NpmMirror } from "../support/npm-mirror.js";
import { freePort } from "../support/ports.js";
import { waitUntil } from "../support/processes.js";
import { inspectConfig, inspectRaw } from "../support/skopeo.js";

const exec = promisify(execFile);
const ROOT = new URL("../..", import.meta.url).pathname;

interface Index {
  manifests: { digest: string; platform: { architecture: string; os: string } }[];
}

/** The repository as it is checked out (tracked files and new ones git does not ignore), as a context repo. */
async function copyCheckout(workTree: string): Promise<void> {
  const { stdout } = await exec("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: ROOT });
  for (const file of stdout.split("\0").filter(Boolean)) {
    await mkdir(dirname(join(workTree, file)), { recursive: true });
    // A file deleted in the checkout but not yet from the index is left out, as a build of the work tree would.
    await copyFile(join(ROOT, file), join(workTree, file)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    });
  }
}

async function deploymentTemplate(): Promise<PodTemplate> {
  const docs = parseAllDocuments(await readFile(join(ROOT, "deploy/controller.yaml"), "utf8")).map((d) => d.toJS() as { kind?: string; spec?: { template?: PodTemplate } });
  const template = docs.find((d) => d.kind === "Deployment")?.spec?.template;
  if (!template) throw new Error("deploy/controller.yaml has no Deployment");
  return template;
}

describe("the controller image, built by vmbuild for amd64 and arm64 and started from its root filesystem", () => {
  let h: Harness;
  let env: Testenv;
  let cluster: Cluster;
  let mirror: NpmMirror;
  let builder: ControllerProcess | undefined;
  let pod: ImagePod | undefined;
  let ns: string;
  let image: string;
  /** Set once the first test has pushed the image the second one runs. */
  let imagePushed = false;

  beforeAll(async () => {
    h = await openHarness("controller-image");
    ({ env, cluster } = h);
    mirror = await startNpmMirror({ lockfile: join(ROOT, "package-lock.json"), host: env.network.gateway });
    builder = await startController(env, { name: "controller-image-builder" });
    ns = await cluster.namespace("ctrl-image");
    await cluster.pool(ns, "builders", 1);
    image = `${env.registry.host}/${ns}/vmbuild-controller:test`;
  });

  afterAll(async () => {
    await builder?.stop();
    await pod?.proc.stop(30_000);
    await pod?.remove();
    await mirror?.stop();
    await h?.close();
  });

  // The first time on a machine, the Node base is assembled (Debian packages and Node downloaded into the cache).
  it("builds this repository's Dockerfile for linux/amd64 and linux/arm64 and pushes one index", { timeout: 1_200_000 }, async () => {
    const nodeImage = await ensureNodeImage(env.registry);
    const commit = await createContextRepo(h.repos, "vmbuild", {}, copyCheckout);
    await cluster.createRun(ns, "image", {
      pool: "builders",
      gitUrl: `${h.git.url}/vmbuild.git`,
      image,
      platforms: ["linux/amd64", "linux/arm64"],
      buildArgs: [`NODE_IMAGE=${nodeImage}`, `NPM_CONFIG_REGISTRY=${mirror.url}`],
      registrySecret: "registry",
      pullSecret: "registry",
      tlsVerify: "false",
    });
    const run = await cluster.waitForRun(ns, "image", 1_000_000);
    expect(succeeded(run), JSON.stringify(run.status)).toMatchObject({ status: "True", reason: "Succeeded" });
    expect(result(run, "CHAINS-GIT_COMMIT")).toBe(commit);
    // npm ci on the build VM took the lockfile's packages from the mirror, not from a registry it cannot reach.
    const lock = JSON.parse(await readFile(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { version: string }> };
    expect(mirror.served()).toContain(`esbuild@${lock.packages["node_modules/esbuild"]?.version}`);

    const index = JSON.parse(await inspectRaw(env, image)) as Index;
    expect(index.manifests.map((m) => `${m.platform.os}/${m.platform.architecture}`).sort()).toEqual(["linux/amd64", "linux/arm64"]);
    for (const m of index.manifests) {
      const config = JSON.parse(await inspectConfig(env, `${image.replace(/:[^:/]+$/, "")}@${m.digest}`)) as { architecture: string; config: { User?: string; Entrypoint?: string[] } };
      expect(config.architecture).toBe(m.platform.architecture);
      expect(config.config.User).toBe("65532:65532");
      expect(config.config.Entrypoint?.at(-1)).toBe("dist/main.js");
    }
    await h.everyVMScratched(ns);
    imagePushed = true;
  });

  it("runs its ENTRYPOINT non-root on a read-only root, configured in-cluster, and a build succeeds through it", { timeout: 600_000 }, async () => {
    if (!imagePushed) throw new Error("the image was not built: see the test before this one");
    await builder?.stop();
    builder = undefined;
    const port = await freePort("127.0.0.1");
    const metricsPort = await freePort("127.0.0.1");
    pod = await runImageAsPod({
      env,
      cluster,
      image,
      arch: "amd64",
      template: await deploymentTemplate(),
      namespace: "vmbuild-system",
      podName: "vmbuild-controller-image-test",
      // The pod's network is the host's here: ports of its own, so no other listener on 8080 (Tekton's) is hit.
      envOverrides: { VMBUILD_HTTP_PORT: String(port), VMBUILD_METRICS_PORT: String(metricsPort), VMBUILD_DRAIN_SECONDS: "10" },
      outputFile: join(env.stateDir, `controller-image-${Date.now()}.out`),
    });
    const proc = pod.proc;
    await waitUntil(
      async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok,
      90_000,
      () => `the image's controller is not ready; output:\n${proc.output().slice(-4000)}`,
    );

    // As the Deployment says: user 65532, and a root filesystem it cannot write.
    const status = await readFile(`/proc/${proc.pid}/status`, "utf8");
    expect(status).toMatch(/^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
    expect(status).toMatch(/^Gid:\s+65532\s+65532\s+65532\s+65532$/m);
    const rootMount = (await readFile(`/proc/${proc.pid}/mountinfo`, "utf8")).split("\n").find((l) => l.split(" ")[4] === "/");
    expect(rootMount?.split(" ")[5]?.split(",")).toContain("ro");
    expect(await readFile(`/proc/${proc.pid}/cmdline`, "utf8")).toContain("dist/main.js");

    const runNs = await cluster.namespace("ctrl-image-run");
    await cluster.pool(runNs, "builders", 1);
    await createContextRepo(h.repos, "through-image", {
      Dockerfile: `FROM ${env.baseImage}\nRUN uname -m > /arch\nRUN cat /arch\n`,
    });
    const throughImage = `${env.registry.host}/${runNs}/through-image:1`;
    await cluster.createRun(runNs, "through-image", {
      pool: "builders",
      gitUrl: `${h.git.url}/through-image.git`,
      image: throughImage,
      platforms: ["linux/amd64", "linux/arm64"],
      registrySecret: "registry",
      pullSecret: "registry",
      tlsVerify: "false",
    });
    const run = await cluster.waitForRun(runNs, "through-image", 300_000);
    expect(succeeded(run), `${JSON.stringify(run.status)}\n${proc.output().slice(-3000)}`).toMatchObject({ status: "True", reason: "Succeeded" });
    const index = JSON.parse(await inspectRaw(env, throughImage)) as Index;
    expect(index.manifests.map((m) => m.platform.architecture).sort()).toEqual(["amd64", "arm64"]);
    expect(result(run, "IMAGE_URL")).toBe(throughImage);
    await h.everyVMScratched(runNs);
  });
});
