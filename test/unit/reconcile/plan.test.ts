import { describe, expect, it } from "vitest";
import { planSlots } from "../../../src/reconcile/plan.js";
import { platformTag as tagOf } from "../../../src/jobs/build.js";

const arm = { key: "ns/arm", architecture: "arm64" };
const s390 = { key: "ns/s390", architecture: "s390x" };
const two = ["linux/amd64", "linux/arm64"];

describe("planSlots: which VMs a run needs", () => {
  const rows: {
    name: string;
    strategy: "single" | "fanout";
    platforms: string[];
    emulation?: string;
    natives?: { key: string; architecture: string | undefined }[];
    slots?: { platforms: string[]; pool: string }[];
    error?: RegExp;
  }[] = [
    {
      name: "single: every platform on one VM of the emulation pool",
      strategy: "single",
      platforms: two,
      emulation: "ns/emu",
      slots: [{ platforms: two, pool: "ns/emu" }],
    },
    {
      name: "single: one native pool serving every platform is used instead",
      strategy: "single",
      platforms: ["linux/arm64", "linux/arm64/v8"],
      emulation: "ns/emu",
      natives: [arm],
      slots: [{ platforms: ["linux/arm64", "linux/arm64/v8"], pool: "ns/arm" }],
    },
    {
      name: "single: platforms spanning architectures go to the emulation pool",
      strategy: "single",
      platforms: two,
      emulation: "ns/emu",
      natives: [arm],
      slots: [{ platforms: two, pool: "ns/emu" }],
    },
    {
      name: "single without an emulation pool and no native pool for all: error naming pool",
      strategy: "single",
      platforms: two,
      natives: [arm],
      error: /^pool is required: strategy "single" builds linux\/amd64, linux\/arm64 on one VM/,
    },
    {
      name: "fanout: one VM per platform, native where there is a pool, emulation elsewhere",
      strategy: "fanout",
      platforms: ["linux/amd64", "linux/arm64", "linux/s390x"],
      emulation: "ns/emu",
      natives: [arm, s390],
      slots: [
        { platforms: ["linux/amd64"], pool: "ns/emu" },
        { platforms: ["linux/arm64"], pool: "ns/arm" },
        { platforms: ["linux/s390x"], pool: "ns/s390" },
      ],
    },
    {
      name: "fanout: two platforms on the same emulation pool need two of its VMs",
      strategy: "fanout",
      platforms: two,
      emulation: "ns/emu",
      slots: [
        { platforms: ["linux/amd64"], pool: "ns/emu" },
        { platforms: ["linux/arm64"], pool: "ns/emu" },
      ],
    },
    {
      name: "fanout: a platform with no pool fails before anything is leased, naming it",
      strategy: "fanout",
      platforms: ["linux/arm64", "linux/ppc64le"],
      natives: [arm],
      error: /^platform linux\/ppc64le has no pool: no pool in nativePools has architecture ppc64le, and pool/,
    },
    {
      name: "a native pool whose template names no architecture is an error naming the field",
      strategy: "fanout",
      platforms: two,
      emulation: "ns/emu",
      natives: [{ key: "ns/mystery", architecture: undefined }],
      error: /nativePools: pool ns\/mystery names no architecture .*spec\.template\.spec\.architecture/,
    },
    {
      name: "two native pools of one architecture: an error naming both, not the second one left unused",
      strategy: "fanout",
      platforms: two,
      emulation: "ns/emu",
      natives: [arm, s390, { key: "ns/arm-2", architecture: "arm64" }],
      error: /^nativePools: pools ns\/arm and ns\/arm-2 both build arm64; name one pool per architecture\.$/,
    },
    {
      name: "one native pool named twice (by NAME and by NAMESPACE/NAME): an error naming it",
      strategy: "single",
      platforms: ["linux/arm64"],
      natives: [arm, arm],
      error: /^nativePools: pool ns\/arm is named twice\.$/,
    },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const plan = planSlots({ platforms: row.platforms, strategy: row.strategy }, row.emulation, row.natives ?? []);
      if (row.error) {
        expect(plan.ok).toBe(false);
        if (!plan.ok) expect(plan.message).toMatch(row.error);
      } else {
        expect(plan).toEqual({ ok: true, slots: row.slots });
      }
    });
  }
});

describe("platformTag: where a fan-out VM pushes its platform", () => {
  it.each([
    ["registry.test/app:1.2", ["linux/arm64"], "registry.test/app:1.2-linux-arm64"],
    ["registry.test/app", ["linux/arm/v7"], "registry.test/app:latest-linux-arm-v7"],
    ["127.0.0.1:5000/team/app:v1", ["linux/s390x"], "127.0.0.1:5000/team/app:v1-linux-s390x"],
  ])("%s + %j → %s", (image, platforms, expected) => {
    expect(tagOf(image, platforms)).toBe(expected);
  });
  it("stays within the 128 characters a tag may have", () => {
    const tag = tagOf(`r.test/a:${"x".repeat(127)}`, ["linux/arm64"]).split(":").pop() ?? "";
    expect(tag.length).toBe(128);
  });
});
