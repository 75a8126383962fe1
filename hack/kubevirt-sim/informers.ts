// List+watch caches over @kubernetes/client-node informers. The library re-lists on 410 and re-watches when the
// server closes a watch, but stops for good on any other error: restart it here, with backoff, until stop().
import {
  ADD,
  DELETE,
  ERROR,
  UPDATE,
  makeInformer,
  type KubernetesListObject,
  type KubernetesObject,
  type ObjectCache,
} from "@kubernetes/client-node";
import { describeError, type KubeClient } from "./kube.js";
import { log } from "./log.js";
import type { ResourceRef } from "./types.js";

export type ChangeKind = "add" | "update" | "delete";

export interface Watched<T> {
  cache: ObjectCache<T>;
  /** Resolves after the first successful list: the cache then reflects the cluster. */
  synced: Promise<void>;
  stop(): Promise<void>;
}

const MIN_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 5000;

export function watchResource<T extends KubernetesObject>(
  client: KubeClient,
  ref: ResourceRef,
  onChange: (obj: T, kind: ChangeKind) => void,
): Watched<T> {
  const path = `/apis/${ref.group}/${ref.version}/${ref.plural}`;
  const informer = makeInformer<T>(client.kc, path, (): Promise<KubernetesListObject<T>> => client.listAll<T>(ref));
  let stopped = false;
  let failedSinceStart = false;
  let backoff = MIN_BACKOFF_MS;
  let timer: NodeJS.Timeout | undefined;
  let markSynced: () => void = () => undefined;
  const synced = new Promise<void>((resolve) => (markSynced = resolve));

  const deliver = (kind: ChangeKind) => (obj: T): void => {
    backoff = MIN_BACKOFF_MS;
    onChange(obj, kind);
  };
  informer.on(ADD, deliver("add"));
  informer.on(UPDATE, deliver("update"));
  informer.on(DELETE, deliver("delete"));

  const attempt = async (): Promise<void> => {
    timer = undefined;
    if (stopped) return;
    failedSinceStart = false;
    await informer.start();
    // start() resolves even when the list failed (the ERROR handler ran instead).
    if (!failedSinceStart) markSynced();
  };

  informer.on(ERROR, (err?: unknown) => {
    failedSinceStart = true;
    // stop() aborts the watch request, which reports an AbortError: not a failure.
    if (stopped || timer !== undefined) return;
    log.warn("watch failed, restarting", { resource: path, error: describeError(err), retryInMs: backoff });
    timer = setTimeout(run, backoff);
    backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
  });

  function run(): void {
    attempt().catch((err: unknown) => log.error("informer start failed", { resource: path, error: describeError(err) }));
  }
  run();
  return {
    cache: informer,
    synced,
    stop: async (): Promise<void> => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await informer.stop();
    },
  };
}
