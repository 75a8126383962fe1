import type { z } from "zod";

/**
 * schema.safeParse, remembered per input object. Informer caches replace an object on every change and never
 * mutate it, so one parse per version is enough: ranking a queue parses every run's status at each turn, and
 * most of those runs have not changed since the last turn.
 */
export function parseOnce<S extends z.ZodType>(schema: S): (raw: unknown) => z.ZodSafeParseResult<z.output<S>> {
  const seen = new WeakMap<object, z.ZodSafeParseResult<z.output<S>>>();
  return (raw) => {
    if (typeof raw !== "object" || raw === null) return schema.safeParse(raw);
    let parsed = seen.get(raw);
    if (!parsed) {
      parsed = schema.safeParse(raw);
      seen.set(raw, parsed);
    }
    return parsed;
  };
}
