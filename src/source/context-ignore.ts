import { createRequire } from "node:module";
import { posix } from "node:path";
import type { Ignore } from "@balena/dockerignore";

// The package is CommonJS (`module.exports = factory`) while its typings declare a default export, which
// NodeNext resolves to the module object; require() gets the factory under the typings' own type.
type IgnoreFactory = typeof import("@balena/dockerignore").default;
const dockerignore = createRequire(import.meta.url)("@balena/dockerignore") as IgnoreFactory;

export interface ContextFilterInput {
  /** Content of `.containerignore` / `.dockerignore`, or undefined without one. */
  ignoreFile: { name: string; content: string } | undefined;
  /** Dockerfile path inside the context (posix, relative), or undefined when it lies outside the context. */
  dockerfile: string | undefined;
}

/** Decides, per context-relative posix path, whether an entry is left out of the context. */
export interface ContextFilter {
  /**
   * True when `path` is left out. `isDirectory` is asked only for excluded paths under which a `!` pattern
   * may re-include something (Docker then still walks the directory).
   */
  excludes(path: string, isDirectory: () => boolean): boolean;
}

/** Docker's .dockerignore semantics; the Dockerfile and the ignore file are always sent, as Docker does. */
export function createContextFilter(input: ContextFilterInput): ContextFilter {
  const lines = input.ignoreFile === undefined ? [] : parseIgnoreLines(input.ignoreFile.content);
  const matcher: Ignore = dockerignore().add(lines);
  const exceptions = lines.filter((line) => line.startsWith("!")).map((line) => cleanPattern(line.slice(1)));
  const keep = new Set<string>();
  if (input.ignoreFile !== undefined) keep.add(input.ignoreFile.name);
  if (input.dockerfile !== undefined) keep.add(input.dockerfile);

  return {
    excludes(path, isDirectory) {
      if (keep.has(path)) return false;
      if (input.dockerfile?.startsWith(`${path}/`) === true) return false;
      if (!matcher.ignores(path)) return false;
      // Like Docker: walk an excluded directory only when an exception pattern names something under it.
      const prefix = `${path}/`;
      const reincluded = exceptions.some((pattern) => `${pattern}/`.startsWith(prefix));
      return !(reincluded && isDirectory());
    },
  };
}

function parseIgnoreLines(content: string): string[] {
  return content
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
}

function cleanPattern(pattern: string): string {
  const cleaned = posix.normalize(pattern.trim().replace(/^\/+/, ""));
  return cleaned === "." ? "" : cleaned.replace(/\/+$/, "");
}
