import { z } from "zod";
import { SETTING_NAMES, SettingsSchema, type BuildSettings } from "./settings.js";

export type ParamValue = string | string[] | Record<string, string>;
export interface Param {
  name: string;
  value: ParamValue;
}

export type Resolution =
  | { ok: true; settings: BuildSettings }
  | { ok: false; reason: "InvalidParams"; message: string };

const SpecObject = z.record(z.string(), z.unknown());

/**
 * Merges defaults < VMBuild spec < params and validates the result. Tekton substitutes variables only in params,
 * so this merge is ours to do. Messages name the field and where it came from.
 */
export function resolveSettings(vmbuildSpec: unknown, params: readonly Param[]): Resolution {
  const spec = SpecObject.safeParse(vmbuildSpec ?? {});
  if (!spec.success) return invalid("the VMBuild spec must be an object");

  const source = new Map<string, string>();
  const merged: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(spec.data)) {
    merged[key] = value;
    source.set(key, `VMBuild spec.${key}`);
  }
  const seen = new Set<string>();
  for (const param of params) {
    if (seen.has(param.name)) return invalid(`param "${param.name}" is given twice`);
    seen.add(param.name);
    merged[param.name] = param.value;
    source.set(param.name, `param "${param.name}"`);
  }

  const unknown = Object.keys(merged).filter((k) => !(SETTING_NAMES as string[]).includes(k));
  if (unknown.length > 0) {
    const where = unknown.map((k) => source.get(k) ?? k).join(", ");
    return invalid(`unknown ${where}; allowed: ${SETTING_NAMES.join(", ")}`);
  }

  const parsed = SettingsSchema.safeParse(merged, { reportInput: true });
  if (parsed.success) return { ok: true, settings: parsed.data };
  const messages = parsed.error.issues.slice(0, 4).map((issue) => {
    const key = String(issue.path[0] ?? "");
    const where = (source.get(key) ?? `"${key}"`) + issue.path.slice(1).map((p) => `[${String(p)}]`).join("");
    if (issue.input === undefined) return `${where} is required`;
    const got = typeof issue.input === "string" ? ` (got ${JSON.stringify(truncate(issue.input))})` : "";
    return `${where}: ${issue.message}${got}`;
  });
  return invalid(messages.join("; "));
}

function truncate(text: string): string {
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
}

function invalid(message: string): Resolution {
  return { ok: false, reason: "InvalidParams", message };
}
