import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { renderVMBuildCRD, renderVMBuildLogCRD, vmbuildCRD } from "../../../src/api/crd.js";
import { resolveSettings } from "../../../src/api/resolve.js";
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

  it('the CRD takes "" for every string field, a field not given as in params: a templated manifest may leave one empty', () => {
    const crd = vmbuildCRD() as { spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: { properties: object } } } } }[] } };
    const fields = Object.entries(crd.spec.versions[0]!.schema.openAPIV3Schema.properties.spec.properties) as [string, Record<string, unknown>][];
    const strings = fields.filter(([, field]) => field.type === "string");
    expect(strings.map(([name]) => name)).toEqual(expect.arrayContaining(["image", "gitUrl", "strategy", "contextDir", "registrySecret"]));
    for (const [name, field] of strings) {
      expect(field.minLength, name).toBeUndefined();
      if (typeof field.pattern === "string") expect(new RegExp(field.pattern).test(""), name).toBe(true);
      if (Array.isArray(field.enum)) expect(field.enum, name).toContain("");
    }
    expect(resolveSettings(Object.fromEntries(strings.map(([name]) => [name, ""])), [
      { name: "pool", value: "builders" },
      { name: "gitUrl", value: "https://git.test/app.git" },
      { name: "image", value: "registry.test/app:1" },
    ])).toMatchObject({ ok: true, settings: { strategy: "single", contextDir: ".", image: "registry.test/app:1" } });
  });

  it("the references name every parameter and every reason", () => {
    const params = renderParameterReference();
    for (const name of SETTING_NAMES) expect(params).toContain(`| \`${name}\` |`);
    const reasons = renderReasonReference();
    for (const reason of Object.keys(REASONS)) expect(reasons).toContain(`| \`${reason}\` |`);
  });
});
