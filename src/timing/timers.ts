// Node's timers take at most 2^31-1 ms (24.8 days): a longer delay fires after 1 ms instead, with only a warning.
// A run that waits "1000h" must not be reconciled every millisecond.

export const MAX_TIMER_MS = 2_147_483_647;

/** A delay setTimeout keeps: not negative, and never past what a timer can hold (it fires then and asks again). */
export function timerDelay(ms: number): number {
  return Number.isFinite(ms) ? Math.min(Math.max(0, ms), MAX_TIMER_MS) : MAX_TIMER_MS;
}

/** Waits for `work` to settle, at most `ms`; its outcome is not reported (shutdown steps that must not hang). */
export async function settledWithin(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timerDelay(ms))));
  await Promise.race([work.then(noop, noop), timeout]);
  clearTimeout(timer);
}

const noop = (): void => undefined;
