// The KubeVirt stand-in (hack/kubevirt-sim) against the testenv's real kube-apiserver: pools make VMs, running
// VMs get real podman build hosts, each in a network namespace of its own on the testenv's bridge, and every stop
// or VMI deletion scratches the host.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pack } from "tar-fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KubeClient } from "../../hack/kubevirt-sim/kube.js";
import { accepts } from "../../hack/kubevirt-sim/podman-service.js";
import { readRecord, scratchedVMs, startedVMs, type RecordEntry } from "../../hack/kubevirt-sim/record.js";
import { isAlive } from "../../hack/kubevirt-sim/processes.js";
import { pidFileFor, stateDirLayout } from "../../hack/kubevirt-sim/state-dir.js";
import {
  POOL_GROUP,
  POOL_KIND,
  POOL_PLURAL,
  POOL_REVISION_LABEL,
  VM,
  VMI,
  isReady,
  type ResourceRef,
  type VirtualMachine,
  type VirtualMachineInstance,
  type VirtualMachinePool,
} from "../../hack/kubevirt-sim/types.js";
import { waitForObject } from "../../hack/kubevirt-sim/wait.js";
import { readTestenv, type Testenv } from "../../hack/testenv/index.js";

/** The port of podman on simulated build hosts that serve it on TCP (the sim's default, like the VMs' 8888). */
const BUILD_HOST_PORT = 8888;
/** On the pool's VMs: podman on TCP, so this file can talk to the build host directly. */
const PODMAN_ON_TCP = { "sim.vmbuild.dev/podman-listen": "tcp" };
const WAIT_MS = 60_000;
const NAMESPACE = "default";
// Seed-article pools are v1alpha1; the sim watches the preferred version and must see them all the same.
const POOL_V1ALPHA1: ResourceRef = { group: POOL_GROUP, version: "v1alpha1", plural: POOL_PLURAL, kind: POOL_KIND };

function loadTestenv(): Testenv {
  // KUBEVIRT_SIM_TESTENV points at another env.json-shaped file, to run this file against a private control plane.
  const override = process.env["KUBEVIRT_SIM_TESTENV"];
  const env = override ? (JSON.parse(readFileSync(override, "utf8")) as Testenv) : readTestenv();
  if (env === undefined) throw new Error("the testenv is not up (.testenv/env.json missing): npm run testenv -- up");
  return env;
}

const suffix = Math.random().toString(36).slice(2, 7);
const poolName = `kvsim-${suffix}`;
const soloName = `kvsim-solo-${suffix}`;

let env: Testenv;
let client: KubeClient;

function record(): RecordEntry[] {
  return readRecord(env.simStateDir);
}

function entriesOf(vmiUid: string): RecordEntry[] {
  return record().filter((e) => e.vmi === vmiUid);
}

async function ping(ip: string): Promise<string> {
  const res = await fetch(`http://${ip}:${BUILD_HOST_PORT}/libpod/_ping`, { signal: AbortSignal.timeout(5000) });
  return res.text();
}

/** The error code a connection to the build host fails with, or "connected". */
async function connectError(ip: string): Promise<string> {
  try {
    await fetch(`http://${ip}:${BUILD_HOST_PORT}/libpod/_ping`, { signal: AbortSignal.timeout(5000) });
    return "connected";
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    return cause?.code ?? String(err);
  }
}

function waitVMIReady(name: string, notUid?: string): Promise<VirtualMachineInstance | undefined> {
  return waitForObject<VirtualMachineInstance>(
    client,
    VMI,
    NAMESPACE,
    name,
    (vmi) => vmi !== undefined && vmi.metadata.uid !== notUid && vmi.status?.phase === "Running" && isReady(vmi),
    WAIT_MS,
  );
}

async function readyVMI(name: string, notUid?: string): Promise<{ vmi: VirtualMachineInstance; ip: string }> {
  const vmi = await waitVMIReady(name, notUid);
  const ip = vmi?.status?.interfaces?.[0]?.ipAddress;
  if (vmi === undefined || ip === undefined) throw new Error(`VMI ${name} is Ready without an address`);
  return { vmi, ip };
}

function waitGone(ref: ResourceRef, name: string): Promise<unknown> {
  return waitForObject(client, ref, NAMESPACE, name, (obj) => obj === undefined, WAIT_MS);
}

function setRunStrategy(name: string, runStrategy: string): Promise<VirtualMachine> {
  // running: null drops the deprecated field: a VM may carry one of the two, not both.
  return client.mergePatch<VirtualMachine>(VM, NAMESPACE, name, { spec: { running: null, runStrategy } });
}

/**
 * The build host's scratch: podman dead, storage and PID file removed, and recorded. `ip` is checked to refuse
 * connections unless the address may already serve a successor.
 */
