import { ApiException, CoordinationV1Api, CustomObjectsApi, KubeConfig, type KubernetesObject } from "@kubernetes/client-node";
import { z } from "zod";
import { VMBUILD_LOG_PLURAL } from "../api/vmbuild-log.js";
import { VMBUILD_GROUP, VMBUILD_VERSION } from "../api/vmbuild.js";
import { apiStatus, isNotFound } from "../kube/errors.js";
import { CUSTOM_RUNS, POOL_VERSIONS, poolResource, VIRTUAL_MACHINES, VMIS, type Resource } from "../kube/resources.js";
import { LEASE_SELECTOR } from "../lease/leases.js";
import type { Connection } from "./args.js";
import type { RunsScope } from "./describe.js";

// The CLI's reads, made with the user's own kubeconfig (client certificates, tokens, exec plugins: as client-node
// handles them), so that Kubernetes RBAC decides what the user sees. Nothing here writes.

/** A failure to report: its message is printed as it is, then the process exits with `code`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code = 1,
  ) {
    super(message);
  }
}

export interface Reader {
  namespace: string;
  getRun(name: string): Promise<unknown>;
  /** The VMBuildLog, or undefined while there is none. */
  getLog(name: string): Promise<unknown>;
  /** The runs, cluster-wide if the user may list them there, else the namespace's. */
  listRuns(): Promise<{ items: KubernetesObject[]; scope: RunsScope }>;
  listPools(): Promise<KubernetesObject[]>;
  listVMs(): Promise<KubernetesObject[]>;
  listVMIs(): Promise<KubernetesObject[]>;
  listLeases(): Promise<KubernetesObject[]>;
}

const LOGS: Resource = { group: VMBUILD_GROUP, version: VMBUILD_VERSION, plural: VMBUILD_LOG_PLURAL, kind: "VMBuildLog" };

export function loadConfig(conn: Connection): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (conn.kubeconfig) kc.loadFromFile(conn.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw new CliError(`error: cannot load the kubeconfig: ${(err as Error).message}`);
  }
  if (conn.context) {
    if (!kc.getContextObject(conn.context)) throw new CliError(`error: context "${conn.context}" does not exist in the kubeconfig`);
    kc.setCurrentContext(conn.context);
  }
  return kc;
}

export function kubeReader(kc: KubeConfig, conn: Connection): Reader {
  const namespace = conn.namespace ?? (kc.getContextObject(kc.getCurrentContext())?.namespace || "default");
  const custom = kc.makeApiClient(CustomObjectsApi);
  const coordination = kc.makeApiClient(CoordinationV1Api);
  const at = (r: Resource) => ({ group: r.group, version: r.version, plural: r.plural, namespace });
  const list = async (r: Resource) => items(await call(() => custom.listNamespacedCustomObject(at(r))));
  return {
    namespace,
    getRun: (name) => call(() => custom.getNamespacedCustomObject({ ...at(CUSTOM_RUNS), name })),
    async getLog(name) {
      try {
        return await custom.getNamespacedCustomObject({ ...at(LOGS), name });
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw fromApi(err);
      }
    },
    async listRuns() {
      const { group, version, plural } = CUSTOM_RUNS;
      try {
        return { items: items(await custom.listClusterCustomObject({ group, version, plural })), scope: "cluster" };
      } catch (err) {
        if (apiStatus(err) !== 403) throw fromApi(err);
      }
      return { items: await list(CUSTOM_RUNS), scope: { namespace } };
    },
    async listPools() {
      // Whichever version KubeVirt serves (v1beta1 from v1.7, v1alpha1 before).
      for (const version of POOL_VERSIONS) {
        try {
          return items(await custom.listNamespacedCustomObject(at(poolResource(version))));
        } catch (err) {
          if (!isNotFound(err)) throw fromApi(err);
        }
      }
      throw new CliError(`error: the server serves no VirtualMachinePools (pool.kubevirt.io ${POOL_VERSIONS.join(", ")})`);
    },
    listVMs: () => list(VIRTUAL_MACHINES),
    listVMIs: () => list(VMIS),
    listLeases: async () => (await call(() => coordination.listNamespacedLease({ namespace, labelSelector: LEASE_SELECTOR }))).items as KubernetesObject[],
  };
}

async function call<T>(request: () => Promise<T>): Promise<T> {
  try {
    return await request();
  } catch (err) {
    throw fromApi(err);
  }
}

const ListSchema = z.object({ items: z.array(z.looseObject({})) });

function items(list: unknown): KubernetesObject[] {
  const parsed = ListSchema.safeParse(list);
  if (!parsed.success) throw new CliError("error: the server answered a list with no items");
  return parsed.data.items as KubernetesObject[];
}

const StatusSchema = z.object({ reason: z.string().optional(), message: z.string().optional() });

/** As kubectl says it: "Error from server (Forbidden): <the apiserver's message>". Never the request's headers. */
export function fromApi(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof ApiException) {
    const raw: unknown = typeof err.body === "string" ? parseJson(err.body) : err.body;
    const status = StatusSchema.safeParse(raw);
    const reason = (status.success && status.data.reason) || `HTTP ${err.code}`;
    const message = (status.success && status.data.message) || "the server gave no message";
    return new CliError(`Error from server (${reason}): ${message}`);
  }
  return new CliError(`error: ${err instanceof Error ? err.message : String(err)}`);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
