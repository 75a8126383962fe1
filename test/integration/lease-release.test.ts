import type { V1Lease } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { leaseName } from "../../src/lease/holder.js";
import { acquireVMLease, releaseVMLease, swapLeaseHolder } from "../../src/lease/leases.js";
import { openHarness, type Harness } from "../support/harness.js";

// Releasing with the informer's copy of the Lease: one delete when the copy is current, and never another
// holder's Lease when it is stale.

describe("releaseVMLease with a cached copy", () => {
  let h: Harness;
  let ns: string;

  beforeAll(async () => {
    h = await openHarness("lease-release");
    ns = await h.cluster.namespace("lease-release");
  });

  afterAll(async () => {
    await h?.close();
  });

  const read = (vm: string) =>
    h.cluster.coordination.readNamespacedLease({ name: leaseName(vm), namespace: ns }).catch(() => undefined);

  it("deletes with the copy's uid and resourceVersion when the copy is current", async () => {
    await acquireVMLease(h.cluster.coordination, { namespace: ns, pool: "p", vm: "vm-0" }, "ns/a/uid-a/0", new Date());
    const cached = (await read("vm-0")) as V1Lease;
    // The uid deleted: the controller hides that Lease's cached copy until its informer drops it.
    expect(await releaseVMLease(h.cluster.coordination, { namespace: ns, vm: "vm-0" }, "ns/a/uid-a/0", cached)).toBe(cached.metadata?.uid);
    expect(await read("vm-0")).toBeUndefined();
    // Again with the same (now stale) copy, as a pass deciding on it would: the Lease is gone either way.
    expect(await releaseVMLease(h.cluster.coordination, { namespace: ns, vm: "vm-0" }, "ns/a/uid-a/0", cached)).toBe(cached.metadata?.uid);
  });

  it("leaves another holder's Lease alone when the copy is stale (the holder changed since)", async () => {
    await acquireVMLease(h.cluster.coordination, { namespace: ns, pool: "p", vm: "vm-1" }, "ns/a/uid-a/0", new Date());
    const stale = (await read("vm-1")) as V1Lease;
    await swapLeaseHolder(h.cluster.coordination, { namespace: ns, vm: "vm-1" }, "ns/a/uid-a/0", "ns/b/uid-b/0", new Date());
    expect(await releaseVMLease(h.cluster.coordination, { namespace: ns, vm: "vm-1" }, "ns/a/uid-a/0", stale)).toBeUndefined();
    expect((await read("vm-1"))?.spec?.holderIdentity).toBe("ns/b/uid-b/0");
  });
});
