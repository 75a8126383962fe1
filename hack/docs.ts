import { z } from "zod";
import { eventType, REASONS } from "../src/tekton/reasons.js";
import { SettingsSchema } from "../src/api/settings.js";
import { ConfigSchema } from "../src/config.js";

// The docs' parameter, configuration and status-reason references, rendered from the schemas and the reason
// registry that the controller itself uses (`npm run gen`; a unit test fails when docs/ drifts).

interface FieldSchema {
  type?: string;
  default?: unknown;
  description?: string;
  items?: { type?: string };
  additionalProperties?: unknown;
}

export function renderParameterReference(): string {
  const schema = z.toJSONSchema(SettingsSchema, { io: "input", target: "openapi-3.0", unrepresentable: "any" }) as {
    properties: Record<string, FieldSchema>;
    required?: string[];
  };
  const required = new Set(schema.required ?? []);
  // Defaults behind a preprocess step do not reach the JSON schema: read them off a parse of a minimal spec,
  // whose own fields have none.
  const minimal: Record<string, unknown> = { pool: "p", image: "registry.test/i", gitUrl: "https://git.test/r" };
  const parsed = SettingsSchema.parse(minimal) as Record<string, unknown>;
  const shown = (value: unknown) =>
    value === undefined || value === "" || (typeof value === "object" && value !== null && Object.keys(value).length === 0)
      ? "none"
      : `\`${Array.isArray(value) ? value.join(",") : String(value)}\``;
  const rows = Object.entries(schema.properties).map(([name, field]) => {
    const type = field.type === "array" ? `list of ${field.items?.type ?? "string"}` : field.additionalProperties ? "map" : (field.type ?? "string");
    const fallback = required.has(name) ? "(required)" : shown(field.default ?? (name in minimal ? undefined : parsed[name]));
    return `| \`${name}\` | ${type} | ${fallback} | ${(field.description ?? "").replace(/\|/g, "\\|")} |`;
  });
  return [
    "# Parameters",
    "",
    "<!-- Generated from src/api/settings.ts by `npm run gen`; do not edit. -->",
    "",
    "The same fields are CustomRun params and `VMBuild` spec fields. Precedence: **params > VMBuild > defaults**.",
    "A param's value is a string (lists comma-separated, booleans `\"true\"`/`\"false\"`, durations like `\"10m\"`),",
    "or a Tekton array or object param where that fits; a VMBuild uses plain YAML types.",
    "An empty string is a field not given (the VMBuild's value or the default applies), so a Pipeline can pass an",
    "optional param through as `$(params.x)` with a default of `\"\"`; in a VMBuild too, the default applies (or a param's value).",
    "An unknown or invalid field ends the run with reason `InvalidParams` and a message naming it.",
    "",
    "| name | type | default | meaning |",
    "| --- | --- | --- | --- |",
    ...rows,
    "",
  ].join("\n");
}

export function renderConfigurationReference(): string {
  const schema = z.toJSONSchema(ConfigSchema, { io: "input", target: "openapi-3.0", unrepresentable: "any" }) as {
    properties: Record<string, FieldSchema & { enum?: string[] }>;
  };
  const rows = Object.entries(schema.properties).map(([name, field]) => {
    const fallback = field.default === undefined ? "none" : `\`${String(field.default)}\``;
    const values = field.enum ? ` One of ${field.enum.map((v) => `\`${v}\``).join(", ")}.` : "";
    return `| \`${name}\` | ${fallback} | ${(field.description ?? "").replace(/\|/g, "\\|")}${values} |`;
  });
  return [
    "# Controller configuration",
    "",
    "<!-- Generated from src/config.ts by `npm run gen`; do not edit. -->",
    "",
    "The controller reads its configuration from the environment once, at start, and refuses to start on an invalid",
    "value, naming it. `deploy/controller.yaml` sets the ones a cluster needs.",
    "",
    "| variable | default | meaning |",
    "| --- | --- | --- |",
    ...rows,
    "",
  ].join("\n");
}

export function renderReasonReference(): string {
  const rows = Object.entries(REASONS).map(
    ([reason, info]) =>
      `| \`${reason}\` | \`${info.status}\` | ${eventType(reason, info.status) ?? "none"} | ${info.meaning} | ${info.action} |`,
  );
  return [
    "# Status reasons",
    "",
    "<!-- Generated from src/tekton/reasons.ts by `npm run gen`; do not edit. -->",
    "",
    "Every reason the `Succeeded` condition of a VMBuild CustomRun can carry. Entering a reason with an Event type",
    "also records a Kubernetes Event on the CustomRun (`kubectl describe customrun NAME`): every ending, the VM a",
    "run got, and an attempt that runs again. The phases in between are in the condition, the web view and",
    "`kubectl vmbuild describe`. A message is at most about 4,000 characters: a longer one (a failing step quoted",
    "whole) is cut in the middle, keeping what failed and the `Full log:` URL at its end.",
    "",
    "| reason | status | Event | meaning | what to do |",
    "| --- | --- | --- | --- | --- |",
    ...rows,
    "",
  ].join("\n");
}
