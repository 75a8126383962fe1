import { describe, expect, it } from "vitest";
import { parseRun } from "../../../src/tekton/customrun.js";

const run = (workspaces: unknown[]) => ({
  metadata: { name: "build", namespace: "team-a", uid: "uid-1" },
  spec: { customRef: { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild" }, workspaces },
});

describe("parseRun: a workspace bound to a Secret", () => {
  it("takes a Secret of the run's namespace", () => {
    const parsed = parseRun(run([{ name: "dockerconfig", secret: { secretName: "multi-arch" } }]));
    expect(parsed.problem).toBeUndefined();
    expect(parsed.run?.spec.workspaces?.[0]?.secret?.secretName).toBe("multi-arch");
  });

  it.each(["other-ns/name", "Upper", "a".repeat(254), ""])("refuses %j as a Secret name, naming the field", (secretName) => {
    const parsed = parseRun(run([{ name: "dockerconfig", secret: { secretName } }]));
    expect(parsed.problem).toMatch(/^spec\.workspaces\.0\.secret\.secretName: expected the name of a Secret in the run's namespace/);
    // The run is still readable, so it ends InvalidParams (its status written) instead of being ignored.
    expect(parsed.run?.metadata.name).toBe("build");
  });
});

describe("parseRun: spec.timeout", () => {
  const timed = (timeout: unknown) => ({ ...run([]), spec: { ...run([]).spec, timeout } });

  it.each(["1h0m0s", "0s", "90m"])("takes %j", (timeout) => {
    const parsed = parseRun(timed(timeout));
    expect(parsed.problem).toBeUndefined();
    expect(parsed.run?.spec.timeout).toBe(timeout);
  });

  it.each(["1d", "-5m", "soon", 60])("refuses %j, naming the field, and keeps the run readable without it", (timeout) => {
    const parsed = parseRun(timed(timeout));
    expect(parsed.problem).toMatch(/^spec\.timeout: /);
    expect(parsed.run?.metadata.name).toBe("build");
    expect(parsed.run?.spec.timeout).toBeUndefined();
  });
});
