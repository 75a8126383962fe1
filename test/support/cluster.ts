import {
  V1MicroTime,
  Watch,
  type KubeConfig,
  type CoordinationV1Api,
  type CoreV1Api,
  type CustomObjectsApi,
  type KubernetesObject,
} from "@kubernetes/client-node";
import { readFileSync } from "node:fs";
import { registrySecretManifest, type Testenv } from "../../hack/testenv/index.js";
import { loadKube, mergePatch } from "../../src/kube/client.js";
import { LEASE_LABEL_POOL, LEASE_LABEL_VM, leaseName } from "../../src/lease/holder.js";
import { LEASE_LABEL_MANAGED, LEASE_MANAGED_VALUE, LEASE_SELECTOR } from "../../src/lease/leases.js";
import { waitUntil } from "./processes.js";

// What a test does as the cluster admin: namespaces, pools, secrets, CustomRuns as Tekton would create them.

export interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

export interface CustomRunObject extends KubernetesObject {
  spec: Record<string, unknown>;
  status?: {
    conditions?: Condition[];
    results?: { name: string; value: string }[];
    extraFields?: Record<string, unknown>;
    startTime?: string;
    completionTime?: string;
    retriesStatus?: unknown[];
  };
}

const TEKTON = { group: "tekton.dev", version: "v1beta1", plural: "customruns" };
const POOLS = { group: "pool.kubevirt.io", version: "v1beta1", plural: "virtualmachinepools" };
const VMS = { group: "kubevirt.io", version: "v1", plural: "virtualmachines" };
const VMIS = { group: "kubevirt.io", version: "v1", plural: "virtualmachineinstances" };

/** The ssh Secret every test namespace gets: the stand-in's VMs accept its key and present its known host key. */
export const VM_SSH_SECRET = "build-vm-ssh";

/**
 * How a pool's VMs serve podman: "ssh" (the default configuration: podman on its unix socket, reached through the
 * VM's sshd with the namespace's `build-vm-ssh` Secret), "tcp" (podman on the VM's address, the article's setup),
 * or "unset": no transport annotation at all (ssh without its Secret named, a misconfigured pool).
 */
export type PoolTransport = "ssh" | "tcp" | "unset";

export class Cluster {
  readonly kc: KubeConfig;
  readonly custom: CustomObjectsApi;
  readonly core: CoreV1Api;
  readonly coordination: CoordinationV1Api;

  constructor(readonly env: Testenv) {
    ({ kc: this.kc, custom: this.custom, core: this.core, coordination: this.coordination } = loadKube(env.adminKubeconfig));
  }

