import type { KubernetesObject, ObjectCache } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { Caches } from "../../../src/cache/caches.js";
import { holderIdentity, leaseName } from "../../../src/lease/holder.js";
import { observe } from "../../../src/reconcile/observe.js";
import { parseRun } from "../../../src/tekton/customrun.js";

// observe reads the caches into decide's input; here, what it still sees of a run's VM once the VM or its pool is
// deleted (what the scratch works from).

function cache(objects: object[]): ObjectCache<KubernetesObject> {
  const all = objects as KubernetesObject[];
  return {
    get: (name, namespace) => all.find((o) => o.metadata?.name === name && o.metadata?.namespace === namespace),
    list: (namespace) => all.filter((o) => namespace === undefined || o.metadata?.namespace === namespace),
  };
}

const RUN = { namespace: "ns", name: "run", uid: "uid-1" };
const ME = holderIdentity(RUN, 0);
const rawRun = {
  apiVersion: "tekton.dev/v1beta1",
  kind: "CustomRun",
  metadata: { ...RUN, resourceVersion: "1" },
  spec: {
    customRef: { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild" },
    params: [
      { name: "pool", value: "builders" },
      { name: "gitUrl", value: "https://git.test/app.git" },
      { name: "image", value: "registry.test/app:1" },
    ],
  },
  status: {
    startTime: "2026-01-01T00:00:00Z",
    extraFields: {
      phase: "Building",
      attempt: 0,
      slots: [{ platforms: ["linux/amd64"], pool: "ns/builders", vm: "builders-0" }],
      queuedAt: "2026-01-01T00:00:00Z",
      phaseSince: "2026-01-01T00:00:00Z",
    },
  },
};
const pool = { metadata: { namespace: "ns", name: "builders" }, spec: {} };
const owned = { ownerReferences: [{ kind: "VirtualMachinePool", name: "builders" }] };
const vm = (name: string, runStrategy: string, owner = true) => ({
  metadata: { namespace: "ns", name, ...(owner ? owned : {}) },
  spec: { runStrategy },
});
const vmi = (name: string, deleting = false) => ({
  metadata: { namespace: "ns", name, ...(deleting ? { deletionTimestamp: "2026-01-01T00:00:01Z" } : {}) },
  status: { phase: "Running" },
});
const lease = (vmName: string, holder: string) => ({
  metadata: { namespace: "ns", name: leaseName(vmName), labels: { "vmbuild.dev/vm": vmName, "vmbuild.dev/pool": "builders" } },
  spec: { holderIdentity: holder },
});

function observed(objects: { pools?: object[]; vms?: object[]; vmis?: object[]; leases?: object[] }) {
  const caches: Caches = {
    runs: cache([rawRun]),
    vmbuilds: cache([]),
    pools: cache(objects.pools ?? []),
    vms: cache(objects.vms ?? []),
    vmis: cache(objects.vmis ?? []),
    leases: cache(objects.leases ?? []),
    queue: () => [],
  };
  const parsed = parseRun(rawRun);
  if (!parsed.run) throw new Error(parsed.problem);
  return observe(parsed, { caches, job: () => undefined, now: new Date("2026-01-01T00:01:00Z"), publicURL: "http://c" });
}

describe("observe: a run's VM its pool no longer shows", () => {
  it("the pool deleted, its VM still there and running: seen by name, with our Lease, and held", () => {
    const obs = observed({ vms: [vm("builders-0", "Always", false)], vmis: [vmi("builders-0")], leases: [lease("builders-0", ME)] });
    expect(obs.pools["ns/builders"]?.found).toBe(false);
    expect(obs.unpooled?.["ns/builders-0"]).toMatchObject({ name: "builders-0", wantsRunning: true, vmi: { deleting: false }, leaseHolder: ME });
    expect(obs.held).toEqual(["builders-0"]);
  });

  it("the VM deleted, its instance still going away: the instance is seen, with our Lease", () => {
    const obs = observed({
      pools: [pool],
      vms: [vm("builders-1", "Halted")],
      vmis: [vmi("builders-0", true)],
      leases: [lease("builders-0", ME)],
    });
    expect(obs.unpooled?.["ns/builders-0"]).toMatchObject({ wantsRunning: false, vmi: { deleting: true }, leaseHolder: ME });
    expect(obs.held).toEqual(["builders-0"]);
  });

  it("only the Lease left, another run's: seen as theirs, not held", () => {
    const obs = observed({ leases: [lease("builders-0", "ns/other/uid-2/0")] });
    expect(obs.unpooled?.["ns/builders-0"]).toEqual({ name: "builders-0", wantsRunning: false, leaseHolder: "ns/other/uid-2/0" });
    expect(obs.held).toEqual([undefined]);
  });

  it("nothing left of it: nothing seen; a VM its pool shows is not listed apart", () => {
    expect(observed({}).unpooled).toBeUndefined();
    expect(observed({ pools: [pool], vms: [vm("builders-0", "Always")], leases: [lease("builders-0", ME)] }).unpooled).toBeUndefined();
  });
});

describe("observe: a pool whose transport annotations are unusable", () => {
  // PoolSchema needs the template's architecture path; the minimal pool above stands for "not found" cases.
  const template = { virtualMachineTemplate: { spec: { template: { spec: {} } } } };
  const poolWith = (annotations: Record<string, string>) => ({ metadata: { namespace: "ns", name: "builders", annotations }, spec: template });

  it("a pool without vmbuild.dev/ssh-secret (ssh is the default): the plan names the annotation and how to opt out", () => {
    const obs = observed({ pools: [poolWith({})] });
    expect(obs.plan).toEqual({
      ok: false,
      reason: "PoolMisconfigured",
      message:
        "VirtualMachinePool ns/builders: annotation vmbuild.dev/ssh-secret: expected the name of a Secret in the pool's namespace (it is missing); " +
        "builds reach podman over ssh unless the pool sets vmbuild.dev/podman-connection: tcp, which is for trusted builds only",
    });
  });

  it("a pool naming its Secret, or saying tcp: the plan is made", () => {
    expect(observed({ pools: [poolWith({ "vmbuild.dev/ssh-secret": "build-vm-ssh" })] }).plan?.ok).toBe(true);
    expect(observed({ pools: [poolWith({ "vmbuild.dev/podman-connection": "tcp" })] }).plan?.ok).toBe(true);
    expect(observed({ pools: [poolWith({ "vmbuild.dev/podman-connection": "telnet" })] }).plan).toMatchObject({ ok: false, reason: "PoolMisconfigured" });
  });
});

describe("observe: what a run's settings come from", () => {
  const spec = { pool: "builders", gitUrl: "https://git.test/app.git", image: "registry.test/app:1" };
  const vmbuild = (image: string) => ({ metadata: { namespace: "ns", name: "app" }, spec: { ...spec, image } });
  const byName = (extraFields?: object, params: object[] = []) => ({
    ...rawRun,
    spec: { customRef: { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild", name: "app" }, params },
    status: extraFields ? { ...rawRun.status, extraFields } : {},
  });
  const embedded = (image: string, extraFields?: object) => ({
    ...rawRun,
    spec: { customSpec: { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild", spec: { ...spec, image } } },
    status: extraFields ? { ...rawRun.status, extraFields } : {},
  });
  function settings(raw: object, vmbuilds: object[]) {
    const caches: Caches = {
      runs: cache([raw]),
      vmbuilds: cache(vmbuilds),
      pools: cache([pool]),
      vms: cache([]),
      vmis: cache([]),
      leases: cache([]),
      queue: () => [],
    };
    const parsed = parseRun(raw);
    if (!parsed.run) throw new Error(parsed.problem);
    return observe(parsed, { caches, job: () => undefined, now: new Date("2026-01-01T00:01:00Z"), publicURL: "http://c" }).settings;
  }
  const tag = (value: string) => [{ name: "image", value }];

  it("a new run: the VMBuild from the cache (less the fields params override) and the params, handed on to be kept", () => {
    const { image: _image, ...notOverridden } = spec;
    expect(settings(byName(undefined, tag("registry.test/app:3")), [vmbuild("registry.test/app:2")])).toEqual({
      ok: true,
      settings: expect.objectContaining({ image: "registry.test/app:3" }),
      inputs: { vmbuild: notOverridden, params: tag("registry.test/app:3") },
    });
    expect(settings(byName(undefined, tag("")), [vmbuild("registry.test/app:2")])).toMatchObject({
      settings: { image: "registry.test/app:2" },
      inputs: { vmbuild: { ...spec, image: "registry.test/app:2" }, params: tag("") },
    });
    expect(settings(embedded("registry.test/app:2"), [])).toMatchObject({
      ok: true,
      inputs: { vmbuild: { ...spec, image: "registry.test/app:2" }, params: [] },
    });
  });

  it("a run under way: the spec and params its state kept, whatever the VMBuild and the run's params are now", () => {
    const admitted = { ...rawRun.status.extraFields, vmbuild: { ...spec, image: "registry.test/app:1" } };
    expect(settings(byName(admitted), [vmbuild("registry.test/app:2")])).toMatchObject({ ok: true, settings: { image: "registry.test/app:1" } });
    expect(settings(byName(admitted), [])).toMatchObject({ ok: true, settings: { image: "registry.test/app:1" } });
    const withParams = { ...admitted, params: tag("registry.test/app:4") };
    expect(settings(byName(withParams, tag("registry.test/app:5")), [])).toMatchObject({ ok: true, settings: { image: "registry.test/app:4" } });
    expect(settings(embedded("registry.test/app:2", withParams), [])).toMatchObject({ ok: true, settings: { image: "registry.test/app:4" } });
  });

  it("a run under way whose params were edited into malformed ones goes on with those it kept; a new one cannot start", () => {
    const withParams = { ...rawRun.status.extraFields, vmbuild: spec, params: tag("registry.test/app:4") };
    const malformed = [{ name: "image", value: 7 }];
    expect(settings(byName(withParams, malformed), [])).toMatchObject({ ok: true, settings: { image: "registry.test/app:4" } });
    expect(settings(byName(undefined, malformed), [vmbuild("registry.test/app:2")])).toMatchObject({
      ok: false,
      reason: "InvalidParams",
      message: expect.stringMatching(/^the CustomRun's spec is malformed: spec\.params\.0\.value: /),
    });
    const badTimeout = { ...byName(withParams, malformed), spec: { ...byName(withParams, malformed).spec, timeout: "1d" } };
    expect(settings(badTimeout, [])).toMatchObject({ ok: false, message: expect.stringMatching(/spec\.timeout/) });
  });

  it("a run under way from before the spec was kept: the VMBuild and params as they are now", () => {
    expect(settings(byName(rawRun.status.extraFields), [vmbuild("registry.test/app:2")])).toMatchObject({ ok: true, settings: { image: "registry.test/app:2" } });
    expect(settings(byName(rawRun.status.extraFields), [])).toMatchObject({ ok: false, reason: "VMBuildNotFound" });
    expect(settings(embedded("registry.test/app:2", rawRun.status.extraFields), [])).toMatchObject({ ok: true, settings: { image: "registry.test/app:2" } });
  });
});
