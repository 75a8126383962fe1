import { describe, expect, it } from "vitest";
import { inspectManifest } from "../../src/registry/client.js";
import { withDigest } from "../../src/api/image-reference.js";
import { result, succeeded } from "../support/cluster.js";
import { controllerSuite } from "../support/controller-suite.js";
import { createContextRepo } from "../support/context-repo.js";

// Pipelines push `:latest` or a branch tag from concurrent runs. A run checks what it pushed by its digest, not by
// the tag, which another run may have moved meanwhile.

describe("two runs pushing the same tag", () => {
  const s = controllerSuite("shared-tag", async ({ cluster, ns, repos, env }) => {
    await cluster.pool(ns, "builders", 2);
    await createContextRepo(repos, "nonce", { Dockerfile: `FROM ${env.baseImage}\nARG NONCE\nLABEL nonce=$NONCE\n` });
  });

  it("both succeed in every round, each IMAGE_DIGEST served by the registry by its digest", async () => {
    const image = `${s.env.registry.host}/${s.ns}/app:latest`;
    const login = { username: s.env.registry.username, password: s.env.registry.password };
    const runs = [];
    for (let round = 0; round < 8; round++) {
      const names = [`r${round}-a`, `r${round}-b`];
      await Promise.all(
        names.map((name) =>
          s.cluster.createRun(s.ns, name, {
            pool: "builders",
            gitUrl: `${s.git.url}/nonce.git`,
            image,
            buildArgs: [`NONCE=${s.ns}-${name}`],
            registrySecret: "registry",
            pullSecret: "registry",
            tlsVerify: "false",
          }),
        ),
      );
      runs.push(...(await Promise.all(names.map((name) => s.cluster.waitForRun(s.ns, name, 120_000)))));
    }
    expect(runs.map((run) => `${run.metadata?.name}: ${succeeded(run)?.reason} ${succeeded(run)?.message}`)).toEqual(
      runs.map((run) => expect.stringMatching(new RegExp(`^${run.metadata?.name}: Succeeded `))),
    );
    const digests = runs.map((run) => result(run, "IMAGE_DIGEST") ?? "");
    expect(new Set(digests).size).toBe(runs.length);
    for (const digest of digests) {
      const served = await inspectManifest(withDigest(image, digest), login, { tlsVerify: false });
      expect(served.digest).toBe(digest);
    }
  });
});
