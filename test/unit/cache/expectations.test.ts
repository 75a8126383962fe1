import type { KubernetesObject, ObjectCache } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { EXPECTATION_TTL_MS, Expectations } from "../../../src/cache/expectations.js";

const NAME = "vmbuild-vm-vm-0";
const lease = (uid: string, rv: string, holder: string): KubernetesObject => ({
  metadata: { namespace: "ns", name: NAME, uid, resourceVersion: rv },
  spec: { holderIdentity: holder },
} as KubernetesObject);

/** An informer cache whose content the test sets. */
function informer() {
  let current: KubernetesObject | undefined;
  const cache: ObjectCache<KubernetesObject> = {
    get: (name, namespace) => (current && name === NAME && namespace === "ns" ? current : undefined),
    list: () => (current ? [current] : []),
  };
  return { cache, set: (obj: KubernetesObject | undefined) => (current = obj) };
}

describe("Expectations of our Lease writes", () => {
  it("shows a Lease we created until the informer has it, then the informer's copy", () => {
    const claims = new Expectations();
    const inf = informer();
    const view = claims.overLeases(inf.cache);
    const ours = lease("u1", "10", "ns/run/uid/0");
    claims.wrote(ours);
    expect(view.get(NAME, "ns")).toBe(ours);
    const delivered = lease("u1", "10", "ns/run/uid/0");
    inf.set(delivered);
    expect(view.get(NAME, "ns")).toBe(delivered);
  });

  it("shows our holder swap over the informer's older copy of the same Lease", () => {
    const claims = new Expectations();
    const inf = informer();
    const view = claims.overLeases(inf.cache);
    inf.set(lease("u1", "10", "vmbuild/warm"));
    claims.wrote(lease("u1", "11", "ns/run/uid/0"));
    expect(view.get(NAME, "ns")?.metadata?.resourceVersion).toBe("11");
    // The informer caught up, even past our version (the watch event came before our response).
    inf.set(lease("u1", "12", "ns/run/uid/0"));
    expect(view.get(NAME, "ns")?.metadata?.resourceVersion).toBe("12");
  });

  it("ends a claim on our release, and after the TTL when the informer never catches up", () => {
    let now = 0;
    const claims = new Expectations(() => now);
    const view = claims.overLeases(informer().cache);
    claims.wrote(lease("u1", "10", "a"));
    claims.released("ns", NAME);
    expect(view.get(NAME, "ns")).toBeUndefined();

    claims.wrote(lease("u3", "13", "c"));
    now += EXPECTATION_TTL_MS - 1;
    expect(view.get(NAME, "ns")?.metadata?.uid).toBe("u3");
    now += 1;
    expect(view.get(NAME, "ns")).toBeUndefined();
  });

  it("hides a Lease we deleted while the informer still has it, but not a new Lease of that name", () => {
    const claims = new Expectations();
    const inf = informer();
    const view = claims.overLeases(inf.cache);
    inf.set(lease("u1", "10", "ns/run/uid/0"));
    claims.deletedLease("ns", NAME, "u1");
    // A run whose VMs go one by one, reconciled again before the delete event: it must not give vm-0 back twice.
    expect(view.get(NAME, "ns")).toBeUndefined();
    expect(claims.size).toBe(1);
    inf.set(lease("u2", "14", "ns/next/uid/0"));
    expect(view.get(NAME, "ns")?.metadata?.uid).toBe("u2");
    expect(claims.size).toBe(0);
  });

  it("after a release that found the Lease another's, shows the informer's copy", () => {
    const claims = new Expectations();
    const inf = informer();
    const view = claims.overLeases(inf.cache);
    claims.wrote(lease("u1", "10", "ns/run/uid/0"));
    inf.set(lease("u1", "11", "ns/other/uid/0"));
    claims.deletedLease("ns", NAME, undefined);
    expect(view.get(NAME, "ns")?.metadata?.resourceVersion).toBe("11");
    expect(claims.size).toBe(0);
  });
});

