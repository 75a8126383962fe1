import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Testenv } from "../../hack/testenv/index.js";
import { readRecord } from "../../hack/kubevirt-sim/record.js";
import { mergePatch } from "../../src/kube/client.js";
import { Cluster, result, succeeded, VM_SSH_SECRET } from "../support/cluster.js";
import { createContextRepo } from "../support/context-repo.js";
import { startController, type ControllerProcess } from "../support/controller.js";
import { openHarness, type Harness } from "../support/harness.js";
import { createSshKeys, type SshKeys } from "../support/sshd.js";

// The controller building over ssh, the default for a pool: the stand-in's VMs serve podman on its unix socket only,
// behind a real sshd on port 22 of the VM's own address (hack/kubevirt-sim/podman-service.ts), configured as
// SECURITY.md recommends. Every byte of the build goes controller → ssh → sshd → socket → podman.

describe("a build over ssh, the pool's default", () => {
  let h: Harness;
  let env: Testenv;
  let cluster: Cluster;
  let controller: ControllerProcess;
  let keys: SshKeys;

  beforeAll(async () => {
    h = await openHarness("ssh-build");
    ({ env, cluster } = h);
    keys = await createSshKeys();
    await createContextRepo(h.repos, "quick", { Dockerfile: `FROM ${env.baseImage}\nRUN echo "built over ssh"\n` });
    controller = await startController(env, { name: "ssh-build" });
  });

  afterAll(async () => {
    await controller?.stop();
    await keys?.remove();
    await h?.close();
  });

  const params = (ns: string, extra: Record<string, string> = {}) => ({
    pool: "builders",
    gitUrl: `${h.git.url}/quick.git`,
    image: `${env.registry.host}/${ns}/app:1`,
    registrySecret: "registry",
    pullSecret: "registry",
    tlsVerify: "false",
    ...extra,
  });

  /** Pool "builders" of `ns`, whose ssh Secret `secret` holds the VMs' client key and another host's key. */
  async function poolExpectingOtherHost(ns: string, secret: string): Promise<void> {
    const [, otherHostKey] = await keys.newKey(`${secret}-host`);
    await cluster.core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: { name: secret },
        type: "kubernetes.io/ssh-auth",
        stringData: { "ssh-privatekey": readFileSync(env.vmSsh.clientKeyFile, "utf8"), known_hosts: `* ${otherHostKey}\n` },
      },
    });
    await cluster.pool(ns, "builders", 1, {}, { annotations: { "vmbuild.dev/ssh-secret": secret } });
  }

  /** What the stand-in's VMs of `ns` wrote: podman's and sshd's output share the VM's log. */
  function vmLogs(ns: string): string {
    const dir = join(env.simStateDir, "logs");
    return readdirSync(dir)
      .filter((f) => f.startsWith(`${ns}.`))
      .map((f) => readFileSync(join(dir, f), "utf8"))
      .join("\n");
  }

  it("builds and pushes through the VM's sshd to podman's socket, host key checked, and scratches the VM", async () => {
    const ns = await cluster.namespace("ssh-build");
    // No transport annotation: only the Secret is named, ssh is the default.
    await cluster.pool(ns, "builders", 1);
    await cluster.createRun(ns, "run", params(ns));
    const run = await cluster.waitForRun(ns, "run", 180_000);
    expect(succeeded(run)?.reason, succeeded(run)?.message).toBe("Succeeded");
    expect(result(run, "IMAGE_DIGEST")).toMatch(/^sha256:[a-f0-9]{64}$/);
    const log = await (await fetch(result(run, "LOG_URL") ?? "", { headers: { authorization: `Bearer ${env.tokens.admin}` } })).text();
    expect(log).toContain("built over ssh");
    // It went through the VM's sshd, from the host's side of the bridge, with the Secret's key.
    expect(vmLogs(ns)).toMatch(new RegExp(`Accepted publickey for root from ${env.network.gateway.replaceAll(".", "\\.")} `));
    await h.everyVMScratched(ns);
  });

  it("a VM whose host key is not the Secret's fails at once with VMConnectionFailed, and is scratched", async () => {
    const ns = await cluster.namespace("ssh-impostor");
    await poolExpectingOtherHost(ns, "expects-other-host");
    const created = Date.now();
    await cluster.createRun(ns, "run", params(ns, { readyTimeout: "5m" }));
    const run = await cluster.waitForRun(ns, "run", 120_000);
    expect(succeeded(run)).toMatchObject({ status: "False", reason: "VMConnectionFailed" });
    expect(succeeded(run)?.message).toMatch(/does not match known_hosts: it presented ssh-ed25519 SHA256:\S+, known_hosts lists ssh-ed25519 SHA256:/);
    expect(succeeded(run)?.message).toContain(`known_hosts of Secret ${ns}/expects-other-host`);
    // It failed on the mismatch, not after readyTimeout; and the client key was never offered.
    expect(Date.now() - created).toBeLessThan(60_000);
    expect(vmLogs(ns)).not.toContain("Accepted publickey");
    await h.everyVMScratched(ns);
  });

  it("a Secret fixed right after a build failed with it serves the very next build (the copy kept is read again)", async () => {
    const ns = await cluster.namespace("ssh-fixed");
    const good = await cluster.core.readNamespacedSecret({ name: VM_SSH_SECRET, namespace: ns });
    await poolExpectingOtherHost(ns, "fixed-later");
    await cluster.createRun(ns, "broken", params(ns, { readyTimeout: "5m" }));
    const broken = await cluster.waitForRun(ns, "broken", 120_000);
    expect(succeeded(broken)).toMatchObject({ status: "False", reason: "VMConnectionFailed" });
    // Fixed well within the time a read of the Secret serves the builds after it.
    await cluster.core.patchNamespacedSecret(
      { name: "fixed-later", namespace: ns, body: { data: { known_hosts: good.data?.known_hosts ?? "" } } },
      mergePatch,
    );
    await cluster.createRun(ns, "fixed", params(ns));
    const fixed = await cluster.waitForRun(ns, "fixed", 180_000);
    expect(succeeded(fixed)?.reason, succeeded(fixed)?.message).toBe("Succeeded");
    await h.everyVMScratched(ns);
  });

  it("a pool naming a Secret that does not exist fails with VMConnectionFailed naming it", async () => {
    const ns = await cluster.namespace("ssh-nosecret");
    await cluster.pool(ns, "builders", 1, {}, { annotations: { "vmbuild.dev/ssh-secret": "missing" } });
    await cluster.createRun(ns, "run", params(ns));
    const run = await cluster.waitForRun(ns, "run", 120_000);
    expect(succeeded(run)).toMatchObject({ status: "False", reason: "VMConnectionFailed" });
    expect(succeeded(run)?.message).toContain(`Secret ${ns}/missing, named by pool builders's vmbuild.dev/ssh-secret annotation, does not exist`);
    await h.everyVMScratched(ns);
  });

  it("a pool without any transport annotation fails with PoolMisconfigured saying ssh is the default, before any VM starts", async () => {
    const ns = await cluster.namespace("ssh-unset");
    await cluster.pool(ns, "builders", 1, {}, { transport: "unset" });
    await cluster.createRun(ns, "run", params(ns));
    const run = await cluster.waitForRun(ns, "run", 120_000);
    expect(succeeded(run)).toMatchObject({ status: "False", reason: "PoolMisconfigured" });
    expect(succeeded(run)?.message).toContain(
      `VirtualMachinePool ${ns}/builders: annotation vmbuild.dev/ssh-secret: expected the name of a Secret in the pool's namespace (it is missing); builds reach podman over ssh unless the pool sets vmbuild.dev/podman-connection: tcp`,
    );
    expect(await cluster.leases(ns)).toEqual([]);
    expect(readRecord(env.simStateDir).filter((e) => e.namespace === ns && e.event === "podman-started")).toEqual([]);
  });
});
