import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SETTING_NAMES } from "../../src/api/settings.js";
import { succeeded } from "../support/cluster.js";
import { controllerSuite } from "../support/controller-suite.js";
import { createContextRepo } from "../support/context-repo.js";
import { paramValue } from "../support/nasty.js";

// Fuzzed CustomRuns against the live controller: a valid run with one or two params replaced by hostile or
// malformed values. Whatever comes in, the controller keeps running, every run ends with a reason that says what
// happened (InvalidParams naming the field, or the build's own outcome), and every VM it started is scratched.

const CASES = 24;
// Outcomes a fuzzed value may legitimately lead to; ControllerRestarted (a crash) is not among them.
const EXPECTED = new Set([
  "InvalidParams",
  "Succeeded",
  "BuildFailed",
  "SourceFailed",
  "PushFailed",
  "InvalidSecret",
  "PoolNotFound",
  "QueueTimeout",
  "VMNotReady",
  "BuildTimedOut",
]);

describe(`${CASES} fuzzed CustomRuns against the live controller`, () => {
  const s = controllerSuite("fuzz", async ({ cluster, ns, repos, env, controller }) => {
    void controller.exited.then(() => {
      controllerExited = true;
    });
    await cluster.pool(ns, "builders", 3);
    await createContextRepo(repos, "fuzz", { Dockerfile: `FROM ${env.baseImage}\nRUN true\n` });
  });
  let controllerExited = false;

  it("ends every run with an expected reason, never crashes, scratches every VM", { timeout: 600_000 }, async () => {
    const { env, cluster, controller, git, ns } = s;
    const base: Record<string, string | string[]> = {
      pool: "builders",
      gitUrl: `${git.url}/fuzz.git`,
      image: `${env.registry.host}/${ns}/fuzz:1`,
      platforms: "linux/amd64",
      registrySecret: "registry",
      pullSecret: "registry",
      tlsVerify: "false",
    };
    // Half hostile, half plausible: valid values that carry injection attempts and unicode into the build itself.
    const plausible: Record<string, (string | string[])[]> = {
      buildArgs: [["GREETING=ünïcødé ✓ $(id) `id` \"q\" ; rm -rf /"], ["A=1", "B=--network=host"]],
      gitRevision: ["", "master"],
      platforms: ["linux/amd64", "linux/arm64"],
      contextDir: ["."],
      dockerfile: ["Dockerfile"],
      readyTimeout: ["5m"],
      buildTimeout: ["10m"],
      queueTimeout: ["20m"],
      tlsVerify: ["false"],
    };
    const override = fc.array(
      fc.oneof(
        fc.record({ name: fc.oneof(fc.constantFrom(...SETTING_NAMES), fc.constantFrom("colour", "../x")), value: paramValue }),
        fc.constantFrom(...Object.keys(plausible)).chain((name) =>
          fc.record({ name: fc.constant(name), value: fc.constantFrom(...(plausible[name] ?? [])) }),
        ),
      ),
      { minLength: 1, maxLength: 2 },
    );
    const cases = fc.sample(override, { numRuns: CASES, seed: 20261128 });
    const created: string[] = [];
    expect(cases.some((c) => c.every((o) => Object.keys(plausible).includes(o.name)))).toBe(true);
    let refusedByAPI = 0;
    for (const [i, overrides] of cases.entries()) {
      const params: Record<string, unknown> = { ...base };
      for (const { name, value } of overrides) params[name] = value;
      try {
        await cluster.createRun(ns, `fuzz-${i}`, params as Record<string, string | string[]>);
        created.push(`fuzz-${i}`);
      } catch {
        // The CRD's schema refused it (e.g. a param value Tekton's schema does not allow): never reached us.
        refusedByAPI += 1;
      }
    }
    expect(created.length).toBeGreaterThan(CASES / 2);

    const outcomes = await Promise.all(created.map((name) => cluster.waitForRun(ns, name, 300_000)));
    const reasons = new Map<string, number>();
    for (const run of outcomes) {
      const c = succeeded(run);
      const reason = c?.reason ?? "";
      reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
      expect(EXPECTED, `${run.metadata?.name}: ${reason}: ${c?.message}`).toContain(reason);
      expect(c?.message?.length ?? 0).toBeGreaterThan(0);
      expect(c?.message?.length ?? 0).toBeLessThan(2_000);
      if (reason === "InvalidParams") expect(c?.message).toMatch(/param "|VMBuild spec|spec is malformed|pool is required|has no pool/);
    }
    expect(reasons.get("Succeeded") ?? 0).toBeGreaterThan(0);
    // Not one crash or restart of the controller along the way.
    expect(controllerExited, controller.output().slice(-2000)).toBe(false);
    await s.h.everyVMScratched(ns);
    console.log(`fuzzed runs: ${created.length} created, ${refusedByAPI} refused by the API; outcomes ${JSON.stringify(Object.fromEntries(reasons))}`);
  });

  it("a run whose params near the object size etcd takes ends InvalidParams naming the field, its status written", { timeout: 120_000 }, async () => {
    const { env, cluster, git, ns } = s;
    // 800 KB of build args: a status that repeated them would pass etcd's 1.5 MiB and could never be written.
    const buildArgs = Array.from({ length: 200 }, (_, i) => `ARG_${i}=${"x".repeat(4_000)}`);
    await cluster.createRun(ns, "huge-params", {
      pool: "builders",
      gitUrl: `${git.url}/fuzz.git`,
      image: `${env.registry.host}/${ns}/fuzz:huge`,
      buildArgs,
    });
    // The same 800 KB in an embedded spec, overridden by a param: what the run keeps leaves it out.
    await cluster.createRun(
      ns,
      "huge-overridden",
      { buildArgs: ["A=1"], registrySecret: "registry", pullSecret: "registry", tlsVerify: "false" },
      {
        customRef: undefined,
        customSpec: {
          apiVersion: "vmbuild.dev/v1alpha1",
          kind: "VMBuild",
          spec: { pool: "builders", gitUrl: `${git.url}/fuzz.git`, image: `${env.registry.host}/${ns}/fuzz:overridden`, buildArgs },
        },
      },
    );
    const [huge, overridden] = await Promise.all([
      cluster.waitForRun(ns, "huge-params", 60_000),
      cluster.waitForRun(ns, "huge-overridden", 120_000),
    ]);
    expect(succeeded(huge)).toMatchObject({ status: "False", reason: "InvalidParams" });
    expect(succeeded(huge)?.message).toMatch(/^param "buildArgs": build args hold \d+ characters of names and values; at most 65536/);
    expect(succeeded(overridden), succeeded(overridden)?.message).toMatchObject({ status: "True", reason: "Succeeded" });
    await s.h.everyVMScratched(ns);
  });
});
