// `npm run render`: writes deploy/release.yaml, the objects of deploy/kustomization.yaml's `resources` in one file,
// in that order, with the kustomization's labels applied, for `kubectl apply -f` without kustomize. Before that it
// writes package.json's version into the app.kubernetes.io/version labels of deploy/ (VERSIONED_FILES). A test
// fails when release.yaml drifts from this, or from what `kubectl kustomize deploy/` makes of the same base.
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isMap, parse, parseAllDocuments, Scalar, type Document } from "yaml";

const deployDir = new URL("../deploy/", import.meta.url);
const packageJson = new URL("../package.json", import.meta.url);

/** The fields of a kustomization this script implements; any other (patches, namespace, images...) is refused. */
const SUPPORTED_FIELDS = new Set(["apiVersion", "kind", "resources", "labels", "transformers"]);

export const VERSION_LABEL = "app.kubernetes.io/version";

/** Files under deploy/ that carry package.json's version as a literal `app.kubernetes.io/version: "X"` label. */
export const VERSIONED_FILES = ["kustomization.yaml", "networkpolicy-build-vms.yaml"];

/**
 * Kinds whose pod template kustomize labels with `includeTemplates: true` (its templateLabels field specs), at
 * spec/template/metadata/labels. StatefulSet and CronJob have further paths there: refused rather than half done.
 */
const TEMPLATE_KINDS = new Set(["Deployment", "ReplicaSet", "DaemonSet", "ReplicationController", "Job"]);
const UNSUPPORTED_TEMPLATE_KINDS = new Set(["StatefulSet", "CronJob"]);

const HEADER = [
  "# Generated from deploy/kustomization.yaml by `npm run render` (hack/render-release.ts); do not edit.",
  "# The vmbuild controller with its namespace, CRD and RBAC: kubectl apply -f deploy/release.yaml",
  "",
].join("\n");

/** Labels set at one path of the objects a field spec selects (kustomize's LabelTransformer, create: true). */
interface LabelRule {
  labels: Record<string, string>;
  /** Only objects of this kind; every object when absent. */
  kind?: string;
  path: "metadata/labels" | "spec/template/metadata/labels";
}

interface Kustomization {
  resources: string[];
  rules: LabelRule[];
  /** Some labels go onto pod templates (includeTemplates). */
  templates: boolean;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function stringMap(value: unknown, where: string): Record<string, string> {
  if (!isRecord(value) || Object.keys(value).length === 0) throw new Error(`${where}: expected a non-empty mapping`);
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== "string") throw new Error(`${where}: ${k} must be a string (quote it)`);
  }
  return value as Record<string, string>;
}

function onlyKeys(value: Record<string, unknown>, allowed: readonly string[], where: string): void {
  const extra = Object.keys(value).filter((k) => !allowed.includes(k));
  if (extra.length > 0) throw new Error(`${where}: ${extra.join(", ")} is not supported by hack/render-release.ts`);
}

/** `labels:` entries: pairs on every object's metadata, and on pod templates with includeTemplates. */
function labelRules(labels: unknown): LabelRule[] {
  if (labels === undefined) return [];
  if (!Array.isArray(labels)) throw new Error("deploy/kustomization.yaml: labels must be a list");
  return labels.flatMap((entry: unknown, i) => {
    const where = `deploy/kustomization.yaml: labels[${i}]`;
    if (!isRecord(entry)) throw new Error(`${where}: expected a mapping`);
    onlyKeys(entry, ["pairs", "includeTemplates", "includeSelectors"], where);
    if (entry.includeSelectors === true) {
      throw new Error(`${where}: includeSelectors would change selectors, which a Deployment cannot have changed`);
    }
    const pairs = stringMap(entry.pairs, `${where}.pairs`);
    const rules: LabelRule[] = [{ labels: pairs, path: "metadata/labels" }];
    if (entry.includeTemplates === true) {
      for (const kind of TEMPLATE_KINDS) rules.push({ labels: pairs, kind, path: "spec/template/metadata/labels" });
    }
    return rules;
  });
}

