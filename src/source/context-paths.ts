import { lstat, readFile, realpath, stat } from "node:fs/promises";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { ContextPathError, type ContextPathField } from "./context-errors.js";

export interface ContextPaths {
  /** Real path of the context directory (symlinks resolved): what gets packed. */
  contextDir: string;
  /** Real path of the Dockerfile. */
  dockerfile: string;
  /** The Dockerfile's posix path inside the context, or undefined when it lies outside it. */
  dockerfileInContext: string | undefined;
  ignoreFile: { name: string; content: string } | undefined;
}

// Podman reads .containerignore first, Docker only knows .dockerignore.
const IGNORE_FILES = [".containerignore", ".dockerignore"];

/**
 * Resolves `contextDir` and `dockerfile` (both relative to `root`) and rejects any that leaves the root,
 * lexically (`../../etc`) or through a symlink.
 */
export async function resolveContextPaths(root: string, contextDir: string, dockerfile: string): Promise<ContextPaths> {
  const rootReal = await realpath(root);
  const contextReal = await resolveInside(rootReal, contextDir, "contextDir");
  if (!(await stat(contextReal)).isDirectory()) throw new ContextPathError("contextDir", contextDir, "not-a-directory");
  const dockerfileReal = await resolveInside(rootReal, dockerfile, "dockerfile");
  if (!(await stat(dockerfileReal)).isFile()) throw new ContextPathError("dockerfile", dockerfile, "not-a-file");
  const dockerfileInContext = inside(contextReal, dockerfileReal)
    ? toPosix(relative(contextReal, dockerfileReal))
    : undefined;
  return {
    contextDir: contextReal,
    dockerfile: dockerfileReal,
    dockerfileInContext,
    ignoreFile: await readIgnoreFile(rootReal, contextReal),
  };
}

async function resolveInside(rootReal: string, given: string, field: ContextPathField): Promise<string> {
  // Lexical check first, so `../../etc/passwd` is refused without touching the path at all.
  if (isAbsolute(given) || !inside(rootReal, resolve(rootReal, given))) {
    throw new ContextPathError(field, given, "outside-root");
  }
  let real: string;
  try {
    real = await realpath(resolve(rootReal, given));
  } catch (error) {
    if (isNotFound(error)) throw new ContextPathError(field, given, "not-found");
    throw error;
  }
  if (!inside(rootReal, real)) throw new ContextPathError(field, given, "outside-root");
  return real;
}

async function readIgnoreFile(rootReal: string, contextReal: string): Promise<ContextPaths["ignoreFile"]> {
  for (const name of IGNORE_FILES) {
    const path = join(contextReal, name);
    try {
      await lstat(path);
    } catch (error) {
      if (isNotFound(error)) continue;
      throw error;
    }
    // A symlinked ignore file must not make us read (and act on) a file outside the checkout.
    const real = await resolveInside(rootReal, relative(rootReal, path), "ignoreFile");
    return { name, content: await readFile(real, "utf8") };
  }
  return undefined;
}

function inside(parent: string, child: string): boolean {
  const rel = relative(parent, child);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
}

function toPosix(path: string): string {
  return path.split(sep).join("/");
}

function isNotFound(error: unknown): boolean {
  const code = typeof error === "object" && error !== null && "code" in error ? error.code : undefined;
  return code === "ENOENT" || code === "ENOTDIR";
}
