// Tekton Pipelines' own manifests, read from its Go module (the version the wrapper module pins), not vendored:
// the CRDs the testenv applies and the ConfigMaps its controller reads in tekton-pipelines.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { loadAllYaml, type KubernetesObject, type V1CustomResourceDefinition } from "@kubernetes/client-node";
import { goCommand, tektonController } from "./binaries.js";
import { run } from "./exec.js";
import { yamlFilesIn } from "./manifest-files.js";

export const TEKTON_MODULE = "github.com/tektoncd/pipeline";
export const TEKTON_NAMESPACE = "tekton-pipelines";

/** The module's directory in GOMODCACHE, downloaded if needed (a zip of a few MB; seconds). */
export async function tektonModuleDir(): Promise<string> {
  const { moduleDir, version } = tektonController;
  const goMod = await readFile(join(moduleDir, "go.mod"), "utf8");
  const required = new RegExp(`^\\s*(?:require\\s+)?${TEKTON_MODULE.replace(/\./g, "\\.")} (v\\S+)`, "m").exec(goMod)?.[1];
  if (required !== version) {
    throw new Error(`${join(moduleDir, "go.mod")} requires ${TEKTON_MODULE} ${required ?? "(nothing)"}, binaries.ts says ${version}: make them agree`);
  }
  const go = await goCommand(tektonController);
  const { stdout } = await run(go, ["mod", "download", "-json", `${TEKTON_MODULE}@${version}`], { cwd: moduleDir });
  const dir = (JSON.parse(stdout) as { Dir?: string }).Dir;
  if (!dir) throw new Error(`go mod download ${TEKTON_MODULE}@${version} reported no directory: ${stdout}`);
  return dir;
}

async function loadObjects(files: readonly string[]): Promise<KubernetesObject[]> {
  const objects: KubernetesObject[] = [];
  for (const file of files) {
    // Typed models (loadAllYaml), as apply.ts explains: they keep x-kubernetes-preserve-unknown-fields on the way out.
    const docs = loadAllYaml(await readFile(file, "utf8")) as (KubernetesObject | null | undefined)[];
    objects.push(...docs.filter((o): o is KubernetesObject => o !== null && o !== undefined));
  }
  return objects;
}

/**
 * config/300-crds: Pipeline, PipelineRun, Task, TaskRun, CustomRun, ... Tekton converts between their versions
 * with its webhook, which does not run here: conversion is set to None (objects are read in the version they are
 * written in; the suite writes tekton.dev/v1, the stored version).
 */
export async function tektonCrds(moduleDir: string): Promise<KubernetesObject[]> {
  const crds = (await loadObjects(await yamlFilesIn(join(moduleDir, "config/300-crds")))) as V1CustomResourceDefinition[];
  for (const crd of crds) crd.spec.conversion = { strategy: "None" };
  return crds;
}

/**
 * The namespace and the config-*.yaml ConfigMaps the controller watches there, as released, except metrics:
 * exported over no port (the release serves Prometheus on 9090, which another process here may hold).
 */
export async function tektonControllerConfig(moduleDir: string): Promise<KubernetesObject[]> {
  const config = join(moduleDir, "config");
  const files = (await yamlFilesIn(config)).filter((f) => /\/config-[^/]+\.yaml$/.test(f));
  const objects = await loadObjects([join(config, "100-namespace/100-namespace.yaml"), ...files]);
  for (const obj of objects) {
    if (obj.kind === "ConfigMap" && obj.metadata?.name === "config-observability") {
      const cm = obj as KubernetesObject & { data?: Record<string, string> };
      cm.data = { ...cm.data, "metrics-protocol": "none" };
    }
  }
  return objects;
}