/** `transformers:` entries: inline builtin LabelTransformers whose field specs select by kind. */
function transformerRules(transformers: unknown): LabelRule[] {
  if (transformers === undefined) return [];
  if (!Array.isArray(transformers)) throw new Error("deploy/kustomization.yaml: transformers must be a list");
  return transformers.flatMap((entry: unknown, i) => {
    const where = `deploy/kustomization.yaml: transformers[${i}]`;
    if (typeof entry !== "string" || !entry.includes("\n")) {
      throw new Error(`${where}: only inline transformer configurations are supported, not files`);
    }
    const config: unknown = parse(entry);
    if (!isRecord(config) || config.apiVersion !== "builtin" || config.kind !== "LabelTransformer") {
      throw new Error(`${where}: only a builtin LabelTransformer is supported`);
    }
    onlyKeys(config, ["apiVersion", "kind", "metadata", "labels", "fieldSpecs"], where);
    const labels = stringMap(config.labels, `${where}.labels`);
    if (!Array.isArray(config.fieldSpecs) || config.fieldSpecs.length === 0) throw new Error(`${where}: expected fieldSpecs`);
    return config.fieldSpecs.map((spec: unknown): LabelRule => {
      if (!isRecord(spec)) throw new Error(`${where}: a field spec must be a mapping`);
      onlyKeys(spec, ["kind", "path", "create"], where);
      if (spec.path !== "metadata/labels" || spec.create !== true) {
        throw new Error(`${where}: only {path: metadata/labels, create: true} field specs are supported`);
      }
      if (spec.kind !== undefined && typeof spec.kind !== "string") throw new Error(`${where}: kind must be a string`);
      return { labels, path: "metadata/labels", ...(spec.kind ? { kind: spec.kind } : {}) };
    });
  });
}

function readKustomization(): Kustomization {
  const fields: unknown = parse(readFileSync(new URL("kustomization.yaml", deployDir), "utf8"));
  if (!isRecord(fields)) throw new Error("deploy/kustomization.yaml: expected a mapping");
  if (fields.kind !== "Kustomization") throw new Error("deploy/kustomization.yaml: expected kind Kustomization");
  const extra = Object.keys(fields).filter((k) => !SUPPORTED_FIELDS.has(k));
  if (extra.length > 0) {
    throw new Error(
      `deploy/kustomization.yaml: hack/render-release.ts does not implement ${extra.join(", ")}; ` +
        "without it release.yaml would differ from what kustomize installs",
    );
  }
  const resources = fields.resources;
  if (!Array.isArray(resources) || resources.length === 0) {
    throw new Error("deploy/kustomization.yaml: expected a non-empty resources list");
  }
  for (const r of resources) {
    if (typeof r !== "string" || !/\.ya?ml$/.test(r) || r.startsWith("/") || r.includes("..") || r.includes("://")) {
      throw new Error(`deploy/kustomization.yaml: resource ${JSON.stringify(r)} is not a YAML file inside deploy/`);
    }
  }
  const rules = [...labelRules(fields.labels), ...transformerRules(fields.transformers)];
  return { resources: resources as string[], rules, templates: rules.some((r) => r.path !== "metadata/labels") };
}

/** The resource files of deploy/kustomization.yaml, relative to deploy/, in apply order. */
export function releaseResources(): string[] {
  return readKustomization().resources;
}

/** package.json's version: what every object's app.kubernetes.io/version says. */
export function packageVersion(): string {
  const { version } = JSON.parse(readFileSync(packageJson, "utf8")) as { version?: unknown };
  if (typeof version !== "string" || version === "") throw new Error("package.json: no version");
  return version;
}

