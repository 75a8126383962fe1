import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildQueryString } from "../../src/podman/build-query.js";
import { decide } from "../../src/reconcile/decide/index.js";
import { resolveSettings } from "../../src/api/resolve.js";
import { isOurs, parseRun } from "../../src/tekton/customrun.js";
import { nasty, paramName, params, paramValue } from "../support/nasty.js";

// Property-based: whatever a user (or an attacker with create on CustomRuns) puts in a run, the controller does
// not crash, and what it accepts is safe to hand to podman and to the context packer.

const RUNS = 1_000;

describe("fuzzing the edge", () => {
  it("resolveSettings never throws, and what it accepts is safe for podman and the context packer", { timeout: 120_000 }, () => {
    fc.assert(
      fc.property(params, fc.option(fc.dictionary(paramName, fc.jsonValue()), { nil: undefined }), (ps, spec) => {
        const base = { pool: "builders", image: "registry.test/app:1", gitUrl: "https://git.test/app.git" };
        const r = resolveSettings({ ...base, ...spec }, ps);
        if (!r.ok) {
          expect(r.reason).toBe("InvalidParams");
          expect(r.message.length).toBeGreaterThan(0);
          expect(r.message.length).toBeLessThan(2_000);
          return;
        }
        const s = r.settings;
        for (const path of [s.dockerfile, s.contextDir]) {
          expect(path.startsWith("/")).toBe(false);
          expect(path.split(/[\\/]/)).not.toContain("..");
          expect(path).not.toMatch(/[\0\r\n]/);
        }
        expect(s.gitUrl).toMatch(/^(https?|git|ssh):\/\/|^[A-Za-z0-9._-]+@/);
        expect(s.gitRevision.startsWith("-")).toBe(false);
        expect(s.image).not.toMatch(/[@?#\s]/);
        // Everything podman gets travels as query parameters: they must come back exactly as sent.
        const query = new URLSearchParams(
          buildQueryString({ dockerfile: s.dockerfile, platforms: s.platforms, manifest: "m", buildArgs: s.buildArgs }),
        );
        expect(query.getAll("platform")).toEqual(s.platforms);
        expect(query.get("dockerfile")).toBe(s.dockerfile);
        expect(JSON.parse(query.get("buildargs") ?? "{}")).toEqual(s.buildArgs);
        expect(query.get("isolation")).toBeNull();
      }),
      { numRuns: RUNS },
    );
  });

  it("a CustomRun of any shape is parsed or set aside, and decide() never throws on it", { timeout: 120_000 }, () => {
    const run = fc.record({
      metadata: fc.record({ name: fc.string({ minLength: 1 }), namespace: fc.string({ minLength: 1 }), uid: fc.uuid() }),
      spec: fc.record(
        {
          customRef: fc.constant({ apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild" }),
          params: fc.oneof(fc.jsonValue(), fc.array(fc.record({ name: nasty, value: paramValue }))),
          timeout: fc.oneof(nasty, fc.jsonValue()),
          retries: fc.oneof(fc.integer(), fc.jsonValue()),
          status: fc.oneof(fc.constant("RunCancelled"), nasty),
          statusMessage: nasty,
        },
        { requiredKeys: ["customRef"] },
      ),
      status: fc.option(fc.record({ extraFields: fc.jsonValue(), startTime: fc.constant("2026-01-01T00:00:00Z") }), { nil: undefined }),
    });
    fc.assert(
      fc.property(run, (raw) => {
        expect(isOurs(raw)).toBe(true);
        const parsed = parseRun(raw);
        if (!parsed.run) {
          expect(parsed.problem.length).toBeGreaterThan(0);
          return;
        }
        const { params } = parsed.run.spec;
        const resolution = parsed.problem
          ? ({ ok: false, reason: "InvalidParams", message: parsed.problem } as const)
          : resolveSettings({ pool: "p", image: "r.test/i", gitUrl: "https://g.test/r" }, params);
        const settings = resolution.ok ? { ...resolution, inputs: { params } } : resolution;
        const d = decide(parsed.run, {
          now: new Date("2026-01-01T00:05:00Z"),
          publicURL: "http://vmbuild.test:8080",
          settings,
          ...(settings.ok ? { plan: { ok: true, slots: [{ platforms: settings.settings.platforms, pool: "ns/p" }] } } : {}),
          pools: { "ns/p": { found: true, namespace: "ns", name: "p", vms: [{ name: "p-0", wantsRunning: false }] } },
          held: [],
          demandAhead: {},
        });
        expect(Array.isArray(d.actions)).toBe(true);
        if (!settings.ok) expect(d.actions.map((a) => a.kind)).not.toContain("acquireLease");
      }),
      { numRuns: RUNS },
    );
  });
});