describe("Expectations of a Lease write in flight", () => {
  it("shows the VM taken by the sender until the response replaces the claim, or the failure drops it", () => {
    const claims = new Expectations();
    const inf = informer();
    const view = claims.overLeases(inf.cache);
    claims.sending("ns", NAME, "ns/run/uid/0");
    expect((view.get(NAME, "ns") as { spec?: { holderIdentity?: string } }).spec?.holderIdentity).toBe("ns/run/uid/0");
    claims.released("ns", NAME);
    expect(view.get(NAME, "ns")).toBeUndefined();

    claims.sending("ns", NAME, "ns/run/uid/0");
    const created = lease("u1", "10", "ns/run/uid/0");
    claims.wrote(created);
    expect(view.get(NAME, "ns")).toBe(created);
  });
});

const run = (name: string, rv: string): KubernetesObject => ({ metadata: { namespace: "ns", name, resourceVersion: rv } });

describe("Expectations of our run writes", () => {
  it("holds a run behind while the cache shows a copy we wrote over, then lets it through once", () => {
    const expectations = new Expectations();
    // Read 10, wrote the status (11), then removed the finalizer (12).
    expectations.wroteRun(run("a", "10"), ["10", "11"]);
    expect(expectations.runBehind(run("a", "10"))).toBe(true);
    expect(expectations.runBehind(run("a", "11"))).toBe(true);
    expect(expectations.runBehind(run("b", "10"))).toBe(false);
    expect(expectations.runBehind(run("a", "12"))).toBe(false);
    // Caught up: the expectation is gone, whatever the cache shows next.
    expect(expectations.runBehind(run("a", "10"))).toBe(false);
    expect(expectations.size).toBe(0);
  });

  it("never holds back a copy without a resourceVersion", () => {
    const expectations = new Expectations();
    expectations.wroteRun(run("a", "10"), ["10"]);
    expect(expectations.runBehind({ metadata: { namespace: "ns", name: "a" } })).toBe(false);
  });

  it("ends on the informer event that brings the newer copy, with no reconcile reading it", () => {
    const expectations = new Expectations();
    expectations.wroteRun(run("a", "10"), ["10", "11"]);
    expectations.observed("runs", run("a", "11"));
    expect(expectations.size).toBe(1);
    expectations.observed("runs", run("a", "12"));
    expect(expectations.size).toBe(0);
  });

  it("keeps no entry for runs deleted before they were reconciled again", () => {
    const expectations = new Expectations();
    for (let i = 0; i < 1_000; i++) {
      expectations.wroteRun(run(`r${i}`, "10"), ["10"]);
      // The run's finalizer removal was its last write: the informer's delete is what it shows next.
      expectations.deleted("runs", run(`r${i}`, "10"));
    }
    expect(expectations.size).toBe(0);
  });

  it("drops what the informer never delivers after the TTL, at the next write", () => {
    let now = 0;
    const expectations = new Expectations(() => now);
    for (let i = 0; i < 1_000; i++) expectations.wroteRun(run(`r${i}`, "10"), ["10"]);
    expect(expectations.size).toBe(1_000);
    now += EXPECTATION_TTL_MS;
    expect(expectations.runBehind(run("r0", "10"))).toBe(false);
    expectations.wroteRun(run("next", "20"), ["20"]);
    expect(expectations.size).toBe(1);
  });
});

describe("Expectations and the Lease informer's events", () => {
  it("ends a Lease claim on the event that delivers it", () => {
    const claims = new Expectations();
    claims.wrote(lease("u1", "11", "ns/run/uid/0"));
    claims.observed("leases", lease("u1", "10", "vmbuild/warm"));
    expect(claims.size).toBe(1);
    claims.observed("leases", lease("u1", "11", "ns/run/uid/0"));
    expect(claims.size).toBe(0);
  });

  it("ends a claim on a deleted Lease, but not a create of ours in flight for its successor", () => {
    const claims = new Expectations();
    const view = claims.overLeases(informer().cache);
    claims.wrote(lease("u1", "10", "ns/run/uid/0"));
    claims.deleted("leases", lease("u1", "10", "ns/run/uid/0"));
    expect(view.get(NAME, "ns")).toBeUndefined();

    claims.sending("ns", NAME, "ns/other/uid/0");
    claims.deleted("leases", lease("u1", "12", "ns/run/uid/0"));
    expect((view.get(NAME, "ns") as { spec?: { holderIdentity?: string } }).spec?.holderIdentity).toBe("ns/other/uid/0");
  });

  it("keeps a run's and a Lease's expectations apart when their names are the same", () => {
    const expectations = new Expectations();
    expectations.wroteRun(run(NAME, "10"), ["10"]);
    expectations.wrote(lease("u1", "10", "ns/run/uid/0"));
    expectations.observed("leases", lease("u1", "10", "ns/run/uid/0"));
    expect(expectations.runBehind(run(NAME, "10"))).toBe(true);
  });
});

