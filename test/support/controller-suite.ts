import { afterAll, beforeAll } from "vitest";
import type { Testenv } from "../../hack/testenv/index.js";
import type { Cluster } from "./cluster.js";
import { startController, type ControllerProcess } from "./controller.js";
import type { GitHttpServer } from "./git-http-server.js";
import { openHarness, type Harness } from "./harness.js";

/** What a describe block of end-to-end tests against one controller works with; filled in by its beforeAll. */
export interface ControllerSuite {
  h: Harness;
  env: Testenv;
  cluster: Cluster;
  git: GitHttpServer;
  repos: string;
  controller: ControllerProcess;
  /** A fresh namespace for the block. */
  ns: string;
}

/**
 * Registers the block's beforeAll (a harness, the controller as its own process, a fresh namespace, then `setup`)
 * and afterAll (all of it stopped). Read the fields inside tests and hooks, not at collection time.
 */
export function controllerSuite(name: string, setup?: (s: ControllerSuite) => Promise<void>): ControllerSuite {
  const s = {} as ControllerSuite;
  beforeAll(async () => {
    s.h = await openHarness(name);
    Object.assign(s, { env: s.h.env, cluster: s.h.cluster, git: s.h.git, repos: s.h.repos });
    s.controller = await startController(s.env, { name: `${name}-test` });
    s.ns = await s.cluster.namespace(name);
    await setup?.(s);
  });
  afterAll(async () => {
    await s.controller?.stop();
    await s.h?.close();
  });
  return s;
}