  /**
   * A fresh namespace with the registry Secret `registry` and the VMs' ssh Secret `build-vm-ssh` in it. There is
   * no namespace controller: names are unique.
   */
  async namespace(prefix: string): Promise<string> {
    const name = `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
    await this.core.createNamespace({ body: { metadata: { name } } });
    // A real cluster's ServiceAccount controller creates `default` in every namespace; this one has none.
    await this.core.createNamespacedServiceAccount({ namespace: name, body: { metadata: { name: "default" } } });
    await this.core.createNamespacedSecret({
      namespace: name,
      body: registrySecretManifest(name, "registry", this.env),
    });
    await this.core.createNamespacedSecret({
      namespace: name,
      body: {
        metadata: { name: VM_SSH_SECRET },
        type: "kubernetes.io/ssh-auth",
        stringData: { "ssh-privatekey": readFileSync(this.env.vmSsh.clientKeyFile, "utf8"), known_hosts: this.env.vmSsh.knownHosts },
      },
    });
    return name;
  }

  /**
   * A pool of `replicas` halted VMs, as the article's pool (but with runStrategy). `annotations` go on the VM
   * template (the stand-in reads them); `pool` sets the pool's own annotations (warm settings), its template's
   * architecture and the transport (default ssh, the protected configuration).
   */
  async pool(
    namespace: string,
    name: string,
    replicas: number,
    vmAnnotations: Record<string, string> = {},
    pool: { annotations?: Record<string, string>; architecture?: string; transport?: PoolTransport } = {},
  ): Promise<void> {
    const tcp = pool.transport === "tcp";
    const annotations = tcp ? { ...vmAnnotations, "sim.vmbuild.dev/podman-listen": "tcp" } : vmAnnotations;
    const transport = { ssh: { "vmbuild.dev/ssh-secret": VM_SSH_SECRET }, tcp: { "vmbuild.dev/podman-connection": "tcp" }, unset: {} };
    const poolAnnotations = { ...transport[pool.transport ?? "ssh"], ...pool.annotations };
    await this.custom.createNamespacedCustomObject({
      ...POOLS,
      namespace,
      body: {
        apiVersion: "pool.kubevirt.io/v1beta1",
        kind: "VirtualMachinePool",
        metadata: { name, namespace, annotations: poolAnnotations },
        spec: {
          replicas,
          selector: { matchLabels: { vmtype: name } },
          virtualMachineTemplate: {
            metadata: { labels: { vmtype: name }, annotations },
            spec: {
              runStrategy: "Halted",
              template: {
                metadata: { labels: { vmtype: name } },
                spec: { domain: { devices: {} }, ...(pool.architecture ? { architecture: pool.architecture } : {}) },
              },
            },
          },
        },
      },
    });
    await waitUntil(
      async () => (await this.vms(namespace)).length >= replicas,
      30_000,
      () => `pool ${namespace}/${name} did not get ${replicas} VMs`,
    );
  }

  async vms(namespace: string): Promise<KubernetesObject[]> {
    const list = (await this.custom.listNamespacedCustomObject({ ...VMS, namespace })) as { items: KubernetesObject[] };
    return list.items;
  }

  async vmis(namespace: string): Promise<KubernetesObject[]> {
    const list = (await this.custom.listNamespacedCustomObject({ ...VMIS, namespace })) as { items: KubernetesObject[] };
    return list.items;
  }

  async leases(namespace: string): Promise<KubernetesObject[]> {
    return (await this.coordination.listNamespacedLease({ namespace, labelSelector: LEASE_SELECTOR })).items;
  }

  /** A VM's Lease as vmbuild writes it, held by `holder` from now on: what whoever leases the VM creates first. */
  async createVMLease(namespace: string, pool: string, vm: string, holder: string): Promise<void> {
    await this.coordination.createNamespacedLease({
      namespace,
      body: {
        metadata: {
          name: leaseName(vm),
          labels: { [LEASE_LABEL_MANAGED]: LEASE_MANAGED_VALUE, [LEASE_LABEL_POOL]: pool, [LEASE_LABEL_VM]: vm },
        },
        spec: { holderIdentity: holder, acquireTime: new V1MicroTime(Date.now()) },
      },
    });
  }

  /** A CustomRun as Tekton creates it for `taskRef: {apiVersion: vmbuild.dev/v1alpha1, kind: VMBuild}`. */
  async createRun(
    namespace: string,
    name: string,
    params: Record<string, string | string[]>,
    extra: Record<string, unknown> = {},
  ): Promise<CustomRunObject> {
    return (await this.custom.createNamespacedCustomObject({
      ...TEKTON,
      namespace,
      body: {
        apiVersion: "tekton.dev/v1beta1",
        kind: "CustomRun",
        metadata: {
          name,
          namespace,
          labels: { "tekton.dev/pipelineRun": "demo", "tekton.dev/pipelineTask": "build" },
        },
        // `extra` may replace customRef (with a name, or by customSpec: pass customRef: undefined).
        spec: JSON.parse(
          JSON.stringify({
            customRef: { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild" },
            serviceAccountName: "default",
            params: Object.entries(params).map(([n, value]) => ({ name: n, value })),
            ...extra,
          }),
        ) as Record<string, unknown>,
      },
    })) as CustomRunObject;
  }

  async listRuns(namespace: string): Promise<CustomRunObject[]> {
    return ((await this.custom.listNamespacedCustomObject({ ...TEKTON, namespace })) as { items: CustomRunObject[] }).items;
  }

  async getRun(namespace: string, name: string): Promise<CustomRunObject> {
    return (await this.custom.getNamespacedCustomObject({ ...TEKTON, namespace, name })) as CustomRunObject;
  }

  async patchRun(namespace: string, name: string, patch: object): Promise<void> {
    await this.custom.patchNamespacedCustomObject(
      { ...TEKTON, namespace, name, body: patch },
      mergePatch,
    );
  }

  async deleteRun(namespace: string, name: string): Promise<void> {
    await this.custom.deleteNamespacedCustomObject({ ...TEKTON, namespace, name });
  }

  /**
   * Resolves at the first version of the run whose Succeeded condition has one of `reasons`, as a watch delivers
   * every version: a state held only for a moment (Scratching, while the stand-in scratches in ~0.1 s) is seen
   * where polling could miss it.
   */
  async watchForReason(namespace: string, name: string, reasons: string[], timeoutMs = 60_000): Promise<CustomRunObject> {
    let last: CustomRunObject | undefined;
    let timer: NodeJS.Timeout | undefined;
    let request: AbortController | undefined;
    try {
      return await new Promise<CustomRunObject>((resolve, reject) => {
        timer = setTimeout(
          () => reject(new Error(`run ${namespace}/${name} never reached ${reasons.join("|")}; last: ${JSON.stringify(last?.status?.conditions)}`)),
          timeoutMs,
        );
        new Watch(this.kc)
          .watch(
            `/apis/${TEKTON.group}/${TEKTON.version}/namespaces/${namespace}/${TEKTON.plural}`,
            { fieldSelector: `metadata.name=${name}` },
            (_type: string, run: CustomRunObject) => {
              last = run;
              if (reasons.includes(succeeded(run)?.reason ?? "")) resolve(run);
            },
            (err: unknown) => {
              if (err) reject(err instanceof Error ? err : new Error(String(err)));
            },
          )
          .then((r) => (request = r), reject);
      });
    } finally {
      clearTimeout(timer);
      request?.abort();
    }
  }

  /** Waits until the run's Succeeded condition has one of `reasons` (and a message matching `message`). */
  async waitForReason(
    namespace: string,
    name: string,
    reasons: string[],
    timeoutMs = 60_000,
    message?: RegExp,
  ): Promise<CustomRunObject> {
    let run: CustomRunObject | undefined;
    await waitUntil(
      async () => {
        run = await this.getRun(namespace, name);
        const c = succeeded(run);
        return reasons.includes(c?.reason ?? "") && (message === undefined || message.test(c?.message ?? ""));
      },
      timeoutMs,
      () => `run ${namespace}/${name} never reached ${reasons.join("|")}; last: ${JSON.stringify(run?.status?.conditions)}`,
    );
    if (!run) throw new Error("unreachable");
    return run;
  }

  /** Resolves once the run is gone from the API (its finalizer removed after deletion). */
  async waitForRunGone(namespace: string, name: string, timeoutMs = 60_000): Promise<void> {
    await waitUntil(
      async () => this.getRun(namespace, name).then(() => false, () => true),
      timeoutMs,
      () => `run ${namespace}/${name} still exists`,
    );
  }

  /** Waits until the run's Succeeded condition is no longer Unknown; reports each new reason to `onProgress`. */
  async waitForRun(
    namespace: string,
    name: string,
    timeoutMs: number,
    onProgress?: (c: Condition) => void,
  ): Promise<CustomRunObject> {
    let last = "";
    let run: CustomRunObject | undefined;
    await waitUntil(
      async () => {
        run = await this.getRun(namespace, name);
        const c = run.status?.conditions?.find((x) => x.type === "Succeeded");
        const seen = `${c?.reason}:${c?.message}`;
        if (c && seen !== last) {
          last = seen;
          onProgress?.(c);
        }
        return c !== undefined && c.status !== "Unknown";
      },
      timeoutMs,
      () => `run ${namespace}/${name} did not finish; last condition ${last}`,
    );
    if (!run) throw new Error("unreachable");
    return run;
  }
}

export function succeeded(run: CustomRunObject): Condition | undefined {
  return run.status?.conditions?.find((c) => c.type === "Succeeded");
}

export function result(run: CustomRunObject, name: string): string | undefined {
  return run.status?.results?.find((r) => r.name === name)?.value;
}
