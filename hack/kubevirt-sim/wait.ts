// Waiting for one object to reach a state, by watching it (for tests and tools that drive the sim).
import { Watch, type KubernetesObject } from "@kubernetes/client-node";
import type { KubeClient } from "./kube.js";
import type { ResourceRef } from "./types.js";

/**
 * Resolves with the object (undefined once it is gone) as soon as `predicate` holds; rejects after timeoutMs with
 * the last state seen. Lists once, then watches from that resourceVersion; re-lists if the watch ends.
 */
export async function waitForObject<T extends KubernetesObject>(
  client: KubeClient,
  ref: ResourceRef,
  namespace: string,
  name: string,
  predicate: (obj: T | undefined) => boolean,
  timeoutMs: number,
): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  const fieldSelector = `metadata.name=${name}`;
  const path = `/apis/${ref.group}/${ref.version}/namespaces/${namespace}/${ref.plural}`;
  let last: T | undefined;
  while (Date.now() < deadline) {
    const list = await client.listNamespaced<T>(ref, namespace, fieldSelector);
    last = list.items[0];
    if (predicate(last)) return last;
    const outcome = await new Promise<{ matched: boolean }>((resolve, reject) => {
      let controller: AbortController | undefined;
      let settled = false;
      const finish = (matched: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        controller?.abort();
        resolve({ matched });
      };
      const timer = setTimeout(() => finish(false), Math.max(0, deadline - Date.now()));
      new Watch(client.kc)
        .watch(
          path,
          { fieldSelector, resourceVersion: list.metadata?.resourceVersion },
          (type: string, obj: T) => {
            if (type === "ADDED" || type === "MODIFIED") last = obj;
            else if (type === "DELETED") last = undefined;
            else return;
            if (predicate(last)) finish(true);
          },
          () => finish(false),
        )
        .then((c) => {
          controller = c;
          if (settled) c.abort();
        }, reject);
    });
    if (outcome.matched) return last;
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${ref.plural} ${namespace}/${name}; last state: ${JSON.stringify(last)}`,
  );
}
