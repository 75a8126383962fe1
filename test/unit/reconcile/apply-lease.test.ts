import { ApiException, type KubernetesObject, type ObjectCache, type V1Lease } from "@kubernetes/client-node";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { Expectations } from "../../../src/cache/expectations.js";
import type { Caches } from "../../../src/cache/caches.js";
import type { Kube } from "../../../src/kube/client.js";
import { holderIdentity, leaseName } from "../../../src/lease/holder.js";
import { apply, type ApplyDeps } from "../../../src/reconcile/apply.js";
import type { Decision } from "../../../src/reconcile/decide/index.js";
import type { Observation } from "../../../src/reconcile/observation.js";
import type { CustomRun } from "../../../src/tekton/customrun.js";

// A Lease create racing the informer's copy: run A creates VM vm-0's Lease while run B, whose decision was taken
// from an older view (before its addFinalizer returned), sends its own create for the same VM.

const NS = "ns";
const POOL = "ns/pool";
const VM = "vm-0";
const LEASE = leaseName(VM);

const runOf = (name: string, uid: string) =>
  ({ metadata: { namespace: NS, name, uid, resourceVersion: "1" }, spec: {} }) as unknown as CustomRun;
const A = runOf("a", "uid-a");
const B = runOf("b", "uid-b");
const HOLDER_A = holderIdentity(A.metadata, 0);
const HOLDER_B = holderIdentity(B.metadata, 0);

/** The apiserver's Leases: exactly one create of a name succeeds; `hold()` keeps the next create in flight. */
function apiserver() {
  const stored = new Map<string, V1Lease>();
  let version = 100;
  let gate: Promise<void> | undefined;
  let creates = 0;
  let deletes = 0;
  const coordination = {
    deleteNamespacedLease: async ({ namespace, name, body }: { namespace: string; name: string; body: { preconditions?: { uid?: string } } }) => {
      deletes += 1;
      const key = `${namespace}/${name}`;
      if (!stored.has(key)) throw new ApiException(404, "NotFound", {}, {});
      if (stored.get(key)?.metadata?.uid !== body.preconditions?.uid) throw new ApiException(409, "Conflict", {}, {});
      stored.delete(key);
    },
    createNamespacedLease: async ({ namespace, body }: { namespace: string; body: V1Lease }) => {
      creates += 1;
      if (gate) await gate;
      const key = `${namespace}/${body.metadata?.name ?? ""}`;
      if (stored.has(key)) throw new ApiException(409, "AlreadyExists", {}, {});
      const made: V1Lease = { ...body, metadata: { ...body.metadata, uid: `uid-${key}`, resourceVersion: String(++version) } };
      stored.set(key, made);
      return made;
    },
  };
  return {
    kube: { coordination } as unknown as Kube,
    stored: (name: string) => stored.get(`${NS}/${name}`),
    creates: () => creates,
    deletes: () => deletes,
    hold: () => {
      let open!: () => void;
      gate = new Promise<void>((resolve) => (open = resolve));
      return () => {
        gate = undefined;
        open();
      };
    },
  };
}

/** The Lease informer, delivering only when the test says. */
function informer() {
  let current: KubernetesObject | undefined;
  const cache: ObjectCache<KubernetesObject> = {
    get: (name, namespace) => (current && name === LEASE && namespace === NS ? current : undefined),
    list: () => (current ? [current] : []),
  };
  return { cache, deliver: (obj: KubernetesObject | undefined) => (current = obj) };
}

