// Polling with a deadline: every readiness check in the testenv is "try, sleep, try again until a timeout".
import { setTimeout as sleep } from "node:timers/promises";

export interface PollOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Used in the timeout error: "<what> within 20s". */
  what: string;
  /** Appended to the timeout error, e.g. "; see .testenv/logs/etcd.log". */
  hint?: string;
  /** Checked before each try: a message here fails at once (e.g. the process being waited for has exited). */
  failFast?: () => string | undefined;
}

/** Calls `check` until it returns a value other than undefined; rejects with the last error on timeout. */
export async function poll<T>(check: () => Promise<T | undefined>, opts: PollOptions): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  const interval = opts.intervalMs ?? 100;
  let lastError: unknown;
  for (;;) {
    const fatal = opts.failFast?.();
    if (fatal !== undefined) throw new Error(`${fatal}${opts.hint ?? ""}`);
    try {
      const value = await check();
      if (value !== undefined) return value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const last = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`${opts.what} within ${Math.round(opts.timeoutMs / 1000)}s${last}${opts.hint ?? ""}`);
    }
    await sleep(interval);
  }
}
