import { setTimeout as sleep } from "node:timers/promises";
import { backoffMs } from "../timing/backoff.js";
import { isTransient } from "./errors.js";

const API_BACKOFF = { baseMs: 200, maxMs: 5_000, maxExponent: 5 };
/** Long enough for an apiserver restart or a leader change of etcd; a build should not fail for one of those. */
const RETRY_FOR_MS = 120_000;

/**
 * Calls `call` until it succeeds, fails for good, `signal` aborts or RETRY_FOR_MS have passed; the last failure is
 * what it throws. For the API reads a build depends on, which otherwise end the build at an apiserver restart.
 */
export async function withApiRetries<T>(call: () => Promise<T>, signal: AbortSignal): Promise<T> {
  const until = performance.now() + RETRY_FOR_MS;
  for (let failures = 0; ; failures++) {
    try {
      return await call();
    } catch (err) {
      const delay = backoffMs(failures, API_BACKOFF);
      if (!isTransient(err) || signal.aborted || performance.now() + delay > until) throw err;
      await sleep(delay, undefined, { signal }).catch(() => {
        throw err;
      });
    }
  }
}