function setup() {
  const api = apiserver();
  const inf = informer();
  const expectations = new Expectations();
  const leases = expectations.overLeases(inf.cache);
  const deps: ApplyDeps = {
    kube: api.kube,
    caches: { leases } as unknown as Caches,
    log: pino({ level: "silent" }),
    startJob: () => undefined,
    connectJob: () => undefined,
    cancelJob: () => undefined,
    metrics: { scratchFailed: () => undefined },
    expectations,
  };
  const acquire = (run: CustomRun, holder: string) => {
    const decision: Decision = {
      actions: [{ kind: "acquireLease", pool: POOL, vm: VM, holder, fromWarm: false }],
      removeFinalizer: false,
      events: [],
    };
    const obs = { now: new Date(0) } as Observation;
    return apply(deps, run as unknown as KubernetesObject, run, obs, decision);
  };
  const release = (run: CustomRun, holder: string) => {
    const decision: Decision = {
      actions: [{ kind: "releaseLease", pool: POOL, vm: VM, holder, toWarm: false }],
      removeFinalizer: false,
      events: [],
    };
    return apply(deps, run as unknown as KubernetesObject, run, { now: new Date(0) } as Observation, decision);
  };
  /** Who holds vm-0 as every decision reads it (heldLeases, heldVM): A's pass must see A. */
  const holderSeen = () => (leases.get(LEASE, NS) as V1Lease | undefined)?.spec?.holderIdentity;
  return { api, inf, acquire, release, holderSeen };
}

describe("apply: a Lease create racing another run's, before the informer has the winner's Lease", () => {
  it("never shows the winner's fresh Lease as the loser's, while the loser's create is in flight or after it failed", async () => {
    const { api, acquire, holderSeen } = setup();
    expect(await acquire(A, HOLDER_A)).toBe("unchanged");
    expect(holderSeen()).toBe(HOLDER_A);

    // B decided on vm-0 from a view where it was free; its create goes out now, and takes a while.
    const open = api.hold();
    const b = acquire(B, HOLDER_B);
    // A's next pass in that window: its Lease must still read as its own, or it gives up the VM it just started.
    expect(holderSeen()).toBe(HOLDER_A);
    open();
    expect(await b).toBe("leaseTaken");
    // And after B's failure: not free either (B's release of its claim must not end A's).
    expect(holderSeen()).toBe(HOLDER_A);
    expect(api.stored(LEASE)?.spec?.holderIdentity).toBe(HOLDER_A);
  });

  it("also once the informer has delivered the winner's Lease (the winner's own claim already ended)", async () => {
    const { api, inf, acquire, holderSeen } = setup();
    await acquire(A, HOLDER_A);
    inf.deliver(api.stored(LEASE));
    expect(holderSeen()).toBe(HOLDER_A);

    const open = api.hold();
    const b = acquire(B, HOLDER_B);
    expect(holderSeen()).toBe(HOLDER_A);
    open();
    expect(await b).toBe("leaseTaken");
    expect(holderSeen()).toBe(HOLDER_A);
  });

  it("sends no create for a VM whose Lease it already sees held by another: the apiserver would refuse it", async () => {
    const { api, acquire } = setup();
    await acquire(A, HOLDER_A);
    expect(api.creates()).toBe(1);
    expect(await acquire(B, HOLDER_B)).toBe("leaseTaken");
    expect(api.creates()).toBe(1);
  });
});

describe("apply: releasing a Lease the informer still shows", () => {
  it("hides it from the passes after the delete (a run whose VMs go one by one gives each back once), not a new one", async () => {
    const { api, inf, acquire, release, holderSeen } = setup();
    await acquire(A, HOLDER_A);
    inf.deliver(api.stored(LEASE));
    await release(A, HOLDER_A);
    expect(api.deletes()).toBe(1);
    expect(api.stored(LEASE)).toBeUndefined();
    // The informer has not delivered the delete: every later pass still sees vm-0 free.
    expect(holderSeen()).toBeUndefined();
    // B takes vm-0 at once; its new Lease shows, though the informer still holds A's old copy.
    await acquire(B, HOLDER_B);
    expect(holderSeen()).toBe(HOLDER_B);
    inf.deliver(api.stored(LEASE));
    expect(holderSeen()).toBe(HOLDER_B);
  });
});
