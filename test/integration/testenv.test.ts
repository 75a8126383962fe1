// The local control plane itself: CRDs served, RBAC as deploy/rbac.yaml grants it, registry auth, base image.
// The testenv is brought up by the integration project's globalSetup; this file only reads .testenv/env.json.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  loadAllYaml,
  type V1CustomResourceDefinition,
} from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import {
  readTestenv,
  registryDockerConfigJson,
  registrySecretManifest,
  type Testenv,
} from "../../hack/testenv/index.js";
import { yamlFilesIn } from "../../hack/testenv/manifest-files.js";
import { repoRoot } from "../../hack/testenv/paths.js";

interface Served {
  group: string;
  version: string;
  plural: string;
}

const standIns: readonly Served[] = [
  { group: "tekton.dev", version: "v1beta1", plural: "customruns" },
  { group: "kubevirt.io", version: "v1", plural: "virtualmachines" },
  { group: "kubevirt.io", version: "v1", plural: "virtualmachineinstances" },
  { group: "pool.kubevirt.io", version: "v1alpha1", plural: "virtualmachinepools" },
  { group: "pool.kubevirt.io", version: "v1beta1", plural: "virtualmachinepools" },
];

/** Every served version of the project's own CRDs (deploy/crds/*.yaml, if any). */
async function projectCrds(): Promise<Served[]> {
  const served: Served[] = [];
  for (const file of await yamlFilesIn(join(repoRoot, "deploy/crds"))) {
    for (const obj of loadAllYaml(await readFile(file, "utf8")) as V1CustomResourceDefinition[]) {
      if (obj?.kind !== "CustomResourceDefinition") continue;
      for (const v of obj.spec.versions.filter((x) => x.served)) {
        served.push({ group: obj.spec.group, version: v.name, plural: obj.spec.names.plural });
      }
    }
  }
  return served;
}

function kubeconfig(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

/** The HTTP status a failed API call ended with (0 if it succeeded). */
async function statusOf(call: () => Promise<unknown>): Promise<number> {
  try {
    await call();
    return 0;
  } catch (err) {
    if (err instanceof ApiException) return err.code;
    throw err;
  }
}

let env: Testenv;
let admin: KubeConfig;
let controller: KubeConfig;
let nobody: KubeConfig;

beforeAll(() => {
  const found = readTestenv();
  if (!found) throw new Error("no testenv: .testenv/env.json is missing (globalSetup should run `up`)");
  env = found;
  admin = kubeconfig(env.adminKubeconfig);
  controller = kubeconfig(env.controllerKubeconfig);
  nobody = kubeconfig(env.nobodyKubeconfig);
});

describe("testenv control plane", () => {
  it("serves the stand-in CRDs and the project's CRDs", async () => {
    const api = admin.makeApiClient(CustomObjectsApi);
    for (const crd of [...standIns, ...(await projectCrds())]) {
      const list = (await api.listClusterCustomObject(crd)) as { kind?: string; items?: unknown[] };
      expect(list.items, `${crd.plural}.${crd.group}/${crd.version}`).toBeInstanceOf(Array);
    }
  });

  it("lets the controller list customruns and create leases", async () => {
    const runs = controller.makeApiClient(CustomObjectsApi);
    expect(await statusOf(() => runs.listClusterCustomObject(standIns[0] as Served))).toBe(0);

    const leases = controller.makeApiClient(CoordinationV1Api);
    const name = `testenv-check-${Date.now()}`;
    await leases.createNamespacedLease({
      namespace: "vmbuild-system",
      body: { metadata: { name }, spec: { holderIdentity: "testenv-test", leaseDurationSeconds: 10 } },
    });
    await leases.deleteNamespacedLease({ namespace: "vmbuild-system", name });
  });

  it("denies the controller what deploy/rbac.yaml does not grant", async () => {
    const core = controller.makeApiClient(CoreV1Api);
    expect(await statusOf(() => core.listSecretForAllNamespaces())).toBe(403);
    expect(
      await statusOf(() =>
        core.createNamespacedPod({
          namespace: "default",
          body: { metadata: { name: "testenv-denied" }, spec: { containers: [{ name: "c", image: env.baseImage }] } },
        }),
      ),
    ).toBe(403);

    // A run that exists, so that a 403 cannot be a 404 in disguise.
    const asAdmin = admin.makeApiClient(CustomObjectsApi);
    const name = `testenv-check-${Date.now()}`;
    const run = { group: "tekton.dev", version: "v1beta1", namespace: "default", plural: "customruns" };
    await asAdmin.createNamespacedCustomObject({
      ...run,
      body: { apiVersion: "tekton.dev/v1beta1", kind: "CustomRun", metadata: { name }, spec: {} },
    });
    try {
      const asController = controller.makeApiClient(CustomObjectsApi);
      expect(await statusOf(() => asController.deleteNamespacedCustomObject({ ...run, name }))).toBe(403);
    } finally {
      await asAdmin.deleteNamespacedCustomObject({ ...run, name });
    }
  });

  it("gives the nobody identity nothing", async () => {
    const api = nobody.makeApiClient(CustomObjectsApi);
    expect(await statusOf(() => api.listClusterCustomObject(standIns[0] as Served))).toBe(403);
  });
});

describe("testenv registry", () => {
  const basic = (user: string, password: string): string =>
    `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

  it("rejects anonymous and wrong credentials, accepts the testenv's", async () => {
    const url = `http://${env.registry.host}/v2/`;
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { Authorization: basic(env.registry.username, "wrong") } })).status).toBe(401);
    const ok = await fetch(url, { headers: { Authorization: basic(env.registry.username, env.registry.password) } });
    expect(ok.status).toBe(200);
  });

  it("builds dockerconfigjson secrets for it", () => {
    const config = JSON.parse(registryDockerConfigJson(env)) as { auths: Record<string, { auth: string }> };
    const auth = config.auths[env.registry.host]?.auth ?? "";
    expect(Buffer.from(auth, "base64").toString()).toBe(`${env.registry.username}:${env.registry.password}`);
    const secret = registrySecretManifest("team-a", "registry", env);
    expect(secret.type).toBe("kubernetes.io/dockerconfigjson");
    expect(Buffer.from(secret.data?.[".dockerconfigjson"] ?? "", "base64").toString()).toBe(registryDockerConfigJson(env));
  });

  it("serves the base image as an index for amd64, arm64, ppc64le and s390x", async () => {
    const ref = env.baseImage;
    const [, repoAndTag = ""] = ref.split(`${env.registry.host}/`);
    const [repository, tag] = repoAndTag.split(":");
    const res = await fetch(`http://${env.registry.host}/v2/${repository}/manifests/${tag}`, {
      headers: {
        Authorization: basic(env.registry.username, env.registry.password),
        Accept: "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json",
      },
    });
    expect(res.status).toBe(200);
    const index = (await res.json()) as { mediaType?: string; manifests: { platform?: { architecture: string; os: string } }[] };
    expect(index.mediaType).toMatch(/index|manifest\.list/);
    const platforms = index.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`).sort();
    expect(platforms).toEqual(["linux/amd64", "linux/arm64", "linux/ppc64le", "linux/s390x"]);
  });
});
