import type { CustomObjectsApi } from "@kubernetes/client-node";
import {
  RUN_UID_LABEL,
  VMBUILD_LOG_API_VERSION,
  VMBUILD_LOG_KIND,
  VMBUILD_LOG_PLURAL,
  VMBuildLogSchema,
  vmbuildLogName,
  type VMBuildLog,
  type VMBuildLogFields,
} from "../api/vmbuild-log.js";
import { VMBUILD_GROUP, VMBUILD_VERSION } from "../api/vmbuild.js";
import { isNotFound } from "../kube/errors.js";
import { CUSTOM_RUNS } from "../kube/resources.js";
import type { RunRef } from "./log-store.js";

// The VMBuildLog objects in the API: written whole (create, then update with the resourceVersion last written),
// read by name. What is read is validated here, at the edge.

const RESOURCE = { group: VMBUILD_GROUP, version: VMBUILD_VERSION, plural: VMBUILD_LOG_PLURAL };

export interface LogObjects {
  /** Resolves to the new resourceVersion and the request body's size in bytes. */
  create(run: RunRef, attempt: number, fields: VMBuildLogFields): Promise<Written>;
  update(run: RunRef, attempt: number, fields: VMBuildLogFields, resourceVersion: string): Promise<Written>;
  /** The object, or undefined when there is none. */
  get(namespace: string, runUID: string, attempt: number): Promise<VMBuildLog | undefined>;
}

export interface Written {
  resourceVersion: string;
  requestBytes: number;
}

/** The object as written: labelled, and owned by the run so that it goes when the run goes. */
export function logObject(run: RunRef, attempt: number, fields: VMBuildLogFields, resourceVersion?: string): object {
  return {
    apiVersion: VMBUILD_LOG_API_VERSION,
    kind: VMBUILD_LOG_KIND,
    metadata: {
      name: vmbuildLogName(run.uid, attempt),
      namespace: run.namespace,
      ...(resourceVersion ? { resourceVersion } : {}),
      labels: { "app.kubernetes.io/managed-by": "vmbuild", [RUN_UID_LABEL]: run.uid },
      // No blockOwnerDeletion: it would need update on customruns/finalizers, and nothing waits for the log.
      ownerReferences: [{ apiVersion: `${CUSTOM_RUNS.group}/${CUSTOM_RUNS.version}`, kind: CUSTOM_RUNS.kind, name: run.name, uid: run.uid }],
    },
    ...fields,
  };
}

export function kubeLogObjects(custom: CustomObjectsApi): LogObjects {
  const written = (body: object, result: unknown): Written => ({
    resourceVersion: VMBuildLogSchema.shape.metadata.parse((result as { metadata?: unknown }).metadata).resourceVersion,
    requestBytes: Buffer.byteLength(JSON.stringify(body)),
  });
  return {
    async create(run, attempt, fields) {
      const body = logObject(run, attempt, fields);
      return written(body, await custom.createNamespacedCustomObject({ ...RESOURCE, namespace: run.namespace, body }));
    },
    async update(run, attempt, fields, resourceVersion) {
      const body = logObject(run, attempt, fields, resourceVersion);
      const name = vmbuildLogName(run.uid, attempt);
      return written(body, await custom.replaceNamespacedCustomObject({ ...RESOURCE, namespace: run.namespace, name, body }));
    },
    async get(namespace, runUID, attempt) {
      let found: unknown;
      try {
        found = await custom.getNamespacedCustomObject({ ...RESOURCE, namespace, name: vmbuildLogName(runUID, attempt) });
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
      const parsed = VMBuildLogSchema.safeParse(found);
      if (!parsed.success) {
        throw new Error(`${VMBUILD_LOG_KIND} ${namespace}/${vmbuildLogName(runUID, attempt)} is malformed: ${parsed.error.issues[0]?.message}`);
      }
      return parsed.data;
    },
  };
}
