import { stringify } from "yaml";
import { z } from "zod";
import { VMBUILD_GROUP, VMBUILD_KIND, VMBUILD_VERSION } from "./vmbuild.js";
import { SettingsSchema } from "./settings.js";
import { VMBUILD_LOG_KIND, VMBUILD_LOG_PLURAL, VMBuildLogFieldsSchema } from "./vmbuild-log.js";

// The project's CRDs, generated from the zod schemas the controller validates with: one source for both.

type JsonSchema = { [key: string]: unknown };

/** A structural OpenAPI schema: no required fields (params may supply them), no server-side defaults. */
function structural(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(structural);
  if (!node || typeof node !== "object") return node;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === "required" || key === "default" || key === "$schema") continue;
    if (key === "additionalProperties" && value === false) continue;
    out[key] = structural(value);
  }
  return out;
}

/**
 * A field given as "" is a field not given (resolveSettings), as in params: a manifest templated with an empty
 * value (`pullSecret: ""`) must not be refused by the apiserver for a pattern the controller never applies to it.
 */
function emptyAllowed(spec: JsonSchema): JsonSchema {
  const properties = Object.entries(spec.properties as Record<string, JsonSchema>).map(([name, field]) => {
    if (field.type !== "string") return [name, field];
    const { minLength: _minLength, ...rest } = field;
    return [
      name,
      {
        ...rest,
        ...(typeof field.pattern === "string" && !new RegExp(field.pattern).test("") ? { pattern: `^$|${field.pattern}` } : {}),
        ...(Array.isArray(field.enum) ? { enum: [...(field.enum as unknown[]), ""] } : {}),
      },
    ];
  });
  return { ...spec, properties: Object.fromEntries(properties) };
}

export function vmbuildCRD(): object {
  const spec = emptyAllowed(
    structural(z.toJSONSchema(SettingsSchema, { io: "input", target: "openapi-3.0", unrepresentable: "any" })) as JsonSchema,
  );
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `vmbuilds.${VMBUILD_GROUP}`, labels: { "app.kubernetes.io/part-of": "vmbuild" } },
    spec: {
      group: VMBUILD_GROUP,
      scope: "Namespaced",
      names: { plural: "vmbuilds", singular: "vmbuild", kind: VMBUILD_KIND, listKind: `${VMBUILD_KIND}List`, categories: ["tekton"] },
      versions: [
        {
          name: VMBUILD_VERSION,
          served: true,
          storage: true,
          additionalPrinterColumns: [
            { name: "Pool", type: "string", jsonPath: ".spec.pool" },
            { name: "Image", type: "string", jsonPath: ".spec.image" },
            { name: "Platforms", type: "string", jsonPath: ".spec.platforms" },
            { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          ],
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: "Reusable settings for building a multi-architecture image on a leased KubeVirt VM.",
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                spec: { ...spec, description: "Build settings; CustomRun params override them." },
              },
            },
          },
        },
      ],
    },
  };
}

/** The stored build logs: the fields at the top, as in an Event; no status, written whole by one replica at a time. */
export function vmbuildLogCRD(): object {
  const fields = structural(z.toJSONSchema(VMBuildLogFieldsSchema, { target: "openapi-3.0" })) as JsonSchema;
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${VMBUILD_LOG_PLURAL}.${VMBUILD_GROUP}`, labels: { "app.kubernetes.io/part-of": "vmbuild" } },
    spec: {
      group: VMBUILD_GROUP,
      scope: "Namespaced",
      names: {
        plural: VMBUILD_LOG_PLURAL,
        singular: "vmbuildlog",
        kind: VMBUILD_LOG_KIND,
        listKind: `${VMBUILD_LOG_KIND}List`,
        shortNames: ["vmblog"],
        categories: ["tekton"],
      },
      versions: [
        {
          name: VMBUILD_VERSION,
          served: true,
          storage: true,
          additionalPrinterColumns: [
            { name: "Run", type: "string", jsonPath: ".runName" },
            { name: "Attempt", type: "integer", jsonPath: ".attempt" },
            { name: "Complete", type: "boolean", jsonPath: ".complete" },
            { name: "Bytes", type: "integer", jsonPath: ".bytes" },
            { name: "Cut", type: "boolean", jsonPath: ".cut" },
            { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
          ],
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: "The stored copy of one CustomRun attempt's build log (secrets masked), served as LOG_URL.",
              properties: {
                apiVersion: { type: "string" },
                kind: { type: "string" },
                metadata: { type: "object" },
                ...(fields.properties as JsonSchema),
              },
            },
          },
        },
      ],
    },
  };
}

export function renderVMBuildLogCRD(): string {
  return `# Generated from src/api/vmbuild-log.ts by \`npm run gen\`; do not edit.\n${stringify(vmbuildLogCRD(), { lineWidth: 0 })}`;
}

export function renderVMBuildCRD(): string {
  return `# Generated from src/api/settings.ts by \`npm run gen\`; do not edit.\n${stringify(vmbuildCRD(), { lineWidth: 0 })}`;
}