/** Sets one rule's labels on a document's object, keeping the file's comments and layout. */
function applyRule(doc: Document, rule: LabelRule, file: string): void {
  const obj = doc.toJS() as { kind?: unknown } | null;
  if (typeof obj?.kind !== "string" || (rule.kind !== undefined && rule.kind !== obj.kind)) return;
  const path = rule.path.split("/");
  if (rule.path !== "metadata/labels" && !isMap(doc.getIn(path.slice(0, -2)))) {
    throw new Error(`deploy/${file}: ${obj.kind} without ${path.slice(0, -2).join("/")}`);
  }
  for (const [key, value] of Object.entries(rule.labels)) {
    if (doc.getIn([...path, key]) === value) continue;
    // Quoted when plain would not read back as this string, and for versions (1.10 is a number to YAML 1.1).
    const scalar = new Scalar(value);
    if (/^[\d.]+$/.test(value) || parse(value) !== value) scalar.type = Scalar.QUOTE_DOUBLE;
    doc.setIn([...path, key], scalar);
  }
}

/** deploy/release.yaml as it should be. Throws when the kustomization's version is not package.json's. */
export function renderRelease(): string {
  const { resources, rules, templates } = readKustomization();
  const version = packageVersion();
  const stated = rules.flatMap((r) => (VERSION_LABEL in r.labels ? [r.labels[VERSION_LABEL]] : []));
  if (stated.some((v) => v !== version)) {
    throw new Error(
      `deploy/kustomization.yaml: ${VERSION_LABEL} ${[...new Set(stated)].join(", ")} is not package.json's ${version}; run \`npm run render\``,
    );
  }
  const parts = resources.map((file) => {
    const text = readFileSync(new URL(file, deployDir), "utf8");
    const docs = parseAllDocuments(text);
    for (const doc of docs) {
      if (doc.errors.length > 0) throw new Error(`deploy/${file}: ${doc.errors[0]?.message ?? "invalid YAML"}`);
    }
    const objects = docs.filter((doc) => (doc.toJS() as { kind?: unknown } | null)?.kind !== undefined);
    if (objects.length === 0) throw new Error(`deploy/${file}: no Kubernetes object in it`);
    for (const doc of objects) {
      const kind = (doc.toJS() as { kind: unknown }).kind;
      if (templates && typeof kind === "string" && UNSUPPORTED_TEMPLATE_KINDS.has(kind)) {
        throw new Error(`deploy/${file}: hack/render-release.ts does not label a ${kind}'s templates as kustomize would`);
      }
    }
    for (const doc of objects) for (const rule of rules) applyRule(doc, rule, file);
    const body = docs
      .map((doc) => doc.toString({ lineWidth: 0, flowCollectionPadding: false }).replace(/^---[ \t]*\r?\n/, "").trimEnd())
      .join("\n---\n");
    return `# Source: deploy/${file}\n${body}\n`;
  });
  return HEADER + parts.join("---\n");
}

/** Writes package.json's version into the version labels of VERSIONED_FILES; returns the files it changed. */
export function syncVersion(): string[] {
  const version = packageVersion();
  return VERSIONED_FILES.filter((file) => {
    const line = /^([ \t]*app\.kubernetes\.io\/version:[ \t]*)(?:"[^"\n]*"|'[^'\n]*'|[^\s#]+)/gm;
    const url = new URL(file, deployDir);
    const text = readFileSync(url, "utf8");
    if (!new RegExp(line.source, "m").test(text)) throw new Error(`deploy/${file}: no ${VERSION_LABEL} label to keep in step`);
    const next = text.replace(line, (_, head: string) => `${head}"${version}"`);
    if (next === text) return false;
    writeFileSync(url, next);
    return true;
  });
}

const invokedDirectly = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  for (const file of syncVersion()) process.stdout.write(`wrote deploy/${file} (version ${packageVersion()})\n`);
  writeFileSync(new URL("release.yaml", deployDir), renderRelease());
  process.stdout.write(`wrote deploy/release.yaml (${releaseResources().join(", ")})\n`);
}
