import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import {
  CoreV1Api,
  HttpMethod,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  type KubernetesObject,
} from "@kubernetes/client-node";
import { beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { z } from "zod";
import { readTestenv } from "../../hack/testenv/index.js";
import { packageVersion, releaseResources, renderRelease } from "../../hack/render-release.js";
import { loadConfig } from "../../src/config.js";
import { resolveSettings, type Param } from "../../src/api/resolve.js";
import { SETTING_NAMES } from "../../src/api/settings.js";
import { parsePoolTransport } from "../../src/podman/pool-transport.js";

// The shipped manifests against a real API server: every object of deploy/release.yaml, deploy/examples/ and the
// NetworkPolicy template goes through a server-side dry-run apply with strict field validation, so a typo or a
// schema error fails here and not in a user's cluster. The Pipelines go through it against Tekton's own CRDs (the
// testenv's), and are also checked structurally, their VMBuild params resolved with the controller's own code; the
// PipelineRun (generateName: no apply) is run for real by tekton-pipelines.test.ts.
// The install conventions are checked here too: the recommended labels on every object (version = package.json's),
// selectors that an upgrade never changes, the namespace under the restricted Pod Security Standard, leader
// election granted by a Role in the controller's namespace, metrics on a port of their own.

const root = new URL("../../", import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), "utf8");

