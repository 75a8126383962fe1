import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readTestenv, type Testenv } from "../../hack/testenv/index.js";
import { readRecord, unscratchedVMIs } from "../../hack/kubevirt-sim/record.js";
import { Cluster } from "./cluster.js";
import { startGitHttpServer, type GitHttpServer } from "./git-http-server.js";
import { waitUntil } from "./processes.js";

/** What an end-to-end test starts from: the running testenv, an admin client, a git server over a dir of repos. */
export interface Harness {
  env: Testenv;
  cluster: Cluster;
  git: GitHttpServer;
  /** Where createContextRepo() puts the repositories `git` serves. */
  repos: string;
  /** How many VM instances the KubeVirt stand-in created in `ns`. */
  vmisCreated(ns: string): number;
  /** Waits until every VM instance the stand-in created in `ns` was scratched and no lease is left there. */
  everyVMScratched(ns: string): Promise<void>;
  close(): Promise<void>;
}

export async function openHarness(name: string, opts: { gitAuth?: { username: string; password: string } } = {}): Promise<Harness> {
  const env = readTestenv();
  if (!env) throw new Error("testenv is not up (the integration global setup should have started it)");
  const cluster = new Cluster(env);
  const repos = await mkdtemp(join(tmpdir(), `vmbuild-${name}-`));
  const git = await startGitHttpServer({ projectRoot: repos, ...(opts.gitAuth ? { auth: opts.gitAuth } : {}) });
  const records = (ns: string) => readRecord(env.simStateDir).filter((e) => e.namespace === ns);
  return {
    env,
    cluster,
    git,
    repos,
    vmisCreated: (ns) => records(ns).filter((e) => e.event === "vmi-created").length,
    async everyVMScratched(ns) {
      await waitUntil(
        async () => unscratchedVMIs(records(ns)).length === 0,
        30_000,
        () => `unscratched VMIs in ${ns}: ${JSON.stringify(unscratchedVMIs(records(ns)))}`,
      );
      await waitUntil(async () => (await cluster.leases(ns)).length === 0, 30_000, () => `leases left in ${ns}`);
    },
    async close() {
      await git.stop();
      await rm(repos, { recursive: true, force: true });
    },
  };
}