async function expectScratched(vmiUid: string, ip?: string): Promise<void> {
  const started = startedVMs(record()).find((e) => e.vmi === vmiUid);
  const scratched = scratchedVMs(record()).find((e) => e.vmi === vmiUid);
  expect(started?.storageDir).toBeTruthy();
  expect(scratched).toBeDefined();
  expect(scratched?.storageDir).toBe(started?.storageDir);
  expect(isAlive(started?.pid ?? 0)).toBe(false);
  expect(existsSync(started?.storageDir ?? "")).toBe(false);
  expect(existsSync(pidFileFor(stateDirLayout(env.simStateDir), vmiUid))).toBe(false);
  // The VM's network namespace (and so its address and every socket in it) went with it.
  expect(existsSync(`/run/netns/${env.network.bridge}.${vmiUid}`)).toBe(false);
  if (ip !== undefined) expect(await accepts(ip, 22, 1000)).toBe(false);
}

/** A build context tar holding one Dockerfile. */
async function contextTar(dockerfile: string): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), "kvsim-ctx-"));
  try {
    writeFileSync(join(dir, "Dockerfile"), dockerfile);
    const chunks: Buffer[] = [];
    for await (const chunk of pack(dir)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

beforeAll(() => {
  env = loadTestenv();
  client = new KubeClient(env.adminKubeconfig);
});

afterAll(async () => {
  if (client === undefined) return;
  await client.delete(POOL_V1ALPHA1, NAMESPACE, poolName);
  await client.delete(VM, NAMESPACE, soloName);
  // No garbage collector in the testenv: the sim deletes a deleted pool's VMs and their VMIs itself.
  const names = [`${poolName}-0`, `${poolName}-1`, soloName];
  await Promise.all(names.map((n) => waitGone(VM, n)));
  await Promise.all(names.map((n) => waitGone(VMI, n)));
  const ours = record().filter((e) => names.includes(e.vm));
  const unscratched = startedVMs(ours).filter((s) => !scratchedVMs(ours).some((x) => x.vmi === s.vmi));
  expect(unscratched).toEqual([]);
});

describe("kubevirt-sim", () => {
  let pool: VirtualMachinePool;

  it("creates a pool's VMs <pool>-0..n-1 owned by the pool", async () => {
    pool = await client.create<VirtualMachinePool>(POOL_V1ALPHA1, NAMESPACE, {
      apiVersion: `${POOL_GROUP}/v1alpha1`,
      kind: POOL_KIND,
      metadata: { name: poolName, namespace: NAMESPACE },
      spec: {
        replicas: 2,
        selector: { matchLabels: { "kubevirt.io/vmpool": poolName } },
        virtualMachineTemplate: {
          metadata: { labels: { "kubevirt.io/vmpool": poolName }, annotations: PODMAN_ON_TCP },
          spec: {
            running: false,
            template: { metadata: { labels: { "kubevirt.io/vmpool": poolName } }, spec: { domain: { devices: {} } } },
          },
        },
      },
    });
    for (const n of [0, 1]) {
      const vm = await waitForObject<VirtualMachine>(client, VM, NAMESPACE, `${poolName}-${n}`, (o) => o !== undefined, WAIT_MS);
      const owner = vm?.metadata.ownerReferences?.[0];
      expect(owner).toMatchObject({ kind: POOL_KIND, name: poolName, uid: pool.metadata.uid, controller: true });
      expect(vm?.metadata.labels?.["kubevirt.io/vmpool"]).toBe(poolName);
      expect(vm?.metadata.labels?.[POOL_REVISION_LABEL]).toBeTruthy();
      expect(vm?.spec?.running).toBe(false);
    }
    const vmi = await client.get<VirtualMachineInstance>(VMI, NAMESPACE, `${poolName}-0`);
    expect(vmi).toBeUndefined();
  });

  let first: { uid: string; ip: string };

  it("boots a podman build host when a VM's runStrategy becomes Always", async () => {
    const name = `${poolName}-0`;
    const t0 = Date.now();
    await setRunStrategy(name, "Always");
    const { vmi, ip } = await readyVMI(name);
    const readyMs = Date.now() - t0;
    first = { uid: vmi.metadata.uid, ip };
    // An address of the testenv's bridge, in a network namespace of the VM's own.
    expect(ip.split(".").slice(0, 3)).toEqual(env.network.gateway.split(".").slice(0, 3));
    expect(existsSync(`/run/netns/${env.network.bridge}.${vmi.metadata.uid}`)).toBe(true);
    expect(vmi.metadata.ownerReferences?.[0]).toMatchObject({ kind: "VirtualMachine", name, controller: true });
    expect(await ping(ip)).toBe("OK");
    expect(entriesOf(vmi.metadata.uid).map((e) => e.event)).toEqual(["vmi-created", "podman-started", "ready"]);
    const vm = await waitForObject<VirtualMachine>(client, VM, NAMESPACE, name, (o) => o?.status?.ready === true, WAIT_MS);
    expect(vm?.status).toMatchObject({ printableStatus: "Running", ready: true, created: true });
    console.log(`kubevirt-sim: runStrategy Always -> VMI Ready in ${readyMs} ms`);
  });

  it("runs multi-arch RUN steps on the build host without an isolation parameter", async () => {
    const tar = await contextTar(`FROM ${env.baseImage}\nRUN uname -m\n`);
    const { host, username, password } = env.registry;
    // X-Registry-Config: base64url of {registry: {username, password}}, with padding (see the podman notes).
    const registryConfig = Buffer.from(JSON.stringify({ [host]: { username, password } }))
      .toString("base64")
      .replace(/\+/g, "-")
      .replace(/\//g, "_");
    const query = "dockerfile=Dockerfile&platform=linux/amd64&platform=linux/arm64&manifest=kvsim-test";
    const res = await fetch(`http://${first.ip}:${BUILD_HOST_PORT}/v4.0.0/libpod/build?${query}`, {
      method: "POST",
      headers: { "Content-Type": "application/x-tar", "X-Registry-Config": registryConfig },
      body: tar,
      signal: AbortSignal.timeout(120_000),
    });
    const lines = (await res.text())
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map((l) => JSON.parse(l) as { stream?: string; error?: string });
    expect(lines.filter((l) => l.error !== undefined)).toEqual([]);
    const output = lines.map((l) => l.stream ?? "").join("");
    expect(output).toContain("x86_64");
    expect(output).toContain("aarch64");
  });

  it("scratches the build host when the VM is Halted", async () => {
    const name = `${poolName}-0`;
    await setRunStrategy(name, "Halted");
    await waitGone(VMI, name);
    await expectScratched(first.uid, first.ip);
    const events = entriesOf(first.uid).map((e) => e.event);
    expect(events.indexOf("scratched")).toBeGreaterThan(events.indexOf("ready"));
    const vm = await waitForObject<VirtualMachine>(
      client,
      VM,
      NAMESPACE,
      name,
      (o) => o?.status?.printableStatus === "Stopped",
      WAIT_MS,
    );
    expect(vm?.status).toMatchObject({ ready: false, created: false });
  });

  it("scratches a VMI deleted with grace period 0 and restarts the VM on a fresh disk", async () => {
    const name = `${poolName}-0`;
    await setRunStrategy(name, "Always");
    const before = await readyVMI(name);
    const t0 = Date.now();
    await client.delete(VMI, NAMESPACE, name, { gracePeriodSeconds: 0 });
    // The VMI's finalizer is only removed after the scratch, so "gone" already means "scratched".
    await waitForObject<VirtualMachineInstance>(
      client,
      VMI,
      NAMESPACE,
      name,
      (o) => o === undefined || o.metadata.uid !== before.vmi.metadata.uid,
      WAIT_MS,
    );
    const scratchMs = Date.now() - t0;
    // The freed address may already serve the successor: no connection check here.
    await expectScratched(before.vmi.metadata.uid);
    const after = await readyVMI(name, before.vmi.metadata.uid);
    expect(await ping(after.ip)).toBe("OK");
    const disks = startedVMs(record()).filter((e) => e.vmi === before.vmi.metadata.uid || e.vmi === after.vmi.metadata.uid);
    expect(new Set(disks.map((d) => d.storageDir)).size).toBe(2);
    console.log(`kubevirt-sim: VMI delete (grace 0) -> gone and scratched in ${scratchMs} ms`);
  });

  it("scales a pool down by deleting the highest index", async () => {
    await client.mergePatch<VirtualMachinePool>(POOL_V1ALPHA1, NAMESPACE, poolName, { spec: { replicas: 1 } });
    await waitGone(VM, `${poolName}-1`);
    expect(await client.get<VirtualMachine>(VM, NAMESPACE, `${poolName}-0`)).toBeDefined();
  });

  it("runs VMs that use the deprecated spec.running, by default with podman on its socket behind sshd", async () => {
    await client.create<VirtualMachine>(VM, NAMESPACE, {
      apiVersion: `${VM.group}/${VM.version}`,
      kind: VM.kind,
      metadata: { name: soloName, namespace: NAMESPACE, annotations: { "sim.vmbuild.dev/boot-delay-ms": "1500" } },
      spec: { running: true, template: { spec: { domain: { devices: {} } } } },
    });
    // While the guest boots, as KubeVirt reports it: Running with the pod network's address, not Ready, nothing
    // listening yet.
    const booting = await waitForObject<VirtualMachineInstance>(client, VMI, NAMESPACE, soloName, (o) => o?.status?.phase === "Running", WAIT_MS);
    const early = booting?.status?.interfaces?.[0]?.ipAddress;
    expect(booting?.status?.conditions).toEqual([expect.objectContaining({ type: "Ready", status: "False", reason: "PodNotReady" })]);
    expect(early).toBeTruthy();
    expect(await accepts(early ?? "", 22, 1000)).toBe(false);
    const { vmi, ip } = await readyVMI(soloName);
    expect(vmi.metadata.uid).toBe(booting?.metadata.uid);
    expect(ip).toBe(early);
    // The protected default: no TCP listener for podman, sshd on 22.
    expect(await connectError(ip)).toBe("ECONNREFUSED");
    expect(await accepts(ip, 22, 5000)).toBe(true);
    await client.mergePatch<VirtualMachine>(VM, NAMESPACE, soloName, { spec: { running: false } });
    await waitGone(VMI, soloName);
    await expectScratched(vmi.metadata.uid, ip);
  });
});
