import { describe, expect, it } from "vitest";
import {
  keeperActions,
  nextIdleCheckMs,
  readWarmConfig,
  RETIRING_HOLDER,
  WARM_HOLDER,
  type WarmConfig,
} from "../../../src/pools/warm.js";
import type { VMView } from "../../../src/kubevirt/vm.js";

const T0 = Date.parse("2026-01-01T00:00:00.000Z");
const at = (s: number) => new Date(T0 + s * 1000);
const iso = (s: number) => at(s).toISOString();

const cold = (name: string): VMView => ({ name, wantsRunning: false });
const warm = (name: string, since = 0, ready = true): VMView => ({
  name,
  wantsRunning: true,
  vmi: { phase: "Running", ready, address: "10.0.0.1", deleting: false },
  leaseHolder: WARM_HOLDER,
  leasedSince: iso(since),
});
const handedBack = (name: string): VMView => ({ name, wantsRunning: false, leaseHolder: WARM_HOLDER, leasedSince: iso(0) });
const leased = (name: string): VMView => ({ ...warm(name), leaseHolder: "ns/run/uid/0" });
const retiring = (name: string, vm: Partial<VMView>): VMView => ({ name, wantsRunning: false, leaseHolder: RETIRING_HOLDER, ...vm });

const config: WarmConfig = { min: 2, max: 3, idleMs: 600_000 };
const kinds = (vms: VMView[], waiting = 0, now = 0, c: WarmConfig | "none" = config) =>
  keeperActions(c === "none" ? undefined : c, vms, waiting, at(now)).map((a) => `${a.kind}:${a.vm}`);

describe("readWarmConfig: a pool's warm settings from its annotations", () => {
  it("no warm-min: no warm VMs", () => expect(readWarmConfig({})).toEqual({}));
  it("min only: max = min, idle 30m", () =>
    expect(readWarmConfig({ "vmbuild.dev/warm-min": "2" })).toEqual({ config: { min: 2, max: 2, idleMs: 1_800_000 } }));
  it("all three", () =>
    expect(
      readWarmConfig({ "vmbuild.dev/warm-min": "1", "vmbuild.dev/warm-max": "4", "vmbuild.dev/warm-idle": "90s" }),
    ).toEqual({ config: { min: 1, max: 4, idleMs: 90_000 } }));
  it.each([
    [{ "vmbuild.dev/warm-min": "two" }, /warm-min: expected a whole number, got "two"/],
    [{ "vmbuild.dev/warm-min": "3", "vmbuild.dev/warm-max": "1" }, /warm-max: expected a whole number not below vmbuild.dev\/warm-min \(3\)/],
    [{ "vmbuild.dev/warm-min": "1", "vmbuild.dev/warm-idle": "soon" }, /warm-idle: expected a duration/],
  ])("%j is a problem naming the annotation", (annotations, message) => {
    const parsed = readWarmConfig(annotations);
    expect(parsed.config).toBeUndefined();
    expect(parsed.problem).toMatch(message);
  });
});

describe("keeperActions: what the keeper does next for one pool", () => {
  it("claims free VMs up to min", () => expect(kinds([cold("b"), cold("a"), cold("c")])).toEqual(["claim:a", "claim:b"]));
  it("counts booting warm VMs: no double claim", () =>
    expect(kinds([warm("a", 0, false), cold("b"), cold("c")])).toEqual(["claim:b"]));
  it("does not compete with queued runs for free VMs", () => expect(kinds([cold("a"), cold("b")], 1)).toEqual([]));
  it("boots a VM handed back after a scratch (fresh disk)", () =>
    expect(kinds([handedBack("a"), warm("b")])).toEqual(["start:a"]));
  it("leaves leased VMs alone", () => expect(kinds([leased("a"), leased("b"), warm("c"), warm("d")])).toEqual([]));
  it("retires the longest idle above min once idle past idle time", () =>
    expect(kinds([warm("a", 0), warm("b", 100), warm("c", 500)], 0, 601)).toEqual(["retire:a"]));
  it("keeps min even when idle", () => expect(kinds([warm("a", 0), warm("b", 0)], 0, 10_000)).toEqual([]));
  it("retires above max at once", () =>
    expect(kinds([warm("a", 10), warm("b", 0), warm("c", 20), warm("d", 30)], 0, 40)).toEqual(["retire:b"]));
  it("walks a retiring VM through stop, instance deletion and release", () => {
    expect(kinds([retiring("a", { wantsRunning: true }), warm("b"), warm("c")])).toEqual(["stop:a"]);
    expect(kinds([retiring("a", { vmi: { phase: "Running", ready: true, deleting: false } }), warm("b"), warm("c")])).toEqual([
      "deleteVMI:a",
    ]);
    expect(kinds([retiring("a", { vmi: { phase: "Running", ready: true, deleting: true } }), warm("b"), warm("c")])).toEqual([]);
    expect(kinds([retiring("a", {}), warm("b"), warm("c")])).toEqual(["release:a"]);
  });
  it("retires every warm VM of a pool that no longer has warm settings", () =>
    expect(kinds([warm("a"), warm("b"), cold("c")], 0, 0, "none")).toEqual(["retire:a", "retire:b"]));
});

describe("nextIdleCheckMs", () => {
  it("is the time until the longest idle VM above min reaches its idle time", () =>
    expect(nextIdleCheckMs(config, [warm("a", 0), warm("b", 100), warm("c", 200)], at(300))).toBe(300_000));
  it("is undefined at or below min", () => expect(nextIdleCheckMs(config, [warm("a"), warm("b")], at(0))).toBeUndefined());
});
