import { connect, createServer, type Server } from "node:net";
import { userInfo } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Testenv } from "../../hack/testenv/index.js";
import { mergePatch } from "../../src/kube/client.js";
import { Cluster, result, succeeded } from "../support/cluster.js";
import { createContextRepo } from "../support/context-repo.js";
import { startController, type ControllerProcess } from "../support/controller.js";
import { openHarness, type Harness } from "../support/harness.js";
import { freePort } from "../support/ports.js";
import { waitUntil } from "../support/processes.js";
import { createSshKeys, startSshd, type Sshd, type SshKeys } from "../support/sshd.js";

// The controller building over ssh, as a pool annotated for it asks. The KubeVirt stand-in serves each VM's
// podman on TCP only, so the test plays the VM's sshd: once the VM has its address, a real sshd listens there
// and a relay stands in for podman's unix socket on the VM (it forwards to the VM's podman). Every byte of the
// build then goes controller → ssh → sshd → socket → podman.

const PODMAN_PORT = 8888;

describe("a build over ssh, configured on the pool", () => {
  let h: Harness;
  let env: Testenv;
  let cluster: Cluster;
  let controller: ControllerProcess;
  let keys: SshKeys;
  let sshPort: number;
  let socket: string;
  let relay: Server;
  // The VM the relay forwards to, and how many connections it carried.
  let vmAddress = "";
  let relayed = 0;
  const sshds = new Map<string, Sshd>();

  beforeAll(async () => {
    h = await openHarness("ssh-build");
    ({ env, cluster } = h);
    keys = await createSshKeys();
    sshPort = await freePort("127.0.0.1");
    socket = join(keys.dir, "podman.sock");
    // podman's unix socket on the VM, played by a relay to the VM's podman.
    relay = createServer((downstream) => {
      relayed += 1;
      const upstream = connect({ host: vmAddress, port: PODMAN_PORT });
      downstream.pipe(upstream).pipe(downstream);
      upstream.on("error", () => downstream.destroy());
      downstream.on("error", () => upstream.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(socket, resolve));
    await createContextRepo(h.repos, "quick", { Dockerfile: `FROM ${env.baseImage}\nRUN echo "built over ssh"\n` });
    controller = await startController(env, { name: "ssh-build" });
  });

  afterAll(async () => {
    await controller?.stop();
    for (const sshd of sshds.values()) await sshd.stop();
    await new Promise((resolve) => relay?.close(resolve));
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

  async function annotatePool(ns: string, annotations: Record<string, string>): Promise<void> {
    await cluster.custom.patchNamespacedCustomObject(
      { group: "pool.kubevirt.io", version: "v1beta1", plural: "virtualmachinepools", namespace: ns, name: "builders", body: { metadata: { annotations } } },
      mergePatch,
    );
  }

  /** A pool of one VM annotated for ssh, and its Secret with the client key and `knownHosts`. */
  async function sshPool(ns: string, knownHosts: string): Promise<void> {
    await cluster.core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: { name: "build-vm-ssh" },
        type: "kubernetes.io/ssh-auth",
        stringData: { "ssh-privatekey": keys.clientKey, known_hosts: knownHosts },
      },
    });
    await cluster.pool(ns, "builders", 1);
    await annotatePool(ns, {
      "vmbuild.dev/podman-connection": "ssh",
      "vmbuild.dev/ssh-secret": "build-vm-ssh",
      "vmbuild.dev/ssh-user": userInfo().username,
      "vmbuild.dev/ssh-port": String(sshPort),
      "vmbuild.dev/podman-socket": socket,
    });
  }

  /** Once the run's VM has an address: an sshd on it, and the relay pointed at its podman. */
  async function playVM(ns: string): Promise<Sshd> {
    await waitUntil(
      async () => {
        const [vmi] = (await cluster.vmis(ns)) as { status?: { interfaces?: { ipAddress?: string }[] } }[];
        vmAddress = vmi?.status?.interfaces?.[0]?.ipAddress ?? "";
        return vmAddress !== "";
      },
      60_000,
      // Should it ever fail again (once, in a loaded full run), say where the run and the controller were.
      () => `no VMI with an address in ${ns}; controller's last lines:\n${controller.output().split("\n").slice(-15).join("\n")}`,
    );
    const sshd = sshds.get(vmAddress) ?? (await startSshd({ keys, host: vmAddress, port: sshPort }));
    sshds.set(vmAddress, sshd);
    return sshd;
  }

  it("builds and pushes through an ssh tunnel to the VM, host key checked, and scratches the VM", async () => {
    const ns = await cluster.namespace("ssh-build");
    await sshPool(ns, `* ${keys.hostKey}\n`);
    await cluster.createRun(ns, "run", params(ns));
    const sshd = await playVM(ns);
    const run = await cluster.waitForRun(ns, "run", 180_000);
    expect(succeeded(run)?.reason, succeeded(run)?.message).toBe("Succeeded");
    expect(result(run, "IMAGE_DIGEST")).toMatch(/^sha256:[a-f0-9]{64}$/);
    const log = await (await fetch(result(run, "LOG_URL") ?? "", { headers: { authorization: `Bearer ${env.tokens.admin}` } })).text();
    expect(log).toContain("built over ssh");
    // It went through sshd, logged in with the Secret's key, and through the socket.
    expect(sshd.output()).toMatch(/Accepted publickey for \S+ from 127\.0\.0\.1/);
    expect(relayed).toBeGreaterThan(0);
    await h.everyVMScratched(ns);
  });

  it("a VM whose host key is not the Secret's fails at once with VMConnectionFailed, and is scratched", async () => {
    const ns = await cluster.namespace("ssh-impostor");
    const [, expected] = await keys.newKey("expected-host");
    await sshPool(ns, `* ${expected}\n`);
    await cluster.createRun(ns, "run", params(ns, { readyTimeout: "5m" }));
    await playVM(ns);
    const served = Date.now();
    const run = await cluster.waitForRun(ns, "run", 120_000);
    expect(succeeded(run)).toMatchObject({ status: "False", reason: "VMConnectionFailed" });
    expect(succeeded(run)?.message).toMatch(/does not match known_hosts: it presented ssh-ed25519 SHA256:\S+, known_hosts lists ssh-ed25519 SHA256:/);
    expect(succeeded(run)?.message).toContain(`known_hosts of Secret ${ns}/build-vm-ssh`);
    // It failed on the mismatch, not after readyTimeout.
    expect(Date.now() - served).toBeLessThan(60_000);
    await h.everyVMScratched(ns);
  });

  it("a pool naming a Secret that does not exist fails with VMConnectionFailed naming it", async () => {
    const ns = await cluster.namespace("ssh-nosecret");
    await cluster.pool(ns, "builders", 1);
    await annotatePool(ns, { "vmbuild.dev/podman-connection": "ssh", "vmbuild.dev/ssh-secret": "missing" });
    await cluster.createRun(ns, "run", params(ns));
    const run = await cluster.waitForRun(ns, "run", 120_000);
    expect(succeeded(run)).toMatchObject({ status: "False", reason: "VMConnectionFailed" });
    expect(succeeded(run)?.message).toContain(`Secret ${ns}/missing, named by pool builders's vmbuild.dev/ssh-secret annotation, does not exist`);
    await h.everyVMScratched(ns);
  });
});
