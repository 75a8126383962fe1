// Server-side apply of the project's manifests and the stand-in CRDs, then waiting until they are usable.
import { readFile } from "node:fs/promises";
import {
  ApiextensionsV1Api,
  AuthorizationV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  loadAllYaml,
  type KubernetesObject,
  type V1ResourceAttributes,
} from "@kubernetes/client-node";
import { rel } from "./paths.js";
import { poll } from "./wait.js";

const fieldManager = "vmbuild-testenv";

export function loadKubeconfig(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

/** Applies every object of the files in order; returns the names of the CRDs among them. */
export async function applyFiles(kc: KubeConfig, files: readonly string[]): Promise<string[]> {
  const crds: string[] = [];
  for (const file of files) {
    // loadAllYaml deserializes into client-node's typed models, which its serializer needs to keep fields such as
    // x-kubernetes-preserve-unknown-fields (a plain object would lose them on the way out).
    const objects = (loadAllYaml(await readFile(file, "utf8")) as (KubernetesObject | null)[]).filter(
      (o): o is KubernetesObject => o !== null && o !== undefined,
    );
    crds.push(...(await applyObjects(kc, objects, rel(file))));
  }
  return crds;
}

/** Applies objects (typed models, see applyFiles) in order; `origin` names where they came from in errors. */
export async function applyObjects(kc: KubeConfig, objects: readonly KubernetesObject[], origin: string): Promise<string[]> {
  const client = KubernetesObjectApi.makeApiClient(kc);
  const crds: string[] = [];
  for (const obj of objects) {
    const what = `${obj.kind ?? "?"} ${obj.metadata?.name ?? "?"} from ${origin}`;
    try {
      await client.patch(obj, undefined, undefined, fieldManager, true, PatchStrategy.ServerSideApply);
    } catch (err) {
      throw new Error(`applying ${what} failed: ${(err as Error).message}`);
    }
    if (obj.kind === "CustomResourceDefinition" && obj.metadata?.name) crds.push(obj.metadata.name);
  }
  return crds;
}

/**
 * Established is not enough: for about a second afterwards (longer on a busy machine) lists answer 429 "storage is
 * (re)initializing" while the watch cache fills. Wait until every served version lists, so tests start on a
 * usable API.
 */
export async function waitCrdsServed(kc: KubeConfig, names: readonly string[]): Promise<void> {
  const crds = kc.makeApiClient(ApiextensionsV1Api);
  const objects = kc.makeApiClient(CustomObjectsApi);
  for (const name of names) {
    const crd = await poll(
      async () => {
        const found = await crds.readCustomResourceDefinition({ name });
        const established = found.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
        return established ? found : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: `CRD ${name} was not Established` },
    );
    for (const version of crd.spec.versions.filter((v) => v.served)) {
      const request = { group: crd.spec.group, version: version.name, plural: crd.spec.names.plural, limit: 1 };
      await poll(async () => ((await objects.listClusterCustomObject(request)) ? true : undefined), {
        timeoutMs: 60_000,
        intervalMs: 250,
        what: `${crd.spec.names.plural}.${crd.spec.group}/${version.name} could not be listed`,
      });
    }
  }
}

/** Asks the apiserver, as the kubeconfig's user, whether it may do something. */
export async function canI(kc: KubeConfig, attrs: V1ResourceAttributes): Promise<boolean> {
  const api = kc.makeApiClient(AuthorizationV1Api);
  const review = await api.createSelfSubjectAccessReview({
    body: { apiVersion: "authorization.k8s.io/v1", kind: "SelfSubjectAccessReview", spec: { resourceAttributes: attrs } },
  });
  return review.status?.allowed === true;
}

/** RBAC objects reach the authorizer through an informer: wait until the controller's binding is in effect. */
export async function waitControllerAuthorized(controller: KubeConfig): Promise<void> {
  await poll(
    async () => ((await canI(controller, { group: "tekton.dev", resource: "customruns", verb: "list" })) ? true : undefined),
    { timeoutMs: 20_000, intervalMs: 200, what: "the controller's RBAC binding did not take effect (list customruns)" },
  );
}
