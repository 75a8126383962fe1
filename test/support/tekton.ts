import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { KubernetesObject } from "@kubernetes/client-node";
import type { Testenv } from "../../hack/testenv/index.js";
import { mergePatch } from "../../src/kube/client.js";
import { loadKubeconfig, applyObjects } from "../../hack/testenv/apply.js";
import { resolveBinary, tektonController } from "../../hack/testenv/binaries.js";
import { isPortFree } from "../../hack/testenv/ports.js";
import { TEKTON_NAMESPACE, tektonControllerConfig, tektonModuleDir } from "../../hack/testenv/tekton.js";
import type { Cluster, Condition, CustomRunObject } from "./cluster.js";
import { freePort } from "./ports.js";
import { startProcess, waitReady, waitUntil, type TestProcess } from "./processes.js";

// Tekton Pipelines' real controller (built from its Go module, cached by version) against the testenv, as its own
// service account (a cluster admin): it turns PipelineRuns into CustomRuns and reads their outcome back, as in a
// cluster.

/** knative's health server binds it on every address, whatever the flags say. */
const KNATIVE_PROBES_PORT = 8080;

export interface TektonController extends TestProcess {
  /** Everything it printed (zap JSON), whole. */
  logPath: string;
}

export async function startTektonController(env: Testenv): Promise<TektonController> {
  if (!(await isPortFree(KNATIVE_PROBES_PORT))) {
    throw new Error(
      `port ${KNATIVE_PROBES_PORT} is in use: Tekton's controller binds it for its health probes (knative's sharedmain, not configurable); free it`,
    );
  }
  const binary = await resolveBinary(tektonController);
  const admin = loadKubeconfig(env.adminKubeconfig);
  await applyObjects(admin, await tektonControllerConfig(await tektonModuleDir()), `Tekton ${tektonController.version}'s config/`);
  await mkdir(env.logsDir, { recursive: true });
  const logPath = join(env.logsDir, `tekton-controller-${Date.now()}.log`);
  // Images are for TaskRun pods, which nothing here runs (no kubelet); the flags must still be non-empty.
  const images = ["entrypoint", "nop", "sidecarlogresults", "workingdirinit", "shell", "shell-image-win"]
    .map((i) => (i.endsWith("-win") ? i : `${i}-image`))
    .flatMap((flag) => [`-${flag}`, "vmbuild.invalid/unused"]);
  if (!env.tektonKubeconfig) throw new Error("this testenv has no identity for Tekton's controller: restart it (npm run testenv -- down, then up)");
  const proc = startProcess(binary, ["-kubeconfig", env.tektonKubeconfig, "-disable-ha", ...images], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      SYSTEM_NAMESPACE: TEKTON_NAMESPACE,
      METRICS_DOMAIN: "tekton.dev/pipeline",
      KUBERNETES_MIN_VERSION: "v1.28.0",
      CONFIG_DEFAULTS_NAME: "config-defaults",
      CONFIG_LOGGING_NAME: "config-logging",
      CONFIG_OBSERVABILITY_NAME: "config-observability",
      CONFIG_FEATURE_FLAGS_NAME: "feature-flags",
      CONFIG_LEADERELECTION_NAME: "config-leader-election-controller",
      CONFIG_SPIRE: "config-spire",
      // Tekton's own probe server and the profiling server (8080 and 8008 by default): free ports instead.
      PROBES_PORT: String(await freePort("127.0.0.1")),
      PROFILING_PORT: String(await freePort("127.0.0.1")),
    },
    outputFile: logPath,
  });
  await waitReady(
    proc,
    async () => proc.output().includes("Starting controllers") && (await fetch(`http://127.0.0.1:${KNATIVE_PROBES_PORT}/readiness`)).ok,
    60_000,
    () => `Tekton's controller is not ready; ${logPath}:\n${proc.output().slice(-4000)}`,
  );
  return Object.assign(proc, { logPath });
}

// --- PipelineRuns -------------------------------------------------------------------------------------------------

const V1 = { group: "tekton.dev", version: "v1" };

export interface PipelineRunObject extends KubernetesObject {
  spec: Record<string, unknown>;
  status?: {
    conditions?: Condition[];
    results?: { name: string; value: unknown }[];
    childReferences?: { kind: string; name: string; pipelineTaskName: string }[];
    skippedTasks?: { name: string; reason: string; whenExpressions?: unknown[] }[];
  };
}

/** A tekton.dev/v1 Pipeline or PipelineRun named `name` with `spec`. */
export async function createTekton(cluster: Cluster, kind: "Pipeline" | "PipelineRun", namespace: string, name: string, spec: object): Promise<void> {
  await cluster.custom.createNamespacedCustomObject({
    ...V1,
    plural: `${kind.toLowerCase()}s`,
    namespace,
    body: { apiVersion: "tekton.dev/v1", kind, metadata: { name, namespace }, spec },
  });
}

export async function getPipelineRun(cluster: Cluster, namespace: string, name: string): Promise<PipelineRunObject> {
  return (await cluster.custom.getNamespacedCustomObject({ ...V1, plural: "pipelineruns", namespace, name })) as PipelineRunObject;
}

export async function patchPipelineRun(cluster: Cluster, namespace: string, name: string, patch: object): Promise<void> {
  await cluster.custom.patchNamespacedCustomObject({ ...V1, plural: "pipelineruns", namespace, name, body: patch }, mergePatch);
}

export function prCondition(pr: PipelineRunObject): Condition | undefined {
  return pr.status?.conditions?.find((c) => c.type === "Succeeded");
}

/** Waits until the PipelineRun's Succeeded condition is True or False. */
export async function waitForPipelineRun(cluster: Cluster, namespace: string, name: string, timeoutMs: number): Promise<PipelineRunObject> {
  let pr: PipelineRunObject | undefined;
  await waitUntil(
    async () => {
      pr = await getPipelineRun(cluster, namespace, name);
      const c = prCondition(pr);
      return c !== undefined && c.status !== "Unknown";
    },
    timeoutMs,
    () => `PipelineRun ${namespace}/${name} did not finish; last status: ${JSON.stringify(pr?.status?.conditions)}`,
  );
  if (!pr) throw new Error("unreachable");
  return pr;
}

/** The CustomRuns Tekton created for a PipelineRun's task (several for a matrix), oldest first. */
export async function customRunsOf(cluster: Cluster, namespace: string, pipelineRun: string, task: string): Promise<CustomRunObject[]> {
  const runs = await cluster.listRuns(namespace);
  return runs
    .filter((r) => r.metadata?.labels?.["tekton.dev/pipelineRun"] === pipelineRun && r.metadata.labels["tekton.dev/pipelineTask"] === task)
    .sort((a, b) => (a.metadata?.name ?? "").localeCompare(b.metadata?.name ?? ""));
}
