import type { z } from "zod";

/**
 * `compute`, remembered per input object. Informer caches replace an object on every change and never mutate it,
 * so one result per version is enough. Anything but an object is computed each time.
 */
export function oncePerObject<R>(compute: (raw: unknown) => R): (raw: unknown) => R {
  const seen = new WeakMap<object, R>();
  return (raw) => {
    if (typeof raw !== "object" || raw === null) return compute(raw);
    if (seen.has(raw)) return seen.get(raw) as R;
    const result = compute(raw);
    seen.set(raw, result);
    return result;
  };
}

/**
 * schema.safeParse, once per input object (oncePerObject): ranking a queue parses every run's status at each turn,
 * and most of those runs have not changed since the last turn.
 */
export function parseOnce<S extends z.ZodType>(schema: S): (raw: unknown) => z.ZodSafeParseResult<z.output<S>> {
  return oncePerObject((raw) => schema.safeParse(raw));
}