describe("Expectations of our VM starts and stops", () => {
  const vm = (rv: string, runStrategy: string, uid = "u1"): KubernetesObject =>
    ({ metadata: { namespace: "ns", name: "vm-0", uid, resourceVersion: rv }, spec: { runStrategy } }) as KubernetesObject;
  const strategy = (obj: KubernetesObject | undefined) => (obj as { spec?: { runStrategy?: string } } | undefined)?.spec?.runStrategy;
  function vmInformer(initial: KubernetesObject) {
    let current: KubernetesObject | undefined = initial;
    const other = { metadata: { namespace: "ns", name: "vm-1", uid: "u2", resourceVersion: "5" }, spec: {} } as KubernetesObject;
    const cache: ObjectCache<KubernetesObject> = {
      get: (name, namespace) => [current, other].find((o) => o?.metadata?.name === name && namespace === "ns"),
      list: () => [current, other].filter((o): o is KubernetesObject => o !== undefined),
    };
    return { cache, set: (obj: KubernetesObject | undefined) => (current = obj) };
  }

  it("shows a VM we started, to get and list, until the informer has the start: a run ending at once still scratches it", () => {
    const expectations = new Expectations();
    const inf = vmInformer(vm("10", "Halted"));
    const view = expectations.overVMs(inf.cache);
    expectations.wroteVM(vm("11", "Always"));
    expect(strategy(view.get("vm-0", "ns"))).toBe("Always");
    expect(view.list("ns").map(strategy)).toEqual(["Always", undefined]);
    // The informer caught up, past our version (someone changed the VM again since, still running).
    inf.set(vm("12", "Always"));
    expect(view.get("vm-0", "ns")?.metadata?.resourceVersion).toBe("12");
    expect(expectations.size).toBe(0);
  });

  it("ends on the informer event that delivers our write, or its delete; a VM no longer cached is not shown", () => {
    const expectations = new Expectations();
    expectations.wroteVM(vm("11", "Halted"));
    expectations.observed("vms", vm("10", "Always"));
    expect(expectations.size).toBe(1);
    expectations.observed("vms", vm("11", "Halted"));
    expect(expectations.size).toBe(0);

    expectations.wroteVM(vm("13", "Halted"));
    expectations.deleted("vms", vm("13", "Halted"));
    expect(expectations.size).toBe(0);

    const inf = vmInformer(vm("10", "Always"));
    const view = expectations.overVMs(inf.cache);
    expectations.wroteVM(vm("14", "Halted"));
    inf.set(undefined);
    expect(view.get("vm-0", "ns")).toBeUndefined();
    expect(view.list("ns").map((o) => o.metadata?.name)).toEqual(["vm-1"]);
  });

  it("does not show ours over a new VM of the same name (the pool made it anew)", () => {
    const expectations = new Expectations();
    const inf = vmInformer(vm("10", "Halted"));
    const view = expectations.overVMs(inf.cache);
    expectations.wroteVM(vm("11", "Always"));
    inf.set(vm("20", "Halted", "u9"));
    expect(view.get("vm-0", "ns")?.metadata?.uid).toBe("u9");
  });
});

describe("Expectations of a Lease write of ours that failed", () => {
  it("ends only our own claim: a write of another holder that replaced it while ours was in flight stays shown", () => {
    const claims = new Expectations();
    const view = claims.overLeases(informer().cache);
    claims.sending("ns", NAME, "ns/run/uid/0");
    // The warm keeper's create won; ours gets a 409.
    const keepers = lease("u1", "10", "vmbuild/warm");
    claims.wrote(keepers);
    claims.released("ns", NAME, "ns/run/uid/0");
    expect(view.get(NAME, "ns")).toBe(keepers);

    // Our own claim, failed: ended.
    claims.released("ns", NAME);
    claims.sending("ns", NAME, "ns/run/uid/0");
    claims.released("ns", NAME, "ns/run/uid/0");
    expect(view.get(NAME, "ns")).toBeUndefined();
  });
});
