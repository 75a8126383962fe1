import { backoffMs } from "../timing/backoff.js";
import { timerDelay } from "../timing/timers.js";

// A keyed work queue as controllers use it: a key is processed by one worker at a time, adds while it is being
// processed coalesce into one more pass, delayed adds keep the earliest deadline, and failures back off per key.

export type Handler = (key: string) => Promise<{ requeueAfterMs?: number } | void>;

export interface WorkQueueOptions {
  concurrency: number;
  onError: (key: string, err: unknown, retryInMs: number) => void;
  maxBackoffMs?: number;
}

export class WorkQueue {
  private readonly ready: string[] = [];
  private readonly queued = new Set<string>();
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly failures = new Map<string, number>();
  private running = 0;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly handler: Handler,
    private readonly options: WorkQueueOptions,
  ) {}

  add(key: string): void {
    if (this.stopped) return;
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.ready.push(key);
    this.pump();
  }

  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    // Always through a timer, even for 0: a handler that asks to be called again at once must not starve the
    // event loop (and with it the watches that would tell it something changed).
    const delay = timerDelay(delayMs);
    const at = Date.now() + delay;
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delay);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Stop taking work; resolves when the handlers in flight have returned. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.ready.length = 0;
    this.queued.clear();
    if (this.running > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  get depth(): number {
    return this.ready.length;
  }

  private pump(): void {
    while (!this.stopped && this.running < this.options.concurrency) {
      const key = this.ready.shift();
      if (key === undefined) return;
      this.queued.delete(key);
      this.active.add(key);
      this.running += 1;
      void this.process(key);
    }
  }

  private async process(key: string): Promise<void> {
    try {
      const result = await this.handler(key);
      this.failures.delete(key);
      if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (err) {
      const n = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, n);
      const delay = backoffMs(n, { baseMs: 50, maxMs: this.options.maxBackoffMs ?? 60_000, maxExponent: 16 });
      this.options.onError(key, err, delay);
      this.addAfter(key, delay);
    } finally {
      this.active.delete(key);
      this.running -= 1;
      if (this.dirty.delete(key)) this.add(key);
      if (this.running === 0 && this.stopped) for (const resolve of this.idleWaiters.splice(0)) resolve();
      this.pump();
    }
  }
}
