// Typed access to KubeVirt's custom resources through @kubernetes/client-node's CustomObjectsApi.
import {
  ApiException,
  ApisApi,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type KubernetesListObject,
  type KubernetesObject,
} from "@kubernetes/client-node";
import type { ResourceRef } from "./types.js";

export type JsonPatchOp =
  | { op: "add" | "replace" | "test"; path: string; value: unknown }
  | { op: "remove"; path: string };

export type NewObject = KubernetesObject & { spec?: unknown };

/** HTTP status of an API error, also when wrapped (as `cause`) by KubeClient. */
export function apiErrorCode(err: unknown): number | undefined {
  if (err instanceof ApiException) return (err as ApiException<unknown>).code;
  if (err instanceof Error && err.cause !== undefined) return apiErrorCode(err.cause);
  return undefined;
}

export const isNotFound = (err: unknown): boolean => apiErrorCode(err) === 404;
export const isConflict = (err: unknown): boolean => apiErrorCode(err) === 409;

/** ApiException messages embed all response headers: keep the status code and the Status message only. */
export function describeError(err: unknown): string {
  if (err instanceof ApiException) {
    const e = err as ApiException<unknown>;
    let message = "";
    try {
      const body: unknown = typeof e.body === "string" ? JSON.parse(e.body) : e.body;
      if (typeof body === "object" && body !== null && "message" in body) message = String(body.message);
    } catch {
      message = String(e.body);
    }
    return `HTTP ${e.code}: ${message}`;
  }
  return err instanceof Error ? err.message : String(err);
}

export class KubeClient {
  readonly kc: KubeConfig;
  private readonly api: CustomObjectsApi;

  constructor(kubeconfigPath: string) {
    this.kc = new KubeConfig();
    this.kc.loadFromFile(kubeconfigPath);
    this.api = this.kc.makeApiClient(CustomObjectsApi);
  }

  private what(ref: ResourceRef, namespace: string, name?: string): string {
    return `${ref.plural}.${ref.group}/${ref.version} ${namespace}/${name ?? ""}`;
  }

  private wrap(action: string, err: unknown): Error {
    return new Error(`${action}: ${describeError(err)}`, { cause: err });
  }

  /** Served versions of an API group, newest-preferred first (the server's preferredVersion leads). */
  async servedVersions(group: string): Promise<string[]> {
    const groups = await this.kc.makeApiClient(ApisApi).getAPIVersions();
    const g = groups.groups.find((x) => x.name === group);
    if (g === undefined) return [];
    const preferred = g.preferredVersion?.version;
    const versions = g.versions.map((v) => v.version);
    return preferred === undefined ? versions : [preferred, ...versions.filter((v) => v !== preferred)];
  }

  async listAll<T extends KubernetesObject>(ref: ResourceRef): Promise<KubernetesListObject<T>> {
    try {
      return (await this.api.listCustomObjectForAllNamespaces({
        group: ref.group,
        version: ref.version,
        plural: ref.plural,
      })) as KubernetesListObject<T>;
    } catch (err) {
      throw this.wrap(`list ${ref.plural}.${ref.group}/${ref.version}`, err);
    }
  }

  async listNamespaced<T extends KubernetesObject>(
    ref: ResourceRef,
    namespace: string,
    fieldSelector?: string,
  ): Promise<KubernetesListObject<T>> {
    try {
      return (await this.api.listNamespacedCustomObject({ ...this.coords(ref, namespace), fieldSelector })) as KubernetesListObject<T>;
    } catch (err) {
      throw this.wrap(`list ${this.what(ref, namespace)}`, err);
    }
  }

  async get<T extends KubernetesObject>(ref: ResourceRef, namespace: string, name: string): Promise<T | undefined> {
    try {
      return (await this.api.getNamespacedCustomObject({ ...this.coords(ref, namespace), name })) as T;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw this.wrap(`get ${this.what(ref, namespace, name)}`, err);
    }
  }

  /** `body` is a new object (no uid yet); resolves with what the API stored. */
  async create<T extends KubernetesObject>(ref: ResourceRef, namespace: string, body: NewObject): Promise<T> {
    try {
      return (await this.api.createNamespacedCustomObject({ ...this.coords(ref, namespace), body })) as T;
    } catch (err) {
      throw this.wrap(`create ${this.what(ref, namespace, body.metadata?.name)}`, err);
    }
  }

  /** Deletes if it still exists (and still has `uid`, when given). Returns false when there was nothing to delete. */
  async delete(
    ref: ResourceRef,
    namespace: string,
    name: string,
    opts: { uid?: string; gracePeriodSeconds?: number } = {},
  ): Promise<boolean> {
    try {
      await this.api.deleteNamespacedCustomObject({
        ...this.coords(ref, namespace),
        name,
        gracePeriodSeconds: opts.gracePeriodSeconds,
        body: opts.uid === undefined ? undefined : { preconditions: { uid: opts.uid } },
      });
      return true;
    } catch (err) {
      // 409 on a uid precondition: the name now belongs to a newer object, which is not ours to delete.
      if (isNotFound(err) || (opts.uid !== undefined && isConflict(err))) return false;
      throw this.wrap(`delete ${this.what(ref, namespace, name)}`, err);
    }
  }

  async mergePatch<T extends KubernetesObject>(ref: ResourceRef, namespace: string, name: string, body: object): Promise<T> {
    try {
      return (await this.api.patchNamespacedCustomObject(
        { ...this.coords(ref, namespace), name, body },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      )) as T;
    } catch (err) {
      throw this.wrap(`merge-patch ${this.what(ref, namespace, name)}`, err);
    }
  }

  async jsonPatch<T extends KubernetesObject>(
    ref: ResourceRef,
    namespace: string,
    name: string,
    ops: JsonPatchOp[],
  ): Promise<T> {
    try {
      return (await this.api.patchNamespacedCustomObject(
        { ...this.coords(ref, namespace), name, body: ops },
        setHeaderOptions("Content-Type", PatchStrategy.JsonPatch),
      )) as T;
    } catch (err) {
      throw this.wrap(`json-patch ${this.what(ref, namespace, name)}`, err);
    }
  }

  async mergePatchStatus<T extends KubernetesObject>(
    ref: ResourceRef,
    namespace: string,
    name: string,
    body: object,
  ): Promise<T> {
    try {
      return (await this.api.patchNamespacedCustomObjectStatus(
        { ...this.coords(ref, namespace), name, body },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      )) as T;
    } catch (err) {
      throw this.wrap(`patch status of ${this.what(ref, namespace, name)}`, err);
    }
  }

  private coords(ref: ResourceRef, namespace: string): { group: string; version: string; namespace: string; plural: string } {
    return { group: ref.group, version: ref.version, namespace, plural: ref.plural };
  }
}
