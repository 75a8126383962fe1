// Go duration strings ("90s", "1h30m", "0s"), the format Tekton uses for spec.timeout.
const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};
/** Go's longest duration (2^63-1 ns, about 292 years): Go, and so Tekton, refuses anything longer. */
const MAX_MS = 9_223_372_036_854.775;
// Go's number forms: "5", "5.5", "5." and ".5"; a leading "+" is allowed, a "-" is refused (no timeout is negative).
const NUMBER = String.raw`(?:\d+\.?\d*|\.\d+)`;
const WHOLE = new RegExp(`^(?:${NUMBER}(?:ns|us|µs|ms|s|m|h))+$`);
const PART = new RegExp(`(${NUMBER})(ns|us|µs|ms|s|m|h)`, "g");

/** Milliseconds in a Go duration string, or undefined if it is not one. */
export function parseDuration(given: string): number | undefined {
  const text = given.startsWith("+") ? given.slice(1) : given;
  if (text === "0") return 0;
  if (!WHOLE.test(text)) return undefined;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(PART)) {
    total += Number(amount) * (UNIT_MS[unit ?? ""] ?? 0);
  }
  return total > MAX_MS ? undefined : Math.round(total);
}

/** Go's form of a duration in ms, as Tekton prints it: "1h0m0s", "1m30s", "45s", "350ms". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const seconds = Math.round(ms / 1000);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}
