// `npm run build`: bundles src/main.ts into dist/main.js and the CLI, src/cli/main.ts, into dist/kubectl-vmbuild.js. V8 keeps every loaded module's source text on the heap;
// client-node's API classes alone are 20 MB of it, nearly all unused here. The tree-shaken, minified bundle drops
// them (docs/benchmarks.md, "(b) peak RSS"). Packages that load files or native addons by path at run time stay
// external and come from node_modules.
import { rmSync } from "node:fs";
import { build } from "esbuild";

rmSync(new URL("../dist", import.meta.url), { recursive: true, force: true });
// The controller, and `kubectl vmbuild` (package.json's bin; its shebang is kept from src/cli/main.ts).
const entries: [string, string][] = [
  ["../src/main.ts", "../dist/main.js"],
  ["../src/cli/main.ts", "../dist/kubectl-vmbuild.js"],
];
for (const [source, out] of entries) await bundle(source, out);

async function bundle(source: string, out: string): Promise<void> {
  await build({
    entryPoints: [new URL(source, import.meta.url).pathname],
    outfile: new URL(out, import.meta.url).pathname,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    minify: true,
    // Error and class names stay readable in logs and conditions.
    keepNames: true,
    sourcemap: true,
    legalComments: "linked",
    external: [
      "ssh2", // optional native crypto addons
      "pino", // transports start workers from files by path
      "@balena/dockerignore", // loaded with createRequire (src/source/context-ignore.ts)
      "bufferutil", // optional native addons of ws, which client-node imports for exec and attach
      "utf-8-validate",
    ],
    // The bundled CommonJS packages call require() for Node's own modules.
    banner: { js: 'import { createRequire as __vmbuildRequire } from "node:module"; const require = __vmbuildRequire(import.meta.url);' },
    logLevel: "warning",
  });
}
