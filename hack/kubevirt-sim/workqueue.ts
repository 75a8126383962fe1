// Level-triggered reconcile queue, like client-go's workqueue: a key is handled by one worker at a time; a key
// added while it is being handled runs once more afterwards; a failed key is retried with backoff.
import { log, errorMessage } from "./log.js";

const MIN_RETRY_MS = 100;
const MAX_RETRY_MS = 10_000;

export class WorkQueue {
  private readonly running = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly retries = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly idleWaiters: (() => void)[] = [];
  private stopped = false;
  private handler: ((key: string) => Promise<void>) | undefined;
  private readonly pending = new Set<string>();

  constructor(private readonly name: string) {}

  /** Keys added before start() wait, so that the handler only runs once every cache has synced. */
  start(handler: (key: string) => Promise<void>): void {
    this.handler = handler;
    for (const key of this.pending) this.add(key);
    this.pending.clear();
  }

  add(key: string): void {
    if (this.stopped) return;
    if (this.handler === undefined) {
      this.pending.add(key);
      return;
    }
    if (this.running.has(key)) {
      this.dirty.add(key);
      return;
    }
    this.running.add(key);
    void this.process(key, this.handler);
  }

  /** Re-run `key` after `ms`, e.g. to resync a state that may change without a watch event. */
  addAfter(key: string, ms: number): void {
    if (this.stopped || this.timers.has(key)) return;
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        this.add(key);
      }, ms),
    );
  }

  private async process(key: string, handler: (key: string) => Promise<void>): Promise<void> {
    try {
      await handler(key);
      this.retries.delete(key);
    } catch (err) {
      const attempt = (this.retries.get(key) ?? 0) + 1;
      this.retries.set(key, attempt);
      const delay = Math.min(MIN_RETRY_MS * 2 ** (attempt - 1), MAX_RETRY_MS);
      log.warn("reconcile failed, will retry", { queue: this.name, key, attempt, retryInMs: delay, error: errorMessage(err) });
      this.addAfter(key, delay);
    } finally {
      this.running.delete(key);
      if (this.dirty.delete(key)) this.add(key);
      else if (this.running.size === 0) this.idleWaiters.splice(0).forEach((w) => w());
    }
  }

  /** Stops accepting keys and resolves once in-flight handlers finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.dirty.clear();
    if (this.running.size === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }
}
