import type { KubernetesObject, ObjectCache } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { CLAIM_TTL_MS, LeaseClaims } from "../../../src/cache/lease-claims.js";

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

describe("LeaseClaims", () => {
  it("shows a Lease we created until the informer has it, then the informer's copy", () => {
    const claims = new LeaseClaims();
    const inf = informer();
    const view = claims.over(inf.cache);
    const ours = lease("u1", "10", "ns/run/uid/0");
    claims.wrote(ours);
    expect(view.get(NAME, "ns")).toBe(ours);
    const delivered = lease("u1", "10", "ns/run/uid/0");
    inf.set(delivered);
    expect(view.get(NAME, "ns")).toBe(delivered);
  });

  it("shows our holder swap over the informer's older copy of the same Lease", () => {
    const claims = new LeaseClaims();
    const inf = informer();
    const view = claims.over(inf.cache);
    inf.set(lease("u1", "10", "vmbuild/warm"));
    claims.wrote(lease("u1", "11", "ns/run/uid/0"));
    expect(view.get(NAME, "ns")?.metadata?.resourceVersion).toBe("11");
    // The informer caught up, even past our version (the watch event came before our response).
    inf.set(lease("u1", "12", "ns/run/uid/0"));
    expect(view.get(NAME, "ns")?.metadata?.resourceVersion).toBe("12");
  });

  it("ends a claim on our release, and after the TTL when the informer never catches up", () => {
    let now = 0;
    const claims = new LeaseClaims(() => now);
    const view = claims.over(informer().cache);
    claims.wrote(lease("u1", "10", "a"));
    claims.released("ns", NAME);
    expect(view.get(NAME, "ns")).toBeUndefined();

    claims.wrote(lease("u3", "13", "c"));
    now += CLAIM_TTL_MS - 1;
    expect(view.get(NAME, "ns")?.metadata?.uid).toBe("u3");
    now += 1;
    expect(view.get(NAME, "ns")).toBeUndefined();
  });
});

describe("LeaseClaims while a write is in flight", () => {
  it("shows the VM taken by the sender until the response replaces the claim, or the failure drops it", () => {
    const claims = new LeaseClaims();
    const inf = informer();
    const view = claims.over(inf.cache);
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
