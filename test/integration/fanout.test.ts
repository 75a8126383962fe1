import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readRecord, startedVMs } from "../../hack/kubevirt-sim/record.js";
import { result, succeeded } from "../support/cluster.js";
import { controllerSuite } from "../support/controller-suite.js";
import { inspectRaw } from "../support/skopeo.js";
import { createContextRepo } from "../support/context-repo.js";

// strategy fanout: one VM per platform, from a native pool where the pool template's architecture matches, from
// the emulation pool otherwise; the index is assembled from what each VM pushed.

describe("fan-out builds over a native arm64 pool and an emulation pool", () => {
  const s = controllerSuite("fanout", async ({ cluster, ns }) => {
    await cluster.pool(ns, "emu", 2);
    await cluster.pool(ns, "arm", 1, {}, { architecture: "arm64" });
  });

  const params = (name: string, extra: Record<string, string> = {}) => ({
    pool: "emu",
    nativePools: "arm",
    strategy: "fanout",
    gitUrl: `${s.git.url}/${name}.git`,
    image: `${s.env.registry.host}/${s.ns}/${name}:1`,
    platforms: "linux/amd64,linux/arm64",
    registrySecret: "registry",
    pullSecret: "registry",
    tlsVerify: "false",
    ...extra,
  });


  it("builds each platform on its own VM (arm64 on the native pool) and pushes one index of both", async () => {
    const { env, cluster, controller, repos, ns } = s;
    await createContextRepo(repos, "ok", { Dockerfile: `FROM ${env.baseImage}\nRUN uname -m > /arch\nRUN cat /arch\n` });
    await cluster.createRun(ns, "ok", params("ok"));
    const run = await cluster.waitForRun(ns, "ok", 300_000);
    expect(succeeded(run)).toMatchObject({ status: "True", reason: "Succeeded" });

    const image = `${env.registry.host}/${ns}/ok:1`;
    const served = await inspectRaw(env, image);
    const index = JSON.parse(served) as { manifests: { digest: string; platform: { architecture: string } }[] };
    expect(index.manifests.map((m) => m.platform.architecture)).toEqual(["amd64", "arm64"]);
    expect(result(run, "IMAGE_DIGEST")).toBe(`sha256:${createHash("sha256").update(served).digest("hex")}`);
    expect(result(run, "PLATFORM_DIGESTS")).toBe(
      index.manifests.map((m) => `linux/${m.platform.architecture}=${m.digest}`).join(","),
    );
    // One VM per platform: the amd64 one from the emulation pool, the arm64 one from the native pool.
    const vms = (result(run, "BUILD_VM") ?? "").split(",");
    expect(vms).toHaveLength(2);
    expect(vms[0]).toMatch(new RegExp(`^${ns}/emu-`));
    expect(vms[1]).toMatch(new RegExp(`^${ns}/arm-`));
    // Each VM pushed its platform under a tag of its own before the index was assembled.
    const arm = JSON.parse(await inspectRaw(env, `${image}-linux-arm64`)) as { manifests: { digest: string }[] };
    expect(arm.manifests.map((m) => m.digest)).toEqual([index.manifests[1]?.digest]);

    const log = await readFile(join(controller.logDir, ns, "ok", `${run.metadata?.uid}-0.log`), "utf8");
    expect(log.split("\n")).toContain("aarch64");
    expect(log.split("\n")).toContain("x86_64");
    await s.h.everyVMScratched(s.ns);
  });

  it("fails naming the platform whose build failed, and scratches every VM", async () => {
    const { env, cluster, repos, ns } = s;
    await createContextRepo(repos, "arm-fails", {
      Dockerfile: `FROM ${env.baseImage}\nRUN if [ "$(uname -m)" = aarch64 ]; then echo no arm here; exit 7; fi\n`,
    });
    await cluster.createRun(ns, "arm-fails", params("arm-fails"));
    const run = await cluster.waitForRun(ns, "arm-fails", 300_000);
    const c = succeeded(run);
    expect(c).toMatchObject({ status: "False", reason: "BuildFailed" });
    expect(c?.message).toMatch(/^linux\/arm64 on VM arm-\d+: /);
    expect(c?.message).toMatch(/no arm here/);
    await s.h.everyVMScratched(s.ns);
  });

  it("fails fast, before leasing anything, when a platform has no pool", async () => {
    const { env, cluster, ns } = s;
    const before = startedVMs(readRecord(env.simStateDir).filter((e) => e.namespace === ns)).length;
    const { pool: _emulation, ...withoutPool } = params("no-pool");
    await cluster.createRun(ns, "no-pool", { ...withoutPool, platforms: "linux/arm64,linux/s390x" });
    const run = await cluster.waitForRun(ns, "no-pool", 60_000);
    expect(succeeded(run)).toMatchObject({ status: "False", reason: "InvalidParams" });
    expect(succeeded(run)?.message).toMatch(/platform linux\/s390x has no pool/);
    expect(startedVMs(readRecord(env.simStateDir).filter((e) => e.namespace === ns)).length).toBe(before);
    await s.h.everyVMScratched(s.ns);
  });
});
