import {
  makeInformer,
  type CustomObjectsApi,
  type Informer,
  type KubeConfig,
  type KubernetesObject,
  type ObjectCache,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import { backoffMs } from "../timing/backoff.js";
import { collectionPath, type Resource } from "./resources.js";

/** A watch that failed after working: relist soon, but do not hammer an apiserver that is down. */
const WATCH_BACKOFF = { baseMs: 250, maxMs: 30_000, maxExponent: 7 };
/** The first list: the controller waits on it, so retry sooner. */
const LIST_BACKOFF = { baseMs: 200, maxMs: 10_000, maxExponent: 6 };

export type Cache = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;

export interface RunningInformer {
  cache: Cache;
  /** Resolves after the first successful list. */
  ready: Promise<void>;
  /** Calls `fn` on every add, update and delete; attach before `ready` to see the first list too. */
  onChange(fn: (obj: KubernetesObject) => void): void;
  /** Calls `fn` on every delete (a relist that no longer finds an object deletes it too). */
  onDelete(fn: (obj: KubernetesObject) => void): void;
  stop(): Promise<void>;
}

/** A cluster-wide informer for a resource that relists and rewatches after any error, with backoff. */
export function startInformer(
  kc: KubeConfig,
  api: CustomObjectsApi,
  resource: Resource,
  log: Logger,
  labelSelector?: string,
): RunningInformer {
  const list = async () =>
    (await api.listClusterCustomObject({
      group: resource.group,
      version: resource.version,
      plural: resource.plural,
      ...(labelSelector ? { labelSelector } : {}),
    })) as { apiVersion?: string; kind?: string; metadata?: object; items: KubernetesObject[] };
  const cache = makeInformer(kc, collectionPath(resource), list, labelSelector);
  let stopped = false;
  let failures = 0;
  cache.on("connect", () => {
    failures = 0;
  });
  cache.on("error", (err: unknown) => {
    if (stopped) return;
    failures += 1;
    const delay = backoffMs(failures, WATCH_BACKOFF);
    log.warn({ resource: resource.plural, err: String(err), retryInMs: delay }, "watch failed; relisting");
    setTimeout(() => {
      if (!stopped) cache.start().catch(() => undefined);
    }, delay).unref();
  });
  const ready = startWithRetry(cache, resource, log, () => stopped);
  return {
    cache,
    ready,
    onChange(fn) {
      cache.on("add", fn);
      cache.on("update", fn);
      cache.on("delete", fn);
    },
    onDelete(fn) {
      cache.on("delete", fn);
    },
    stop: async () => {
      stopped = true;
      await cache.stop();
    },
  };
}

async function startWithRetry(cache: Cache, resource: Resource, log: Logger, stopped: () => boolean): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await cache.start();
      return;
    } catch (err) {
      if (stopped()) return;
      const delay = backoffMs(attempt, LIST_BACKOFF);
      log.warn({ resource: resource.plural, err: String(err), retryInMs: delay }, "initial list failed");
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
