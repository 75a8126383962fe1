// A Containerfile is untrusted input. Here one tries, as an attacker would, every path a build step has to the
// VM's podman (whoever reaches podman is root on the VM and could read or misuse the registry login) and looks
// for credentials in everything it can read; the test then reads what the step saw from the image it pushed.
// The VMs have network namespaces of their own and the pools the default (protected) configuration: podman on
// its unix socket behind sshd. In the testenv RUN steps use chroot isolation, which shares the VM's network
// namespace: every step already has what `RUN --network=host` would give it on a real VM.
import { execFile } from "node:child_process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Testenv } from "../../hack/testenv/index.js";
import { readRecord } from "../../hack/kubevirt-sim/record.js";
import { Cluster, result, succeeded, type CustomRunObject } from "../support/cluster.js";
import { createContextRepo } from "../support/context-repo.js";
import { startController, type ControllerProcess } from "../support/controller.js";
import { openHarness, type Harness } from "../support/harness.js";
import { makeTempDir } from "../support/temp-dir.js";

const exec = promisify(execFile);

/** podman's answer to `GET /libpod/_ping`: its API version headers, or its server name. */
const isPodman = (response: string): boolean => /^(Libpod-Api-Version|Api-Version|Server: Libpod)/im.test(response);

/** Ports a step probes on each address: podman's and docker's usual ones, and whatever else might serve an API. */
const WELL_KNOWN_PORTS = [22, 80, 443, 2375, 2376, 5000, 8080, 8443, 8888, 9090, 10250];
const SLOW = "sleep 8";

/**
 * The probes: on the VM's own address, the gateway and loopback, an HTTP request for podman's `_ping` to each
 * port, written whole to /probe/HOST-PORT; the controller's endpoints without a token; every path podman's socket
 * could have, through /proc too; every environment and every file the step can read, into /probe.
 */
function hostileContainerfile(baseImage: string): string {
  const script = [
    "set +e",
    "mkdir -p /probe",
    "VM=$(ip -4 -o addr show eth0 | awk '{split($4, a, \"/\"); print a[1]}')",
    "GW=$(ip route | awk '/^default/ {print $3}')",
    'echo "$VM $GW" > /probe/addresses',
    'for host in $VM $GW 127.0.0.1; do for port in $PORTS; do ' +
      "printf 'GET /libpod/_ping HTTP/1.0\\r\\nHost: podman\\r\\n\\r\\n' | timeout 5 nc -w 2 $host $port > /probe/ping-$host-$port 2>&1; " +
      "done; done",
    'for path in /api/state /logs/$RUN_NAMESPACE/$RUN_NAME /metrics; do ' +
      'for port in $CONTROLLER_PORTS; do ' +
      "printf 'GET %s HTTP/1.0\\r\\nHost: controller\\r\\n\\r\\n' $path | timeout 5 nc -w 2 $GW $port > /probe/controller-$port-$(echo $path | tr / _) 2>&1; " +
      "done; done",
    "for s in /run/podman/podman.sock /var/run/podman/podman.sock /run/user/0/podman/podman.sock /var/run/docker.sock; do ls -la $s; done > /probe/sockets 2>&1",
    "ls -la /proc/*/root/run/podman/ >> /probe/sockets 2>&1",
    "find / -xdev -type s >> /probe/sockets 2>&1",
    "env > /probe/env",
    "cat /proc/*/environ > /probe/environ 2>/dev/null",
    "find / -xdev -type f ! -path '/probe/*' -size -2000k -exec cat {} + > /probe/files 2>/dev/null",
    "true",
  ].join("; ");
  return [
    `FROM ${baseImage}`,
    "ARG PORTS",
    "ARG CONTROLLER_PORTS",
    "ARG RUN_NAMESPACE",
    "ARG RUN_NAME",
    `RUN ${script}`,
    `RUN ${SLOW}`,
    "",
  ].join("\n");
}

