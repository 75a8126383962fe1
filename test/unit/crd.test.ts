import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { renderVMBuildCRD as renderCRD } from "../../src/spec/crd.js";

const CRD_PATH = new URL("../../deploy/crds/vmbuild.dev_vmbuilds.yaml", import.meta.url);

describe("VMBuild CRD", () => {
  it("deploy/ holds the CRD generated from the current schema (run `npm run gen` after changing it)", () => {
    expect(readFileSync(CRD_PATH, "utf8")).toBe(renderCRD());
  });

  it("is structural: no required fields or server defaults, so params can supply what a VMBuild leaves out", () => {
    const text = renderCRD();
    expect(text).not.toMatch(/^\s+required:/m);
    expect(text).not.toMatch(/^\s+default:/m);
    expect(text).toMatch(/gitUrl:/);
  });
});
