import { readdirSync, readFileSync } from "node:fs";
import { join, posix, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

// The structure rules of src/, checked on the source text: no import cycles between files or folders, no folder
// importing a later layer, no file over MAX_LINES. The layer order is the list under "## Layers" in
// docs/architecture.md, read from there so the doc and this test cannot disagree.

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const SRC = join(ROOT, "src");
const LAYERS_DOC = "docs/architecture.md";
/** The layer of the files directly in src/ (config.ts, controller.ts, main.ts): the top. */
const ROOT_LAYER = "(root)";
const MAX_LINES = 400;

/** Every .ts file under src/, as a posix path relative to src/ ("kube/client.ts"). */
function sourceFiles(dir = SRC): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") ? [relative(SRC, path).split(sep).join("/")] : [];
  });
}

/** The top-level folder of a file, or ROOT_LAYER for the files directly in src/. */
function folderOf(file: string): string {
  const at = file.indexOf("/");
  return at < 0 ? ROOT_LAYER : file.slice(0, at);
}

/** Every module specifier a file names: static imports (type-only too), re-exports, import(), import("x").T. */
function specifiers(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found: string[] = [];
  const literal = (node: ts.Node | undefined) => {
    if (node && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node))) found.push(node.text);
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) literal(node.moduleSpecifier);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      literal(node.moduleReference.expression);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      literal(node.arguments[0]);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) literal(node.argument.literal);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The modules a file loads when it runs: what `specifiers` finds, less `import type` / `export type` (erased). */
function runtimeSpecifiers(file: string, text: string): string[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    const erased =
      (ts.isImportDeclaration(node) && node.importClause?.isTypeOnly) || (ts.isExportDeclaration(node) && node.isTypeOnly);
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && !erased && node.moduleSpecifier) {
      if (ts.isStringLiteral(node.moduleSpecifier)) found.push(node.moduleSpecifier.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = node.arguments[0];
      if (arg && ts.isStringLiteral(arg)) found.push(arg.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

interface Graph {
  files: string[];
  lines: Map<string, number>;
  /** file → the src/ files it imports (relative imports only; packages are not part of the structure). */
  imports: Map<string, Set<string>>;
  /** Relative imports that name no file of src/. */
  unresolved: string[];
}

function readGraph(): Graph {
  const files = sourceFiles().sort();
  const known = new Set(files);
  const lines = new Map<string, number>();
  const imports = new Map<string, Set<string>>();
  const unresolved: string[] = [];
  for (const file of files) {
    const text = readFileSync(join(SRC, file), "utf8");
    lines.set(file, text.endsWith("\n") ? text.split("\n").length - 1 : text.split("\n").length);
    const targets = new Set<string>();
    for (const spec of specifiers(file, text)) {
      if (!spec.startsWith(".")) continue;
      const target = posix.normalize(posix.join(posix.dirname(file), spec)).replace(/\.js$/, ".ts");
      if (known.has(target)) targets.add(target);
      else unresolved.push(`src/${file} imports "${spec}", which is no file of src/`);
    }
    imports.set(file, targets);
  }
  return { files, lines, imports, unresolved };
}

/** The folders of src/ in layer order, lowest first, from the numbered list under "## Layers" in the doc. */
function readLayers(): string[] {
  const doc = readFileSync(join(ROOT, LAYERS_DOC), "utf8");
  const section = /^## Layers\s*$([\s\S]*?)(?=^## |(?![\s\S]))/m.exec(doc)?.[1];
  if (section === undefined) throw new Error(`${LAYERS_DOC} has no "## Layers" section`);
  const layers = [...section.matchAll(/^\d+\. `([^`/]+)\/`/gm)].map((m) => m[1] as string);
  if (layers.length === 0) {
    throw new Error(`${LAYERS_DOC}, "## Layers": no numbered list items of the form 1. \`folder/\``);
  }
  return layers;
}

interface Cycle {
  /** One way round, first node repeated at the end. */
  path: string[];
  /** Every node that lies on some cycle with it, sorted: what else to untangle. */
  tangle: string[];
}

/** One cycle per strongly connected component with more than one node (or a self-loop). */
function cycles(nodes: readonly string[], edges: (node: string) => Iterable<string>): Cycle[] {
  // Tarjan's algorithm.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const connect = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v) as number);
    stack.push(v);
    onStack.add(v);
    for (const w of edges(v)) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      components.push(component);
    }
  };
  for (const v of nodes) if (!index.has(v)) connect(v);

  const found: Cycle[] = [];
  for (const component of components) {
    const members = new Set(component);
    const start = [...component].sort()[0] as string;
    if (component.length === 1 && ![...edges(start)].includes(start)) continue;
    // Shortest way back to start inside the component.
    const previous = new Map<string, string>();
    const queue = [start];
    search: while (queue.length > 0) {
      const v = queue.shift() as string;
      for (const w of edges(v)) {
        if (!members.has(w) || previous.has(w)) continue;
        previous.set(w, v);
        if (w === start) break search;
        queue.push(w);
      }
    }
    const between: string[] = [];
    for (let v = previous.get(start) as string; v !== start; v = previous.get(v) as string) between.unshift(v);
    found.push({ path: [start, ...between, start], tangle: [...component].sort() });
  }
  return found;
}