describe("a hostile build: no path from a build step to podman, no credential in its view", () => {
  let h: Harness;
  let env: Testenv;
  let cluster: Cluster;
  let controller: ControllerProcess;
  let ns: string;
  let run: CustomRunObject;
  let probes: Map<string, string>;
  let pushLogin: string[];
  let pullLogin: string[];
  let onDiskDuringBuild: { push: string[]; pull: string[] };

  const basic = (u: { username: string; password: string }) => Buffer.from(`${u.username}:${u.password}`).toString("base64");

  beforeAll(async () => {
    h = await openHarness("hostile-build");
    ({ env, cluster } = h);
    // Listening on every address, as in a cluster where a pod's port is reachable at its pod IP.
    controller = await startController(env, { name: "hostile-build", extraEnv: { VMBUILD_HTTP_HOST: "0.0.0.0" } });
    await createContextRepo(h.repos, "hostile", { Dockerfile: hostileContainerfile(env.baseImage) });
    ns = await cluster.namespace("hostile");
    // The pull login is another user of the registry than the push login: the test can tell them apart.
    const puller = env.registry.puller;
    await cluster.core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: { name: "puller" },
        type: "kubernetes.io/dockerconfigjson",
        stringData: {
          ".dockerconfigjson": JSON.stringify({ auths: { [env.registry.host]: { username: puller.username, password: puller.password } } }),
        },
      },
    });
    pushLogin = [env.registry.password, basic(env.registry)];
    pullLogin = [puller.password, basic(puller)];
    await cluster.pool(ns, "builders", 1);

    const ports = [...WELL_KNOWN_PORTS, Number(new URL(controller.url).port), Number(new URL(controller.metricsURL).port)];
    await cluster.createRun(ns, "hostile", {
      pool: "builders",
      gitUrl: `${h.git.url}/hostile.git`,
      image: `${env.registry.host}/${ns}/hostile:1`,
      registrySecret: "registry",
      pullSecret: "puller",
      tlsVerify: "false",
      buildArgs: [
        `PORTS=${ports.join(" ")}`,
        `CONTROLLER_PORTS=${new URL(controller.url).port} ${new URL(controller.metricsURL).port}`,
        `RUN_NAMESPACE=${ns}`,
        "RUN_NAME=hostile",
      ],
    });
    // While its last step runs (every probe has run): which login is on the VM's disk.
    await cluster.waitForReason(ns, "hostile", ["Building"], 180_000);
    await logReaches(`RUN ${SLOW}`);
    const disk = readRecord(env.simStateDir).findLast((e) => e.namespace === ns && e.event === "podman-started")?.storageDir;
    if (!disk) throw new Error("no VM disk recorded");
    const filesWith = (forms: string[]) =>
      exec("grep", ["-rlaF", ...forms.flatMap((f) => ["-e", f]), disk]).then(
        (r) => r.stdout.split("\n").filter(Boolean),
        () => [],
      );
    onDiskDuringBuild = { push: await filesWith(pushLogin), pull: await filesWith(pullLogin) };
    run = await cluster.waitForRun(ns, "hostile", 300_000);
    probes = await probeFiles(`${ns}/hostile:1`);
  }, 600_000);

  afterAll(async () => {
    await controller?.stop();
    await h?.close();
  });

  /** Follows the run's live log until `text` appears in it. */
  async function logReaches(text: string): Promise<void> {
    const res = await fetch(`${controller.url}/logs/${ns}/hostile`, { headers: { authorization: `Bearer ${env.tokens.admin}` } });
    if (!res.body) throw new Error(`log of ${ns}/hostile: ${res.status}`);
    let seen = "";
    for await (const chunk of res.body) {
      seen += Buffer.from(chunk).toString();
      // Leaving the loop cancels the stream.
      if (seen.includes(text)) return;
    }
    throw new Error(`the log of ${ns}/hostile ended without ${JSON.stringify(text)}:\n${seen.slice(-2000)}`);
  }

  /** The /probe files of the pushed image, read from its layers (pulled with the push login). */
  async function probeFiles(repoTag: string): Promise<Map<string, string>> {
    const [repo, tag] = repoTag.split(":") as [string, string];
    const auth = { authorization: `Basic ${basic(env.registry)}` };
    const accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";
    const get = async (path: string) => {
      const res = await fetch(`http://${env.registry.host}/v2/${repo}/${path}`, { headers: { ...auth, accept } });
      if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
      return Buffer.from(await res.arrayBuffer());
    };
    let manifest = JSON.parse((await get(`manifests/${tag}`)).toString()) as { manifests?: { digest: string }[]; layers?: { digest: string }[] };
    if (manifest.manifests?.[0]) manifest = JSON.parse((await get(`manifests/${manifest.manifests[0].digest}`)).toString()) as typeof manifest;
    const dir = await makeTempDir("hostile-layers");
    try {
      for (const [i, layer] of (manifest.layers ?? []).entries()) {
        const file = join(dir.path, `layer-${i}.tar.gz`);
        await writeFile(file, await get(`blobs/${layer.digest}`));
        await exec("tar", ["-xzf", file, "-C", dir.path, "--no-same-owner", "--wildcards", "probe/*"]).catch(() => undefined);
      }
      const names = await readdir(join(dir.path, "probe"));
      return new Map(await Promise.all(names.map(async (n) => [n, await readFile(join(dir.path, "probe", n), "latin1")] as [string, string])));
    } finally {
      await dir.remove();
    }
  }

  it("builds, pulling its base image with the pull login and pushing with the push login, which is not on the VM while steps run", () => {
    expect(succeeded(run)?.reason, succeeded(run)?.message).toBe("Succeeded");
    expect(result(run, "IMAGE_DIGEST")).toMatch(/^sha256:[a-f0-9]{64}$/);
    // The base image needs a login: while the last step ran, the VM had the pull login, in podman's temporary auth
    // file alone, and not the push login, which reaches the VM only with the push, after every step has ended.
    expect(onDiskDuringBuild.pull.length).toBeGreaterThan(0);
    expect(onDiskDuringBuild.pull.filter((f) => !/\/tmp\/auth\.json\.\d+$/.test(f))).toEqual([]);
    expect(onDiskDuringBuild.push).toEqual([]);
  });

  it("gets no answer from podman on any address or port it tries: the VM's, the gateway's, loopback", () => {
    const pings = [...probes].filter(([name]) => name.startsWith("ping-"));
    const [vm, gateway] = (probes.get("addresses") ?? "").trim().split(" ");
    expect(vm?.split(".").slice(0, 3)).toEqual(env.network.gateway.split(".").slice(0, 3));
    expect(gateway).toBe(env.network.gateway);
    // Three addresses, every port: the probes ran.
    expect(pings.length).toBe(3 * (WELL_KNOWN_PORTS.length + 2));
    expect(pings.filter(([, answer]) => isPodman(answer))).toEqual([]);
    // And they could reach what is there: the VM's sshd and, at the gateway, the registry and the controller.
    expect(probes.get(`ping-${vm}-22`)).toMatch(/^SSH-2\.0-OpenSSH/);
    expect(probes.get(`ping-${gateway}-${env.registry.host.split(":")[1]}`)).toMatch(/^HTTP\/1\.[01] /);
    expect(probes.get(`ping-${gateway}-${new URL(controller.url).port}`)).toMatch(/^HTTP\/1\.1 404/);
  });

  it("finds no podman socket, by any path or through /proc", () => {
    const sockets = probes.get("sockets") ?? "";
    const lines = sockets.split("\n").filter((l) => l.trim() !== "");
    expect(lines.length).toBeGreaterThan(0);
    // Every line is a refusal: no such file, or permission denied for another process's root.
    expect(lines.filter((l) => !/No such file or directory|Permission denied/.test(l))).toEqual([]);
  });

  it("gets nothing from the controller's endpoints without a token: logs and the web view's data refuse, metrics carry no secret", () => {
    const port = new URL(controller.url).port;
    const metricsPort = new URL(controller.metricsURL).port;
    expect(probes.get(`controller-${port}-_api_state`)).toMatch(/^HTTP\/1\.1 401/);
    expect(probes.get(`controller-${port}-_logs_${ns}_hostile`)).toMatch(/^HTTP\/1\.1 401/);
    expect(probes.get(`controller-${metricsPort}-_metrics`)).toMatch(/^HTTP\/1\.1 200/);
  });

  it("finds neither login nor any ssh key in its environment, /proc or any file it can read", async () => {
    // A private key's first line of base64: the controller's client key and the VM's host key.
    const keyLine = async (file: string) => (await readFile(file, "utf8")).split("\n")[1] ?? "";
    const keys = [await keyLine(env.vmSsh.clientKeyFile), await keyLine(join(env.vmSsh.dir, "host_ed25519"))];
    expect(keys.every((k) => k.length > 40)).toBe(true);
    const forms = [...pushLogin, ...pullLogin, ...keys];
    const found = [...probes].flatMap(([name, text]) => forms.filter((f) => text.includes(f)).map((f) => `${name}: ${f.slice(0, 6)}…`));
    expect(found).toEqual([]);
    // What it scanned is real: its environment and the files of its whole root filesystem (busybox included).
    expect(probes.get("env")).toContain("PATH=");
    expect((probes.get("files") ?? "").length).toBeGreaterThan(500_000);
  });

  it("a RUN --network=host step is refused by this podman, or where podman allows it, reaches nothing either", async () => {
    await createContextRepo(h.repos, "host-network", {
      Dockerfile: [
        `FROM ${env.baseImage}`,
        "RUN --network=host for port in 8888 2375; do printf 'GET /libpod/_ping HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc -w 2 127.0.0.1 $port; done; true",
        "",
      ].join("\n"),
    });
    await cluster.createRun(ns, "host-network", {
      pool: "builders",
      gitUrl: `${h.git.url}/host-network.git`,
      image: `${env.registry.host}/${ns}/host-network:1`,
      registrySecret: "registry",
      pullSecret: "puller",
      tlsVerify: "false",
    });
    const done = await cluster.waitForRun(ns, "host-network", 300_000);
    const log = await (await fetch(result(done, "LOG_URL") ?? "", { headers: { authorization: `Bearer ${env.tokens.admin}` } })).text();
    if (succeeded(done)?.reason === "BuildFailed") {
      // podman 4.3 (Debian 12's): RUN takes --mount only.
      expect(succeeded(done)?.message).toContain("RUN only supports the --mount flag");
    } else {
      expect(succeeded(done)?.reason, succeeded(done)?.message).toBe("Succeeded");
      expect(isPodman(log)).toBe(false);
    }
    await h.everyVMScratched(ns);
  });

  it("the same steps on a pool with podman-connection: tcp do reach podman, on the VM's own address: why that mode is for trusted builds only", async () => {
    await cluster.pool(ns, "trusted", 1, {}, { transport: "tcp" });
    await cluster.createRun(ns, "on-tcp", {
      pool: "trusted",
      gitUrl: `${h.git.url}/hostile.git`,
      image: `${env.registry.host}/${ns}/on-tcp:1`,
      registrySecret: "registry",
      pullSecret: "puller",
      tlsVerify: "false",
      buildArgs: ["PORTS=8888", "CONTROLLER_PORTS=", `RUN_NAMESPACE=${ns}`, "RUN_NAME=on-tcp"],
    });
    const done = await cluster.waitForRun(ns, "on-tcp", 300_000);
    expect(succeeded(done)?.reason, succeeded(done)?.message).toBe("Succeeded");
    const seen = await probeFiles(`${ns}/on-tcp:1`);
    const [vm] = (seen.get("addresses") ?? "").trim().split(" ");
    expect(isPodman(seen.get(`ping-${vm}-8888`) ?? "")).toBe(true);
    await h.everyVMScratched(ns);
  });
});