/** The example objects' namespace; replaced by a fresh one here (the testenv cannot delete namespaces). */
const EXAMPLES_NAMESPACE = "multi-arch-build";
const CONTROLLER_NAMESPACE = "vmbuild-system";
const LEADER_LEASE = "vmbuild-controller-leader";
/** The labels every installed object carries (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/). */
const RECOMMENDED_LABELS = ["name", "instance", "version", "component", "part-of"].map((l) => `app.kubernetes.io/${l}`);
/** What the controller's selectors select on: nothing that changes from one release to the next. */
const CONTROLLER_SELECTOR = { "app.kubernetes.io/name": "vmbuild-controller" };
const VMBUILD_TASK_REF = { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild" };
/** Results a VMBuild task reports (src/jobs/build.ts, README "Results"); a Pipeline may pass any of them on. */
const VMBUILD_RESULTS = ["IMAGE_URL", "IMAGE_DIGEST", "PLATFORM_DIGESTS", "CHAINS-GIT_URL", "CHAINS-GIT_COMMIT", "BUILD_VM"];

interface Manifest extends KubernetesObject {
  apiVersion: string;
  kind: string;
  metadata: { name?: string; generateName?: string; namespace?: string; labels?: Record<string, string> };
  spec?: unknown;
}

interface Loaded {
  file: string;
  obj: Manifest;
}

function loadObjects(file: string): Loaded[] {
  return parseAllDocuments(read(file)).flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]?.message ?? "invalid YAML"}`);
    const obj = doc.toJS() as Manifest | null;
    if (obj === null) return [];
    if (!obj.apiVersion || !obj.kind || !(obj.metadata?.name || obj.metadata?.generateName)) {
      throw new Error(`${file}: a document without apiVersion, kind or a name`);
    }
    return [{ file, obj }];
  });
}

const describeObj = ({ file, obj }: Loaded) => `${obj.kind} ${obj.metadata.name ?? obj.metadata.generateName} (${file})`;
const isTekton = (obj: Manifest) => obj.apiVersion.startsWith("tekton.dev/");

/**
 * KubernetesObjectApi finds the resource path (discovery); the request itself carries the manifest's JSON as
 * written. Its own patch() would first pass typed kinds through client-node's models, which silently drop unknown
 * fields, hiding exactly the typos this test is for.
 */
class StrictDryRunApi extends KubernetesObjectApi {
  async dryRunApply(obj: Manifest): Promise<KubernetesObject> {
    const copy = structuredClone(obj);
    const path = await this.specUriPath(copy, "patch");
    const request = this.configuration.baseServer.makeRequestContext(path, HttpMethod.PATCH);
    request.setHeaderParam("Accept", "application/json");
    request.setHeaderParam("Content-Type", PatchStrategy.ServerSideApply);
    request.setQueryParam("dryRun", "All");
    request.setQueryParam("fieldManager", "vmbuild-examples-test");
    request.setQueryParam("fieldValidation", "Strict");
    request.setQueryParam("force", "true");
    request.setBody(JSON.stringify(copy));
    return this.requestPromise(request);
  }
}

function inNamespace(obj: Manifest, namespace: string): Manifest {
  return { ...obj, metadata: { ...obj.metadata, namespace } };
}

// --- Tekton's shapes, as far as these examples use them (strict: an unknown field is a mistake) ---------------

const ParamValue = z.union([z.string(), z.array(z.string()), z.record(z.string(), z.string())]);
const PipelineSchema = z.object({
  apiVersion: z.literal("tekton.dev/v1"),
  kind: z.literal("Pipeline"),
  metadata: z.object({ name: z.string(), namespace: z.string() }),
  spec: z.strictObject({
    description: z.string().optional(),
    params: z
      .array(
        z.strictObject({
          name: z.string(),
          type: z.enum(["string", "array", "object"]).optional(),
          default: ParamValue.optional(),
          description: z.string().optional(),
        }),
      )
      .default([]),
    tasks: z
      .array(
        z.strictObject({
          name: z.string(),
          taskRef: z.strictObject({ apiVersion: z.string(), kind: z.string(), name: z.string().optional() }),
          params: z.array(z.strictObject({ name: z.string(), value: ParamValue })).default([]),
          timeout: z.string().optional(),
          retries: z.number().int().min(0).optional(),
          runAfter: z.array(z.string()).optional(),
        }),
      )
      .min(1),
    results: z
      .array(z.strictObject({ name: z.string(), description: z.string().optional(), value: z.string() }))
      .default([]),
  }),
});
const PipelineRunSchema = z.object({
  apiVersion: z.literal("tekton.dev/v1"),
  kind: z.literal("PipelineRun"),
  metadata: z.object({ namespace: z.string() }),
  spec: z.strictObject({
    pipelineRef: z.strictObject({ name: z.string() }),
    params: z.array(z.strictObject({ name: z.string(), value: ParamValue })).default([]),
    timeouts: z.strictObject({ pipeline: z.string().optional(), tasks: z.string().optional() }).optional(),
    taskRunTemplate: z.strictObject({ serviceAccountName: z.string().optional() }).optional(),
  }),
});
type Pipeline = z.infer<typeof PipelineSchema>;

// --- The controller's Deployment, as far as the wiring checks read it ----------------------------------------

const DeploymentSchema = z.object({
  metadata: z.object({ namespace: z.string() }),
  spec: z.object({
    replicas: z.number(),
    selector: z.object({ matchLabels: z.record(z.string(), z.string()) }),
    template: z.object({
      metadata: z.object({ labels: z.record(z.string(), z.string()) }),
      spec: z
        .object({
          serviceAccountName: z.string(),
          containers: z.array(
            z
              .object({
                image: z.string(),
                ports: z.array(z.object({ name: z.string(), containerPort: z.number() })).optional(),
                env: z.array(z.object({ name: z.string(), value: z.string().optional(), valueFrom: z.unknown().optional() })).optional(),
                volumeMounts: z.array(z.object({ name: z.string(), mountPath: z.string() })).optional(),
              })
              .passthrough(),
          ),
          volumes: z.array(z.object({ name: z.string(), emptyDir: z.unknown().optional() }).passthrough()).optional(),
        })
        .passthrough(),
    }),
  }),
});
const Labels = z.record(z.string(), z.string());
const ServiceSchema = z.object({
  spec: z.object({
    selector: Labels,
    ports: z.array(
      z.object({ name: z.string(), port: z.number(), targetPort: z.union([z.string(), z.number()]), protocol: z.string().optional() }),
    ),
  }),
});
const PolicyRule = z.object({
  apiGroups: z.array(z.string()).default([]),
  resources: z.array(z.string()).default([]),
  resourceNames: z.array(z.string()).optional(),
  verbs: z.array(z.string()),
});
const RoleSchema = z.object({ metadata: z.object({ name: z.string(), namespace: z.string().optional() }), rules: z.array(PolicyRule) });
const BindingSchema = z.object({
  metadata: z.object({ namespace: z.string().optional() }),
  roleRef: z.object({ kind: z.string(), name: z.string() }),
  subjects: z.array(z.object({ kind: z.string(), name: z.string(), namespace: z.string().optional() })),
});
const PdbSchema = z.object({ spec: z.object({ selector: z.object({ matchLabels: Labels }) }) });

/** Substitutes $(params.NAME) the way Tekton does in params; any other variable is unexpected here. */
function substitute(value: z.infer<typeof ParamValue>, params: ReadonlyMap<string, string>): Param["value"] {
  const one = (text: string) =>
    text.replace(/\$\(params\.([A-Za-z0-9_.-]+)\)/g, (_, name: string) => {
      const v = params.get(name);
      if (v === undefined) throw new Error(`$(params.${name}) is not a declared Pipeline param`);
      return v;
    });
  if (typeof value === "string") return one(value);
  if (Array.isArray(value)) return value.map(one);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, one(v)]));
}

/** The Pipeline's param values for one run: defaults, overridden by what the run passes. */
function pipelineParams(pipeline: Pipeline, given: readonly { name: string; value: unknown }[]): Map<string, string> {
  const values = new Map<string, string>();
  for (const p of pipeline.spec.params) if (typeof p.default === "string") values.set(p.name, p.default);
  for (const g of given) {
    expect(pipeline.spec.params.map((p) => p.name), `run param ${g.name}`).toContain(g.name);
    if (typeof g.value === "string") values.set(g.name, g.value);
  }
  for (const p of pipeline.spec.params) expect(values.has(p.name), `Pipeline param ${p.name} has no value`).toBe(true);
  return values;
}

describe("deploy/release.yaml", () => {
  const objects = loadObjects("deploy/release.yaml");
  let api: StrictDryRunApi;

  beforeAll(() => {
    const env = readTestenv();
    if (!env) throw new Error("the testenv is not running (the integration global setup brings it up)");
    const kc = new KubeConfig();
    kc.loadFromFile(env.adminKubeconfig);
    api = kc.makeApiClient(StrictDryRunApi);
  });

  it("is what hack/render-release.ts renders from deploy/kustomization.yaml (run `npm run render`)", () => {
    expect(read("deploy/release.yaml")).toBe(renderRelease());
    expect(releaseResources()).toEqual(expect.arrayContaining(["namespace.yaml", "rbac.yaml", "controller.yaml"]));
  });

  it("installs what `kubectl kustomize deploy/` makes of the same base (labels and all)", (ctx) => {
    let built: string;
    try {
      built = execFileSync("kubectl", ["kustomize", "deploy/"], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return ctx.skip("no kubectl on PATH");
      throw err;
    }
    const key = (o: Manifest) => `${o.kind} ${o.metadata.namespace ?? ""}/${o.metadata.name ?? ""}`;
    const kustomized = new Map(
      parseAllDocuments(built).flatMap((d) => {
        const obj = d.toJS() as Manifest | null;
        return obj ? [[key(obj), obj] as const] : [];
      }),
    );
    expect([...kustomized.keys()].sort()).toEqual(objects.map((o) => key(o.obj)).sort());
    for (const { obj } of objects) expect(kustomized.get(key(obj)), key(obj)).toStrictEqual(obj);
  });

  it("is in apply order: the namespace, then the CRD, then what lives in the namespace", () => {
    const kinds = objects.map((o) => o.obj.kind);
    expect(kinds[0]).toBe("Namespace");
    expect(kinds.indexOf("CustomResourceDefinition")).toBeLessThan(kinds.indexOf("ServiceAccount"));
    expect(kinds.indexOf("ServiceAccount")).toBeLessThan(kinds.indexOf("Deployment"));
  });

  it("passes a strict server-side dry-run apply, object by object", async () => {
    expect(objects.filter((o) => isTekton(o.obj))).toEqual([]);
    for (const loaded of objects) {
      await expect(api.dryRunApply(loaded.obj), describeObj(loaded)).resolves.toMatchObject({ kind: loaded.obj.kind });
    }
  });

  it("rejects an unknown field (the dry run would catch a typo)", async () => {
    const deployment = objects.find((o) => o.obj.kind === "Deployment");
    expect(deployment).toBeDefined();
    const typo = structuredClone(deployment?.obj) as Manifest & { spec: Record<string, unknown> };
    typo.spec.replicaz = 2;
    await expect(api.dryRunApply(typo)).rejects.toThrow(/replicaz/);
  });

  it("wires the controller together: identity, selectors, ports, configuration", () => {
    const byKind = (kind: string) => objects.filter((o) => o.obj.kind === kind).map((o) => o.obj);
    const deployment = DeploymentSchema.parse(byKind("Deployment")[0]);
    const podLabels = deployment.spec.template.metadata.labels;
    const pod = deployment.spec.template.spec;
    expect(podLabels).toMatchObject({ "app.kubernetes.io/name": "vmbuild-controller", "app.kubernetes.io/part-of": "vmbuild" });
    expect(deployment.spec.replicas).toBe(2);

    const serviceAccounts = byKind("ServiceAccount").map((sa) => `${sa.metadata.namespace}/${sa.metadata.name}`);
    expect(serviceAccounts).toContain(`${deployment.metadata.namespace}/${pod.serviceAccountName}`);
    expect(podLabels, "Service selector").toMatchObject(ServiceSchema.parse(byKind("Service")[0]).spec.selector);
    expect(podLabels, "PDB selector").toMatchObject(PdbSchema.parse(byKind("PodDisruptionBudget")[0]).spec.selector.matchLabels);
    expect(podLabels).toMatchObject(deployment.spec.selector.matchLabels);

    const container = pod.containers[0];
    expect(container?.ports).toContainEqual(expect.objectContaining({ name: "http", containerPort: 8080 }));
    // Every VMBUILD_* variable is one the controller reads (an unknown one would be ignored silently), and the
    // values load; downward-API values stand in as the kubelet would fill them.
    const env: Record<string, string> = {};
    for (const e of container?.env ?? []) env[e.name] = e.value ?? (e.valueFrom ? `from-${e.name.toLowerCase()}` : "");
    const config = loadConfig(env);
    for (const name of Object.keys(env).filter((n) => n.startsWith("VMBUILD_"))) expect(config).toHaveProperty(name);
    expect(config.VMBUILD_LEADER_ELECTION).toBe(true);
    expect(config.VMBUILD_HTTP_PORT).toBe(8080);
    const tmp = pod.volumes?.find((v) => container?.volumeMounts?.some((m) => m.name === v.name && m.mountPath === "/tmp"));
    expect(tmp?.emptyDir, "an emptyDir at /tmp").toBeDefined();
    expect(config.VMBUILD_WORK_DIR.startsWith("/tmp/")).toBe(true);
  });

  it("labels every object as Tekton does, version package.json's, and keeps release-bound labels out of selectors", () => {
    const version = packageVersion();
    const deployment = objects.find((o) => o.obj.kind === "Deployment")?.obj;
    const parsed = DeploymentSchema.parse(deployment);
    const labelled: [string, Record<string, string> | undefined][] = [
      ...objects.map((o) => [describeObj(o), o.obj.metadata.labels] as [string, Record<string, string> | undefined]),
      ["the controller's pod template", parsed.spec.template.metadata.labels],
      // Not part of the release (it is applied next to each pool), but installed with it all the same.
      ...loadObjects("deploy/networkpolicy-build-vms.yaml").map((o) => [describeObj(o), o.obj.metadata.labels] as [string, Record<string, string> | undefined]),
    ];
    for (const [what, labels] of labelled) {
      for (const label of RECOMMENDED_LABELS) expect(labels?.[label], `${what}: ${label}`).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
      expect(labels, what).toMatchObject({
        "app.kubernetes.io/instance": "vmbuild",
        "app.kubernetes.io/part-of": "vmbuild",
        "app.kubernetes.io/version": version,
      });
    }
    const components = new Map(objects.map((o) => [o.obj.kind, o.obj.metadata.labels?.["app.kubernetes.io/component"]]));
    expect(Object.fromEntries(components)).toMatchObject({
      Namespace: "namespace",
      CustomResourceDefinition: "crd",
      ServiceAccount: "controller",
      ClusterRole: "controller",
      Role: "controller",
      Deployment: "controller",
      Service: "controller",
    });
    // The image is the release's too.
    expect(parsed.spec.template.spec.containers[0]?.image).toMatch(new RegExp(`:v${version.replaceAll(".", "\\.")}$`));

    // Selectors select on the name alone: a Deployment's selector is immutable, and one with the version in it
    // would make the next release's apply fail (and a Service's would drop the old pods mid-rollout).
    expect(parsed.spec.selector.matchLabels).toEqual(CONTROLLER_SELECTOR);
    expect(ServiceSchema.parse(objects.find((o) => o.obj.kind === "Service")?.obj).spec.selector).toEqual(CONTROLLER_SELECTOR);
    expect(PdbSchema.parse(objects.find((o) => o.obj.kind === "PodDisruptionBudget")?.obj).spec.selector.matchLabels).toEqual(
      CONTROLLER_SELECTOR,
    );
    const spread = z
      .object({ topologySpreadConstraints: z.array(z.object({ labelSelector: z.object({ matchLabels: Labels }) })) })
      .parse(parsed.spec.template.spec);
    for (const c of spread.topologySpreadConstraints) expect(c.labelSelector.matchLabels).toEqual(CONTROLLER_SELECTOR);
  });

  it("puts its namespace under the restricted Pod Security Standard (enforced, audited, warned)", () => {
    const namespace = objects.find((o) => o.obj.kind === "Namespace")?.obj;
    expect(namespace?.metadata.name).toBe(CONTROLLER_NAMESPACE);
    for (const mode of ["enforce", "audit", "warn"]) {
      expect(namespace?.metadata.labels, mode).toMatchObject({
        [`pod-security.kubernetes.io/${mode}`]: "restricted",
        [`pod-security.kubernetes.io/${mode}-version`]: "latest",
      });
    }
  });

  it("grants the controller's own Leases (the leader's, each replica's) by a Role in its namespace, and nowhere else", () => {
    const deployment = DeploymentSchema.parse(objects.find((o) => o.obj.kind === "Deployment")?.obj);
    const sa = { kind: "ServiceAccount", name: deployment.spec.template.spec.serviceAccountName, namespace: CONTROLLER_NAMESPACE };
    const roles = objects.filter((o) => o.obj.kind === "Role").map((o) => RoleSchema.parse(o.obj));
    const bindings = objects.filter((o) => o.obj.kind === "RoleBinding").map((o) => BindingSchema.parse(o.obj));
    const leases = (rules: z.infer<typeof PolicyRule>[]) =>
      rules.filter((r) => r.apiGroups.includes("coordination.k8s.io") && r.resources.includes("leases"));

    const role = roles.find((r) => leases(r.rules).length > 0);
    expect(role?.metadata.namespace).toBe(CONTROLLER_NAMESPACE);
    // Exactly what src/kube/leader.ts and src/lease/replicas.ts do: read, renew, take over and hand back (update)
    // the leader Lease and this replica's own; create them (a create cannot be limited by name).
    expect(leases(role?.rules ?? []).map((r) => ({ verbs: [...r.verbs].sort(), names: r.resourceNames }))).toEqual([
      // Replica Leases are named per process (vmbuild-replica-<pod>-<pid>-<random>): resourceNames cannot list them.
      { verbs: ["get", "update"], names: undefined },
      { verbs: ["create"], names: undefined },
    ]);
    expect(role?.rules.length).toBe(2);
    const binding = bindings.find((b) => b.roleRef.kind === "Role" && b.roleRef.name === role?.metadata.name);
    expect(binding?.metadata.namespace).toBe(CONTROLLER_NAMESPACE);
    expect(binding?.subjects).toEqual([sa]);

    // The controller looks for its Lease in the namespace it runs in: the Role's.
    const env = deployment.spec.template.spec.containers[0]?.env ?? [];
    expect(env.find((e) => e.name === "VMBUILD_NAMESPACE")?.valueFrom).toEqual({ fieldRef: { fieldPath: "metadata.namespace" } });
    expect(deployment.metadata.namespace).toBe(CONTROLLER_NAMESPACE);
    // The ClusterRole's Lease rule is the per-VM one (Leases in pool namespaces, named after VMs): it names no
    // Lease, the leader's least of all.
    for (const cr of objects.filter((o) => o.obj.kind === "ClusterRole").map((o) => RoleSchema.parse(o.obj))) {
      for (const rule of leases(cr.rules)) expect(rule.resourceNames ?? [], `ClusterRole ${cr.metadata.name}`).not.toContain(LEADER_LEASE);
    }
  });

  it("serves metrics on a port of their own, http-metrics 9090, in the pod and the Service", () => {
    const deployment = DeploymentSchema.parse(objects.find((o) => o.obj.kind === "Deployment")?.obj);
    const container = deployment.spec.template.spec.containers[0];
    expect(container?.ports).toContainEqual(expect.objectContaining({ name: "http-metrics", containerPort: 9090 }));
    expect(container?.env?.find((e) => e.name === "VMBUILD_METRICS_PORT")?.value).toBe("9090");
    const service = ServiceSchema.parse(objects.find((o) => o.obj.kind === "Service")?.obj);
    expect(service.spec.ports).toContainEqual({ name: "http-metrics", port: 9090, targetPort: "http-metrics", protocol: "TCP" });
    expect(service.spec.ports).toContainEqual(expect.objectContaining({ name: "http", port: 8080, targetPort: "http" }));
  });

  it("runs under the restricted Pod Security Standard of its namespace (and a privileged pod would not)", async () => {
    const env = readTestenv();
    if (!env) throw new Error("the testenv is not running");
    const kc = new KubeConfig();
    kc.loadFromFile(env.adminKubeconfig);
    // A fresh namespace with the release namespace's Pod Security labels (the testenv's own may be older).
    const podSecurity = Object.fromEntries(
      Object.entries(objects.find((o) => o.obj.kind === "Namespace")?.obj.metadata.labels ?? {}).filter(([k]) =>
        k.startsWith("pod-security.kubernetes.io/"),
      ),
    );
    expect(podSecurity["pod-security.kubernetes.io/enforce"]).toBe("restricted");
    const namespace = `vmbuild-restricted-${Math.random().toString(36).slice(2, 8)}`;
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace, labels: podSecurity } } });
    // The Deployment's pod template as written (Pod Security admission enforces on pods, not on Deployments).
    const raw = objects.find((o) => o.obj.kind === "Deployment")?.obj as
      | (Manifest & { spec: { template: { metadata: { labels?: Record<string, string> }; spec: unknown } } })
      | undefined;
    const pod: Manifest = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "vmbuild-controller-psa", namespace, labels: raw?.spec.template.metadata.labels ?? {} },
      spec: raw?.spec.template.spec,
    };
    await expect(api.dryRunApply(pod)).resolves.toMatchObject({ kind: "Pod" });
    // The admission is live: the same pod allowed to escalate is refused.
    const escalating = structuredClone(pod) as Manifest & { spec: { containers: { securityContext?: Record<string, unknown> }[] } };
    for (const c of escalating.spec.containers) c.securityContext = { ...c.securityContext, allowPrivilegeEscalation: true };
    await expect(api.dryRunApply(escalating)).rejects.toThrow(/restricted|allowPrivilegeEscalation/);
  });
});

describe("deploy/examples and the NetworkPolicy template", () => {
  const files = readdirSync(new URL("deploy/examples/", root))
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => `deploy/examples/${f}`);
  const examples = files.flatMap(loadObjects);
  const policy = loadObjects("deploy/networkpolicy-build-vms.yaml");
  const served = [...examples, ...policy].filter((o) => o.obj.kind !== "PipelineRun");
  const pipelines = examples.filter((o) => o.obj.kind === "Pipeline").map((o) => PipelineSchema.parse(o.obj));
  const runs = examples.filter((o) => o.obj.kind === "PipelineRun").map((o) => PipelineRunSchema.parse(o.obj));
  const vmbuilds = new Map(
    examples.filter((o) => o.obj.kind === "VMBuild").map((o) => [o.obj.metadata.name ?? "", o.obj.spec] as const),
  );
  let api: StrictDryRunApi;
  let namespace: string;

  beforeAll(async () => {
    const env = readTestenv();
    if (!env) throw new Error("the testenv is not running (the integration global setup brings it up)");
    const kc = new KubeConfig();
    kc.loadFromFile(env.adminKubeconfig);
    api = kc.makeApiClient(StrictDryRunApi);
    namespace = `vmbuild-examples-${Math.random().toString(36).slice(2, 8)}`;
    await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
  });

  it("has the files the README describes, all in one namespace", () => {
    expect(files).toEqual(
      ["build-vm-ssh", "buildsys-pool", "pipeline", "pipelinerun", "secrets", "vmbuild"].map((f) => `deploy/examples/${f}.yaml`),
    );
    for (const loaded of [...examples, ...policy]) {
      expect(loaded.obj.metadata.namespace, describeObj(loaded)).toBe(EXAMPLES_NAMESPACE);
    }
    expect(examples.map((o) => o.obj.kind).sort()).toEqual(
      ["Pipeline", "Pipeline", "PipelineRun", "Secret", "Secret", "Secret", "VMBuild", "VirtualMachinePool"].sort(),
    );
  });

  it("passes a strict server-side dry-run apply (in a fresh namespace), object by object", async () => {
    expect(served.map((o) => o.obj.kind).sort()).toEqual(["NetworkPolicy", "Pipeline", "Pipeline", "Secret", "Secret", "Secret", "VMBuild", "VirtualMachinePool"]);
    for (const loaded of served) {
      await expect(api.dryRunApply(inNamespace(loaded.obj, namespace)), describeObj(loaded)).resolves.toMatchObject({
        kind: loaded.obj.kind,
      });
    }
  });

  it("the pool is what vmbuild leases: Halted VMs, podman over ssh (the protected default), sshd probed, labels the policy selects", () => {
    const pool = z
      .object({
        apiVersion: z.literal("pool.kubevirt.io/v1beta1"),
        metadata: z.object({ annotations: z.record(z.string(), z.string()) }),
        spec: z.object({
          replicas: z.literal(4),
          selector: z.object({ matchLabels: z.record(z.string(), z.string()) }),
          virtualMachineTemplate: z.object({
            metadata: z.object({ labels: z.record(z.string(), z.string()) }),
            spec: z.object({
              runStrategy: z.literal("Halted"),
              running: z.never().optional(), // deprecated; a VM carries runStrategy or running, not both
              template: z.object({
                metadata: z.object({ labels: z.record(z.string(), z.string()) }),
                spec: z
                  .object({
                    readinessProbe: z.object({ tcpSocket: z.object({ port: z.literal(22) }) }),
                    volumes: z.array(z.object({ name: z.string() }).passthrough()),
                  })
                  .passthrough(),
              }),
            }),
          }),
        }),
      })
      .parse(examples.find((o) => o.obj.kind === "VirtualMachinePool")?.obj);
    const template = pool.spec.virtualMachineTemplate;
    // No transport annotation: ssh, with the example's Secret; the VMs' cloud-init is the example's Secret too.
    expect(parsePoolTransport("multi-arch-build/buildsys", pool.metadata.annotations)).toMatchObject({ kind: "ssh", secret: "build-vm-ssh", port: 22 });
    const secrets = examples.filter((o) => o.obj.kind === "Secret").map((o) => o.obj.metadata.name);
    expect(secrets).toEqual(expect.arrayContaining(["build-vm-ssh", "buildsys-cloud-init"]));
    expect(template.spec.template.spec.volumes).toContainEqual({ name: "cloudinitdisk", cloudInitNoCloud: { secretRef: { name: "buildsys-cloud-init" } } });
    expect(template.metadata.labels).toMatchObject(pool.spec.selector.matchLabels);
    expect(template.metadata.labels).toMatchObject({ vmtype: "buildsys" });

    const np = z
      .object({
        spec: z.object({
          podSelector: z.object({ matchLabels: z.record(z.string(), z.string()) }),
          ingress: z.array(
            z.object({
              from: z.array(
                z.object({
                  namespaceSelector: z.object({ matchLabels: z.record(z.string(), z.string()) }),
                  podSelector: z.object({ matchLabels: z.record(z.string(), z.string()) }),
                }),
              ),
              ports: z.array(z.object({ protocol: z.literal("TCP"), port: z.literal(22) })),
            }),
          ),
        }),
      })
      .parse(policy[0]?.obj);
    // The launcher pods carry the VMI template's labels; the only peer is the controller's pods in its namespace.
    expect(template.spec.template.metadata.labels).toMatchObject(np.spec.podSelector.matchLabels);
    const controllerLabels = DeploymentSchema.parse(
      loadObjects("deploy/controller.yaml").find((o) => o.obj.kind === "Deployment")?.obj,
    ).spec.template.metadata.labels;
    const peers = np.spec.ingress.flatMap((rule) => rule.from);
    expect(peers).toHaveLength(1);
    expect(peers[0]?.namespaceSelector.matchLabels).toEqual({ "kubernetes.io/metadata.name": CONTROLLER_NAMESPACE });
    expect(controllerLabels).toMatchObject(peers[0]?.podSelector.matchLabels ?? { missing: "podSelector" });
  });

  it("the Pipelines use one VMBuild task whose params are all vmbuild settings, with results passed through", () => {
    expect(pipelines.map((p) => p.metadata.name).sort()).toEqual(["mockbin-image-build", "multi-arch-image-build"]);
    for (const pipeline of pipelines) {
      const where = `Pipeline ${pipeline.metadata.name}`;
      expect(pipeline.spec.tasks, where).toHaveLength(1);
      const task = pipeline.spec.tasks[0];
      expect(task?.taskRef, where).toMatchObject(VMBUILD_TASK_REF);
      const names = (task?.params ?? []).map((p) => p.name);
      expect(new Set(names).size, `${where}: a param given twice`).toBe(names.length);
      for (const name of names) expect(SETTING_NAMES as string[], `${where}: param ${name}`).toContain(name);
      if (task?.taskRef.name) expect([...vmbuilds.keys()], `${where}: VMBuild ${task.taskRef.name}`).toContain(task.taskRef.name);

      const results = new Map(pipeline.spec.results.map((r) => [r.name, r.value]));
      for (const name of ["IMAGE_URL", "IMAGE_DIGEST"]) {
        expect(results.get(name), `${where}: result ${name}`).toBe(`$(tasks.${task?.name}.results.${name})`);
      }
      for (const value of results.values()) {
        const ref = /^\$\(tasks\.([^.]+)\.results\.([^)]+)\)$/.exec(value);
        expect(ref?.[1], `${where}: ${value}`).toBe(task?.name);
        expect(VMBUILD_RESULTS, `${where}: ${value}`).toContain(ref?.[2]);
      }
    }
  });

  it("each Pipeline, as its example run (or its defaults) fills it, resolves to valid build settings", () => {
    for (const run of runs) {
      expect(pipelines.map((p) => p.metadata.name), "PipelineRun's pipelineRef").toContain(run.spec.pipelineRef.name);
    }
    for (const pipeline of pipelines) {
      const given = runs.filter((r) => r.spec.pipelineRef.name === pipeline.metadata.name);
      for (const run of given.length > 0 ? given.map((r) => r.spec.params) : [[]]) {
        const values = pipelineParams(pipeline, run);
        for (const task of pipeline.spec.tasks) {
          const params: Param[] = task.params.map((p) => ({ name: p.name, value: substitute(p.value, values) }));
          const spec = task.taskRef.name ? vmbuilds.get(task.taskRef.name) : undefined;
          const resolution = resolveSettings(spec, params);
          expect(resolution, `Pipeline ${pipeline.metadata.name}, task ${task.name}`).toMatchObject({ ok: true });
        }
      }
    }
  });
});