/** When more than the shown cycle is tangled: the rest, so one run names everything to untangle. */
function tangleNote(path: readonly string[], tangle: readonly string[]): string[] {
  const rest = tangle.filter((n) => !path.includes(n));
  return rest.length > 0 ? [`  tangled with it: ${rest.join(", ")}`] : [];
}

describe(`the structure of src/ (layers: ${LAYERS_DOC}, "## Layers")`, () => {
  const graph = readGraph();
  const folders = [...new Set(graph.files.map(folderOf))].filter((f) => f !== ROOT_LAYER).sort();

  it(`${LAYERS_DOC} lists every folder of src/ once, and no other`, () => {
    const layers = readLayers();
    const problems = [
      ...folders.filter((f) => !layers.includes(f)).map((f) => `src/${f}/ is missing from the list`),
      ...layers.filter((f) => !folders.includes(f)).map((f) => `${f}/ is listed but src/ has no such folder`),
      ...layers.filter((f, i) => layers.indexOf(f) !== i).map((f) => `${f}/ is listed more than once`),
    ];
    expect(problems, `${LAYERS_DOC}, "## Layers"`).toEqual([]);
  });

  it("every relative import names a file of src/", () => {
    expect(graph.unresolved, "imports the graph cannot follow").toEqual([]);
  });

  it("no import cycle between files", () => {
    const src = (files: readonly string[]) => files.map((f) => `src/${f}`);
    const found = cycles(graph.files, (f) => graph.imports.get(f) ?? []).map(({ path, tangle }) =>
      [src(path).join(" → "), ...tangleNote(src(path), src(tangle))].join("\n"),
    );
    expect(found, "import cycles between files (one shown per tangle)").toEqual([]);
  });

  it("no import cycle between folders", () => {
    const edges = new Map<string, Set<string>>();
    const via = new Map<string, string>();
    for (const [file, targets] of graph.imports) {
      for (const target of targets) {
        const [from, to] = [folderOf(file), folderOf(target)];
        if (from === to) continue;
        const out = edges.get(from) ?? new Set<string>();
        edges.set(from, out.add(to));
        if (!via.has(`${from}→${to}`)) via.set(`${from}→${to}`, `src/${file} → src/${target}`);
      }
    }
    const found = cycles([...folders, ROOT_LAYER], (f) => edges.get(f) ?? []).map(({ path, tangle }) => {
      const steps = path.slice(1).map((to, i) => `  ${via.get(`${path[i]}→${to}`)}`);
      return [path.join(" → "), ...steps, ...tangleNote(path, tangle)].join("\n");
    });
    expect(found, "import cycles between folders (one shown per tangle, with an import for each step)").toEqual([]);
  });

  it("no folder imports a later layer", () => {
    const layers = [...readLayers(), ROOT_LAYER];
    const rank = (folder: string) => layers.indexOf(folder);
    const problems: string[] = [];
    for (const [file, targets] of graph.imports) {
      for (const target of targets) {
        const [from, to] = [folderOf(file), folderOf(target)];
        if (from !== to && rank(from) >= 0 && rank(to) >= 0 && rank(to) > rank(from)) {
          problems.push(`src/${file} (${from}) imports src/${target} (${to}, a later layer)`);
        }
      }
    }
    expect(problems, `lower layers importing higher ones (order: ${layers.join(", ")})`).toEqual([]);
  });

  it("the pure decision (reconcile/decide/) loads nothing that does I/O or reads Secrets", () => {
    // What the decision may not reach, through any chain of runtime imports: I/O, and the credential parsers.
    const io = /^(?:node:(?:fs|fs\/promises|child_process|net|http|https|tls|dgram|dns|worker_threads)|@kubernetes\/client-node|undici|ssh2|tar-fs|fastify|prom-client)$/;
    const reached = new Set<string>();
    const problems: string[] = [];
    const walk = (file: string, chain: readonly string[]): void => {
      if (reached.has(file)) return;
      reached.add(file);
      const via = [...chain, `src/${file}`].join(" → ");
      if (folderOf(file) === "credentials") problems.push(`${via} (reads Secrets)`);
      for (const spec of runtimeSpecifiers(file, readFileSync(join(SRC, file), "utf8"))) {
        if (!spec.startsWith(".")) {
          if (io.test(spec)) problems.push(`${via} loads ${spec}`);
          continue;
        }
        walk(posix.normalize(posix.join(posix.dirname(file), spec)).replace(/\.js$/, ".ts"), [...chain, `src/${file}`]);
      }
    };
    for (const file of graph.files.filter((f) => f.startsWith("reconcile/decide/"))) walk(file, []);
    expect(reached.size).toBeGreaterThan(5);
    expect(problems, "what the decision reaches").toEqual([]);
  });

  it(`no file in src/ is over ${MAX_LINES} lines`, () => {
    const long = graph.files
      .filter((f) => (graph.lines.get(f) ?? 0) > MAX_LINES)
      .map((f) => `src/${f}: ${graph.lines.get(f)} lines`);
    expect(long, `files over ${MAX_LINES} lines (split them by concern)`).toEqual([]);
  });
});
