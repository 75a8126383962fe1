import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { renderVMBuildCRD, renderVMBuildLogCRD } from "../../../src/api/crd.js";
import { renderConfigurationReference, renderParameterReference, renderReasonReference } from "../../../hack/docs.js";
import { SETTING_NAMES } from "../../../src/api/settings.js";
import { REASONS } from "../../../src/tekton/reasons.js";

const read = (path: string) => readFileSync(new URL(`../../../${path}`, import.meta.url), "utf8");

describe("generated from the schema (run `npm run gen` after changing it)", () => {
  it.each([
    ["deploy/crds/vmbuild.dev_vmbuilds.yaml", renderVMBuildCRD],
    ["deploy/crds/vmbuild.dev_vmbuildlogs.yaml", renderVMBuildLogCRD],
    ["docs/parameters.md", renderParameterReference],
    ["docs/reasons.md", renderReasonReference],
    ["docs/configuration.md", renderConfigurationReference],
  ])("%s is up to date", (path, render) => {
    expect(read(path)).toBe(render());
  });

  it("the CRD is structural: no required fields or server defaults, so params can supply what a VMBuild leaves out", () => {
    const text = renderVMBuildCRD();
    expect(text).not.toMatch(/^\s+required:/m);
    expect(text).not.toMatch(/^\s+default:/m);
    for (const name of SETTING_NAMES) expect(text).toMatch(new RegExp(`^\\s+${name}:`, "m"));
  });

  it("the references name every parameter and every reason", () => {
    const params = renderParameterReference();
    for (const name of SETTING_NAMES) expect(params).toContain(`| \`${name}\` |`);
    const reasons = renderReasonReference();
    for (const reason of Object.keys(REASONS)) expect(reasons).toContain(`| \`${reason}\` |`);
  });
});
