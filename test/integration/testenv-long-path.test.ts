import { cp, mkdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { repoRoot } from "../../hack/testenv/paths.js";
import { run } from "../support/exec.js";
import { freePort } from "../support/ports.js";
import { makeTempDir } from "../support/temp-dir.js";

// `npm run testenv -- up` from a checkout whose path is long, as /home/NAME/src/... clones are: podman refuses
// runroot paths over 50 characters, and the base image's storage once lived under the checkout. A second testenv
// beside the suite's (its own apiserver, etcd and registry port; the stand-in starts no VM here).

describe("the testenv from a checkout path over 100 characters", () => {
  let temp: Awaited<ReturnType<typeof makeTempDir>> | undefined;
  let checkout = "";
  const tsx = join(repoRoot, "node_modules/.bin/tsx");
  const env = async () => ({ ...process.env, VMBUILD_TESTENV_REGISTRY_PORT: String(await freePort("127.0.0.1")) });

  afterAll(async () => {
    if (checkout) await run(tsx, ["hack/testenv/cli.ts", "down"], { cwd: checkout }).catch(() => undefined);
    await temp?.remove();
  });

  it("comes up and goes down", async () => {
    temp = await makeTempDir("long-path");
    checkout = join(temp.path, "home", "a-developer-with-a-long-name", "src", "github.com", "some-organisation", "vmbuild");
    expect(checkout.length).toBeGreaterThan(100);
    await mkdir(checkout, { recursive: true });
    for (const entry of ["package.json", "tsconfig.json", "hack", "deploy"]) {
      await cp(join(repoRoot, entry), join(checkout, entry), { recursive: true });
    }
    await symlink(join(repoRoot, "node_modules"), join(checkout, "node_modules"));
    const up = await run(tsx, ["hack/testenv/cli.ts", "up"], { cwd: checkout, env: await env() });
    expect(up).toContain(`env            ${checkout}/.testenv/env.json`);
    await run(tsx, ["hack/testenv/cli.ts", "down"], { cwd: checkout });
    checkout = "";
  }, 300_000);
});
