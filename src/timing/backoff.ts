// Exponential backoff for retries: the delay doubles with each failure, up to a cap.

export interface Backoff {
  /** The delay at failures = 0. */
  baseMs: number;
  maxMs: number;
  /** Doublings stop here, so the exponent never overflows however long the failures last. */
  maxExponent: number;
}

/** How long to wait before the next try: baseMs · 2^min(failures, maxExponent), at most maxMs. */
export function backoffMs(failures: number, { baseMs, maxMs, maxExponent }: Backoff): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(failures, maxExponent));
}
