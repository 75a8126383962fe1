import { ApiException, type KubernetesObject, type V1Secret } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import {
  knownPool,
  parsePoolTransport,
  POOL_SECRET_TTL_MS,
  PoolSecrets,
  PoolTransportError,
} from "../../../src/podman/pool-transport.js";

describe("parsePoolTransport: the pool's annotations choose how podman is reached", () => {
  it("is tcp only when the pool says so", () => {
    expect(parsePoolTransport("ns/pool", { "vmbuild.dev/podman-connection": "tcp", "other/annotation": "x" })).toEqual({ kind: "tcp" });
  });

  it("is ssh by default: a pool without annotations must name its Secret, and the message says how to opt out", () => {
    expect(parsePoolTransport("ns/pool", { "vmbuild.dev/ssh-secret": "build-vm-ssh" })).toMatchObject({ kind: "ssh", secret: "build-vm-ssh" });
    expect(() => parsePoolTransport("ns/pool", {})).toThrow(
      "VirtualMachinePool ns/pool: annotation vmbuild.dev/ssh-secret: expected the name of a Secret in the pool's namespace (it is missing); " +
        "builds reach podman over ssh unless the pool sets vmbuild.dev/podman-connection: tcp, which is for trusted builds only",
    );
  });

  it("is ssh with the Secret named, and podman remote's defaults for the rest", () => {
    expect(parsePoolTransport("ns/pool", { "vmbuild.dev/podman-connection": "ssh", "vmbuild.dev/ssh-secret": "build-vm-ssh" })).toEqual({
      kind: "ssh",
      secret: "build-vm-ssh",
      user: "root",
      port: 22,
      socketPath: "/run/podman/podman.sock",
    });
    expect(
      parsePoolTransport("ns/pool", {
        "vmbuild.dev/podman-connection": "ssh",
        "vmbuild.dev/ssh-secret": "build-vm-ssh",
        "vmbuild.dev/ssh-user": "core",
        "vmbuild.dev/ssh-port": "2222",
        "vmbuild.dev/podman-socket": "/run/user/1000/podman/podman.sock",
      }),
    ).toEqual({ kind: "ssh", secret: "build-vm-ssh", user: "core", port: 2222, socketPath: "/run/user/1000/podman/podman.sock" });
  });

  it.each([
    [{ "vmbuild.dev/podman-connection": "telnet" }, `annotation vmbuild.dev/podman-connection: expected "tcp" or "ssh" (got "telnet")`],
    [{ "vmbuild.dev/podman-connection": "ssh" }, "annotation vmbuild.dev/ssh-secret: expected the name of a Secret in the pool's namespace (it is missing)"],
    [{ "vmbuild.dev/podman-connection": "ssh", "vmbuild.dev/ssh-secret": "Other/Ns" }, `annotation vmbuild.dev/ssh-secret: expected the name of a Secret in the pool's namespace (got "Other/Ns")`],
    [{ "vmbuild.dev/podman-connection": "ssh", "vmbuild.dev/ssh-secret": "s", "vmbuild.dev/ssh-port": "70000" }, `annotation vmbuild.dev/ssh-port:`],
    [{ "vmbuild.dev/podman-connection": "ssh", "vmbuild.dev/ssh-secret": "s", "vmbuild.dev/ssh-user": "-oProxyCommand=x" }, `annotation vmbuild.dev/ssh-user: expected a user name`],
    [{ "vmbuild.dev/podman-connection": "ssh", "vmbuild.dev/ssh-secret": "s", "vmbuild.dev/podman-socket": "podman.sock" }, `annotation vmbuild.dev/podman-socket: expected an absolute path`],
  ])("refuses %j, naming the pool and the annotation", (annotations: Record<string, string>, message) => {
    expect(() => parsePoolTransport("ns/pool", annotations)).toThrow(PoolTransportError);
    expect(() => parsePoolTransport("ns/pool", annotations)).toThrow(`VirtualMachinePool ns/pool: ${message}`);
  });
});

describe("knownPool", () => {
  const pools = {
    get: (name: string, namespace?: string): KubernetesObject | undefined =>
      name === "builders" && namespace === "ns"
        ? { metadata: { name, namespace, annotations: { "vmbuild.dev/podman-connection": "ssh" } } }
        : undefined,
  };

  it("finds the pool a run's slot names, with its annotations", () => {
    expect(knownPool(pools, "ns/builders")).toEqual({
      namespace: "ns",
      name: "builders",
      annotations: { "vmbuild.dev/podman-connection": "ssh" },
    });
  });

  it("refuses a pool it does not know rather than guess the transport", () => {
    expect(() => knownPool(pools, "ns/gone")).toThrow(/VirtualMachinePool ns\/gone is not known/);
    expect(() => knownPool(pools, "ns/gone")).toThrow(PoolTransportError);
  });
});

describe("PoolSecrets", () => {
  const secret = (version: string): V1Secret => ({ metadata: { name: "vm-ssh", namespace: "ns", resourceVersion: version } });

  it("reads a Secret once per POOL_SECRET_TTL_MS, and again at once when asked for a fresh copy", async () => {
    let version = 1;
    let now = 0;
    const reads: string[] = [];
    const core = {
      readNamespacedSecret: async ({ name, namespace }: { name: string; namespace: string }) => {
        reads.push(`${namespace}/${name}`);
        return secret(String(version));
      },
    };
    const secrets = new PoolSecrets(core, () => now);
    expect(await secrets.read("ns", "vm-ssh")).toEqual({ secret: secret("1"), kept: false });
    version = 2;
    now = POOL_SECRET_TTL_MS - 1;
    expect(await secrets.read("ns", "vm-ssh")).toEqual({ secret: secret("1"), kept: true });
    expect(await secrets.read("ns", "vm-ssh", true)).toEqual({ secret: secret("2"), kept: false });
    now += POOL_SECRET_TTL_MS - 1;
    expect(await secrets.read("ns", "vm-ssh")).toEqual({ secret: secret("2"), kept: true });
    version = 3;
    now += 1;
    expect(await secrets.read("ns", "vm-ssh")).toEqual({ secret: secret("3"), kept: false });
    expect(await secrets.read("other", "vm-ssh")).toEqual({ secret: secret("3"), kept: false });
    expect(reads).toEqual(["ns/vm-ssh", "ns/vm-ssh", "ns/vm-ssh", "other/vm-ssh"]);
  });

  it("keeps nothing of a read that failed: the next build reads again", async () => {
    let missing = true;
    const core = {
      readNamespacedSecret: async () => {
        if (missing) throw new ApiException(404, "not found", {}, {});
        return secret("7");
      },
    };
    const secrets = new PoolSecrets(core, () => 0);
    await secrets.read("ns", "vm-ssh", false).then(
      () => expect.unreachable(),
      (err: unknown) => expect(err).toBeInstanceOf(ApiException),
    );
    missing = false;
    expect(await secrets.read("ns", "vm-ssh")).toEqual({ secret: secret("7"), kept: false });
  });
});
