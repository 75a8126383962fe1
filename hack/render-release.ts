// `npm run render`: writes deploy/release.yaml, the files of deploy/kustomization.yaml's `resources` in one file,
// in that order, for `kubectl apply -f` without kustomize. A test fails when release.yaml drifts from this.
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parse, parseAllDocuments } from "yaml";

const deployDir = new URL("../deploy/", import.meta.url);

/** What a kustomization may hold for plain concatenation to equal kustomize's output: no transformers. */
const PLAIN_FIELDS = new Set(["apiVersion", "kind", "resources"]);

const HEADER = [
  "# Generated from deploy/kustomization.yaml by `npm run render` (hack/render-release.ts); do not edit.",
  "# The vmbuild controller with its namespace, CRD and RBAC: kubectl apply -f deploy/release.yaml",
  "",
].join("\n");

/** The resource files of deploy/kustomization.yaml, relative to deploy/, in apply order. */
export function releaseResources(): string[] {
  const kustomization: unknown = parse(readFileSync(new URL("kustomization.yaml", deployDir), "utf8"));
  if (typeof kustomization !== "object" || kustomization === null || Array.isArray(kustomization)) {
    throw new Error("deploy/kustomization.yaml: expected a mapping");
  }
  const fields = kustomization as Record<string, unknown>;
  if (fields.kind !== "Kustomization") throw new Error("deploy/kustomization.yaml: expected kind Kustomization");
  const extra = Object.keys(fields).filter((k) => !PLAIN_FIELDS.has(k));
  if (extra.length > 0) {
    throw new Error(
      `deploy/kustomization.yaml: ${extra.join(", ")} would make kustomize transform the objects; ` +
        "render-release only concatenates files, so keep the base a plain resource list",
    );
  }
  const resources = fields.resources;
  if (!Array.isArray(resources) || resources.length === 0) {
    throw new Error("deploy/kustomization.yaml: expected a non-empty resources list");
  }
  return resources.map((r) => {
    if (typeof r !== "string" || !/\.ya?ml$/.test(r) || r.startsWith("/") || r.includes("..") || r.includes("://")) {
      throw new Error(`deploy/kustomization.yaml: resource ${JSON.stringify(r)} is not a YAML file inside deploy/`);
    }
    return r;
  });
}

/** deploy/release.yaml as it should be. */
export function renderRelease(): string {
  const parts = releaseResources().map((file) => {
    const text = readFileSync(new URL(file, deployDir), "utf8");
    const docs = parseAllDocuments(text);
    for (const doc of docs) {
      if (doc.errors.length > 0) throw new Error(`deploy/${file}: ${doc.errors[0]?.message ?? "invalid YAML"}`);
    }
    if (!docs.some((doc) => (doc.toJS() as { kind?: unknown } | null)?.kind !== undefined)) {
      throw new Error(`deploy/${file}: no Kubernetes object in it`);
    }
    const body = text.replace(/^---[ \t]*\r?\n/, "").trimEnd();
    return `# Source: deploy/${file}\n${body}\n`;
  });
  return HEADER + parts.join("---\n");
}

const invokedDirectly = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  writeFileSync(new URL("release.yaml", deployDir), renderRelease());
  process.stdout.write(`wrote deploy/release.yaml (${releaseResources().join(", ")})\n`);
}
