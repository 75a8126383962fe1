import { lstatSync, type ReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { relative, sep } from "node:path";
import { Readable } from "node:stream";
import { pack as packDirectory, type Headers, type Pack, type PackOptions } from "tar-fs";
import { ContextTooLargeError } from "./context-errors.js";
import { createContextFilter } from "./context-ignore.js";
import { resolveContextPaths } from "./context-paths.js";

export interface PackContextOptions {
  /** Source checkout; nothing outside it is read. */
  root: string;
  /** Context directory, relative to root. */
  contextDir: string;
  /** Dockerfile, relative to root; it may lie outside contextDir. */
  dockerfile: string;
  /** Limit on the file data sent (tar headers not counted). */
  maxBytes: number;
}

export interface PackedContext {
  /** The context as a tar, produced while it is read; errors with ContextTooLargeError past maxBytes. */
  tar: Readable;
  /** The Dockerfile's path inside the tar: the `dockerfile` to pass to the build. */
  dockerfile: string;
  /** Bytes of the tar read from `tar` so far (headers and padding included). */
  bytesRead(): number;
}

/**
 * Streams `root/contextDir` as a tar with .containerignore / .dockerignore applied. Files are read one at a
 * time as the consumer pulls; symlinks are stored as links, never followed. Throws ContextPathError (before
 * any byte is produced) when a path leaves the root.
 */
export async function packContext(opts: PackContextOptions): Promise<PackedContext> {
  const paths = await resolveContextPaths(opts.root, opts.contextDir, opts.dockerfile);
  const filter = createContextFilter({ ignoreFile: paths.ignoreFile, dockerfile: paths.dockerfileInContext });
  // A Dockerfile outside the context is added at the end, under a name no context file can have.
  const appendDockerfile = paths.dockerfileInContext === undefined;
  const tarDockerfile = paths.dockerfileInContext ?? `.vmbuild-dockerfile-${randomBytes(6).toString("hex")}`;

  let counted = 0;
  const count = (size: number): ContextTooLargeError | undefined => {
    counted += size;
    return counted > opts.maxBytes ? new ContextTooLargeError(opts.maxBytes, counted) : undefined;
  };

  const options: PackOptions & { sort: boolean } = {
    sort: true,
    // Sockets, fifos and devices have no place in a context: skip them instead of failing.
    strict: false,
    ignore: (name) => {
      const rel = relative(paths.contextDir, name).split(sep).join("/");
      return filter.excludes(rel, () => lstatSync(name).isDirectory());
    },
    // Owner ids of the checkout mean nothing in the image; Docker's client sends 0 too.
    map: (header: Headers) => ({ ...header, uid: 0, gid: 0 }),
    mapStream: (file: ReadStream, header: Headers) => {
      const tooLarge = count(header.size);
      // Failing the file's stream makes tar-fs destroy the pack with this error, before the data is sent.
      if (tooLarge !== undefined) file.destroy(tooLarge);
      return file;
    },
    finalize: !appendDockerfile,
    finish: (finished) => {
      if (appendDockerfile) void appendFile(finished, tarDockerfile, paths.dockerfile, count);
    },
  };
  let read = 0;
  // Counted as the consumer pulls, so the count is what has left for podman, not what was read from disk. The pack
  // starts with the first pull: created sooner, it reads ahead with nobody listening for its errors, and a build
  // cancelled before its request read the tar had the checkout removed under it (an uncaught ENOENT).
  async function* counting(): AsyncGenerator<Buffer> {
    const tarPack: Pack = packDirectory(paths.contextDir, options);
    for await (const chunk of batched(tarPack as AsyncIterable<Buffer>)) {
      read += chunk.length;
      yield chunk;
    }
  }
  return {
    tar: Readable.from(counting(), { objectMode: false }),
    dockerfile: tarDockerfile,
    bytesRead: () => read,
  };
}

// tar-fs yields each header, padding and small file on its own: each would be an HTTP chunk of the build request
// and, over ssh, a packet encrypted and written by itself (a checkout of a few files is a hundred of them).
const BATCH_BYTES = 64 * 1024;

/** The pieces of `source` joined up to BATCH_BYTES; a piece that size or larger passes through uncopied. */
export async function* batched(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  let pieces: Buffer[] = [];
  let size = 0;
  for await (const piece of source) {
    if (size === 0 && piece.length >= BATCH_BYTES) {
      yield piece;
      continue;
    }
    pieces.push(piece);
    size += piece.length;
    if (size >= BATCH_BYTES) {
      yield Buffer.concat(pieces, size);
      pieces = [];
      size = 0;
    }
  }
  if (size > 0) yield Buffer.concat(pieces, size);
}

async function appendFile(
  target: Pack,
  name: string,
  path: string,
  count: (size: number) => Error | undefined,
): Promise<void> {
  try {
    // A Dockerfile is small: reading it whole is fine.
    const content = await readFile(path);
    const tooLarge = count(content.length);
    if (tooLarge !== undefined) throw tooLarge;
    target.entry({ name, size: content.length, mode: 0o644, mtime: new Date(0), uid: 0, gid: 0 }, content);
    target.finalize();
  } catch (error) {
    target.destroy(error instanceof Error ? error : new Error(String(error)));
  }
}
