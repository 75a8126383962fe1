import type { KubernetesObject, ObjectCache } from "@kubernetes/client-node";
import type { VMBuildLog } from "../api/vmbuild-log.js";
import type { LogObjects } from "../jobs/log-object.js";
import { isOurs, parseRun } from "../tekton/customrun.js";
import { readRunState } from "../tekton/run-state.js";

// Where the log routes find a build log no local file holds: the run's stored copy (a VMBuildLog), named from the
// run's UID and attempt as the informer cache shows them, read from the API by name.

export interface StoredLogs {
  /** The run's UID and current attempt (0 until it has a state), or undefined if it is not one of ours. */
  run(namespace: string, name: string): { uid: string; attempt: number } | undefined;
  /** The stored copy of one attempt, or undefined when there is none. */
  read(namespace: string, uid: string, attempt: number): Promise<VMBuildLog | undefined>;
}

export function storedLogs(runs: ObjectCache<KubernetesObject>, objects: LogObjects): StoredLogs {
  return {
    run(namespace, name) {
      const raw = runs.get(name, namespace);
      if (!raw || !isOurs(raw)) return undefined;
      const { run } = parseRun(raw);
      if (!run) return undefined;
      return { uid: run.metadata.uid, attempt: readRunState(run.status?.extraFields)?.attempt ?? 0 };
    },
    read: (namespace, uid, attempt) => objects.get(namespace, uid, attempt),
  };
}
