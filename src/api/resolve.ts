import { z } from "zod";
import { SETTING_NAMES, SettingsSchema, type BuildSettings } from "./settings.js";
import { withoutCredentials } from "./git-url.js";

export type ParamValue = string | string[] | Record<string, string>;
export interface Param {
  name: string;
  value: ParamValue;
}

export type Resolution =
  | { ok: true; settings: BuildSettings }
  | { ok: false; reason: "InvalidParams"; message: string };

const SpecObject = z.record(z.string(), z.unknown());

/** A param with an empty value is a field not given: it overrides neither the VMBuild's value nor the default. */
export const overrides = (param: Param): boolean => param.value !== "";

/**
 * Merges defaults < VMBuild spec < params and validates the result. Tekton substitutes variables only in params,
 * so this merge is ours to do. Messages name the field and where it came from. An empty string is a field not
 * given: a Pipeline passes an optional param through as `$(params.x)` with a default of "". So is a null in an
 * embedded spec (the apiserver drops those of a VMBuild).
 */
export function resolveSettings(vmbuildSpec: unknown, params: readonly Param[]): Resolution {
  const spec = SpecObject.safeParse(vmbuildSpec ?? {});
  if (!spec.success) return invalid("the VMBuild spec must be an object");

  const source = new Map<string, "spec" | "param">();
  const merged: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(spec.data)) {
    source.set(key, "spec");
    if (value !== "" && value !== null) merged[key] = value;
  }
  const seen = new Set<string>();
  for (const param of params) {
    if (seen.has(param.name)) return invalid(`param "${truncate(param.name)}" is given twice`);
    seen.add(param.name);
    if (!overrides(param)) {
      if (!(param.name in merged)) source.set(param.name, "param");
      continue;
    }
    merged[param.name] = param.value;
    source.set(param.name, "param");
  }

  const unknown = [...source.keys()].filter((k) => !(SETTING_NAMES as string[]).includes(k));
  if (unknown.length > 0) {
    // Names come from the user: quote a few, shortened, so the message stays readable whatever they are.
    const shown = unknown.slice(0, 3).map((k) => label(source.get(k), truncate(k)));
    const more = unknown.length > 3 ? ` and ${unknown.length - 3} more` : "";
    return invalid(`unknown ${shown.join(", ")}${more}; allowed: ${SETTING_NAMES.join(", ")}`);
  }

  const parsed = SettingsSchema.safeParse(merged, { reportInput: true });
  if (parsed.success) return { ok: true, settings: parsed.data };
  const messages = parsed.error.issues.slice(0, 4).map((issue) => {
    const key = String(issue.path[0] ?? "");
    const where = label(source.get(key), key) + issue.path
      .slice(1)
      .map((p) => `[${typeof p === "number" ? p : JSON.stringify(truncate(String(p)))}]`)
      .join("");
    if (issue.input === undefined) {
      return source.has(key) ? `${where} is empty, and it is required` : `"${key}" is required: give the param ${key} or VMBuild spec.${key}`;
    }
    // A URL's password is never echoed into the status, the Events or the logs.
    const got = typeof issue.input === "string" ? ` (got ${JSON.stringify(truncate(withoutCredentials(issue.input)))})` : "";
    return `${where}: ${issue.message}${got}`;
  });
  return invalid(messages.join("; "));
}

/** Where a field came from, as messages name it: `param "x"` or `VMBuild spec.x`. */
function label(from: "spec" | "param" | undefined, key: string): string {
  if (from === "param") return `param "${key}"`;
  if (from === "spec") return `VMBuild spec.${key}`;
  return `"${key}"`;
}

function truncate(text: string): string {
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
}

function invalid(message: string): Resolution {
  return { ok: false, reason: "InvalidParams", message };
}
