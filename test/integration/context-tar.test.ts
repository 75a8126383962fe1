import { spawn } from "node:child_process";
import { mkdir, open, rm, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ContextPathError, ContextTooLargeError } from "../../src/source/context-errors.js";
import { packContext } from "../../src/source/context-tar.js";
import { makeTempDir } from "../support/temp-dir.js";

interface TarEntry {
  type: string;
  size: number;
  name: string;
  uid: number;
}

describe("packContext on a real directory tree", { timeout: 60_000 }, () => {
  let temp: { path: string; remove(): Promise<void> };
  let root: string;

  beforeEach(async () => {
    temp = await makeTempDir("context");
    root = join(temp.path, "checkout");
    await mkdir(root);
  });
  afterEach(async () => temp.remove());

  async function write(path: string, content: string | Buffer): Promise<void> {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }

  it("applies .dockerignore: a large file and a directory stay out, exceptions and the Dockerfile stay in", async () => {
    await write("app/Dockerfile", "FROM scratch\n");
    await write("app/.dockerignore", "big.bin\nlogs\n*.tmp\n!keep.tmp\nDockerfile\n.dockerignore\nvendor\n!vendor/keep/\n");
    await write("app/big.bin", Buffer.alloc(8 << 20));
    await write("app/logs/a.log", "log");
    await write("app/x.tmp", "x");
    await write("app/keep.tmp", "keep");
    await write("app/src/main.c", "int main(void) { return 0; }\n");
    await write("app/vendor/drop/file", "drop");
    await write("app/vendor/keep/file", "keep");

    const packed = await packContext({ root, contextDir: "app", dockerfile: "app/Dockerfile", maxBytes: 1 << 20 });
    expect(packed.dockerfile).toBe("Dockerfile");
    const entries = await listTar(packed.tar);
    const names = entries.map((entry) => entry.name);
    expect(names).toEqual(
      expect.arrayContaining([".dockerignore", "Dockerfile", "keep.tmp", "src/main.c", "vendor/keep/file"]),
    );
    for (const excluded of ["big.bin", "logs", "logs/a.log", "x.tmp", "vendor/drop", "vendor/drop/file"]) {
      expect(names).not.toContain(excluded);
    }
    expect(entries.every((entry) => entry.uid === 0)).toBe(true);
  });

  it("prefers .containerignore over .dockerignore", async () => {
    await write("Dockerfile", "FROM scratch\n");
    await write(".containerignore", "a.txt\n");
    await write(".dockerignore", "b.txt\n");
    await write("a.txt", "a");
    await write("b.txt", "b");
    const names = (await listTar((await packContext({ root, contextDir: ".", dockerfile: "Dockerfile", maxBytes: 1 << 20 })).tar)).map(
      (entry) => entry.name,
    );
    expect(names).toContain("b.txt");
    expect(names).toContain(".containerignore");
    expect(names).not.toContain("a.txt");
  });

  it("keeps symlinks as links and never reads their targets", async () => {
    await write("Dockerfile", "FROM scratch\n");
    await symlink("/etc/passwd", join(root, "passwd-link"));
    await symlink("..", join(root, "parent-link"));
    const entries = await listTar((await packContext({ root, contextDir: ".", dockerfile: "Dockerfile", maxBytes: 100 })).tar);
    expect(entries).toContainEqual({ type: "l", size: 0, name: "passwd-link -> /etc/passwd", uid: 0 });
    expect(entries).toContainEqual({ type: "l", size: 0, name: "parent-link -> ..", uid: 0 });
  });

  it("appends a Dockerfile from outside the context under its own name", async () => {
    await write("docker/app.Dockerfile", "FROM scratch\nCOPY . /\n");
    await write("app/file", "f");
    const packed = await packContext({ root, contextDir: "app", dockerfile: "docker/app.Dockerfile", maxBytes: 1 << 20 });
    expect(packed.dockerfile).toMatch(/^\.vmbuild-dockerfile-[a-f0-9]{12}$/);
    const entries = await listTar(packed.tar);
    expect(entries).toContainEqual({ type: "-", size: 22, name: packed.dockerfile, uid: 0 });
    expect(entries.map((entry) => entry.name)).toContain("file");
  });

  it("counts the tar bytes read so far, headers and padding included", async () => {
    await write("Dockerfile", "FROM scratch\n");
    await write("data.bin", Buffer.alloc(100_000, 7));
    const packed = await packContext({ root, contextDir: ".", dockerfile: "Dockerfile", maxBytes: 1 << 20 });
    expect(packed.bytesRead()).toBe(0);
    let total = 0;
    for await (const chunk of packed.tar) total += (chunk as Buffer).length;
    // Two 512-byte headers, the data padded to 512, two zero blocks at the end (at least).
    expect(total).toBeGreaterThanOrEqual(100_000 + 14 + 4 * 512);
    expect(total % 512).toBe(0);
    expect(packed.bytesRead()).toBe(total);
  });

  it("fails the stream with ContextTooLargeError past maxBytes", async () => {
    await write("Dockerfile", "FROM scratch\n");
    await write("data/one.bin", Buffer.alloc(600_000));
    await write("data/two.bin", Buffer.alloc(600_000));
    const packed = await packContext({ root, contextDir: ".", dockerfile: "Dockerfile", maxBytes: 1_000_000 });
    let sent = 0;
    const consume = async (): Promise<void> => {
      for await (const chunk of packed.tar) sent += (chunk as Buffer).length;
    };
    const error = await consume().then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ContextTooLargeError);
    expect(error).toMatchObject({ maxBytes: 1_000_000 });
    // The second file's data was never sent.
    expect(sent).toBeLessThan(1_000_000);
  });

  it("fails an appended Dockerfile that crosses maxBytes", async () => {
    await write("docker/Dockerfile", "FROM scratch\n");
    await write("app/file", "12345");
    const packed = await packContext({ root, contextDir: "app", dockerfile: "docker/Dockerfile", maxBytes: 10 });
    await expect(listTar(packed.tar)).rejects.toBeInstanceOf(ContextTooLargeError);
  });

  it("streams a large context without holding it in memory", async () => {
    await write("Dockerfile", "FROM scratch\n");
    // Sparse: costs no disk, but every byte is read and sent.
    const handle = await open(join(root, "huge.bin"), "w");
    await handle.truncate(512 << 20);
    await handle.close();
    const packed = await packContext({ root, contextDir: ".", dockerfile: "Dockerfile", maxBytes: 1 << 30 });
    const before = process.memoryUsage().rss;
    let peak = before;
    let sent = 0;
    const started = Date.now();
    for await (const chunk of packed.tar) {
      sent += (chunk as Buffer).length;
      peak = Math.max(peak, process.memoryUsage().rss);
    }
    console.log(`512 MiB context streamed in ${Date.now() - started} ms, rss +${((peak - before) / 2 ** 20).toFixed(1)} MiB`);
    expect(sent).toBeGreaterThan(512 << 20);
    expect(peak - before).toBeLessThan(100 << 20);
  });

  // A build cancelled as it starts: the job removes the checkout while the tar is not (or no longer) read. No read
  // of the checkout may then fail where nobody listens: that crashed the controller (ENOENT on .git/HEAD).
  it.each([
    { name: "before a byte is read", chunks: 0 },
    { name: "after the first chunk", chunks: 1 },
  ])("lets go of the checkout when the consumer stops $name and the checkout is removed", async ({ chunks }) => {
    const uncaught: unknown[] = [];
    const record = (err: unknown) => uncaught.push(err);
    process.on("uncaughtException", record);
    try {
      // Many small files: the removal races whatever reads them.
      for (let round = 0; round < 10; round++) {
        const dir = join(temp.path, `checkout-${round}`);
        for (let i = 0; i < 100; i++) {
          await mkdir(join(dir, ".git", "objects"), { recursive: true });
          await writeFile(join(dir, ".git", "objects", `o${String(i).padStart(3, "0")}`), `object ${i}\n`);
        }
        await writeFile(join(dir, "Dockerfile"), "FROM scratch\n");
        const packed = await packContext({ root: dir, contextDir: ".", dockerfile: "Dockerfile", maxBytes: 1 << 30 });
        for (let read = 0; read < chunks; read++) await new Promise((resolve) => packed.tar.once("data", resolve));
        packed.tar.destroy();
        await rm(dir, { recursive: true, force: true });
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect(packed.tar.destroyed).toBe(true);
      }
      expect(uncaught).toEqual([]);
    } finally {
      process.off("uncaughtException", record);
    }
  });

  const outside: { name: string; contextDir: string; dockerfile: string; field: string }[] = [
    { name: "contextDir ../..", contextDir: "../..", dockerfile: "Dockerfile", field: "contextDir" },
    { name: "absolute contextDir", contextDir: "/etc", dockerfile: "Dockerfile", field: "contextDir" },
    { name: "dockerfile ../../etc/passwd", contextDir: ".", dockerfile: "../../etc/passwd", field: "dockerfile" },
    { name: "dockerfile through a symlink", contextDir: ".", dockerfile: "evil-link", field: "dockerfile" },
    { name: "contextDir through a symlink", contextDir: "etc-link", dockerfile: "Dockerfile", field: "contextDir" },
  ];

  it.each(outside)("rejects $name naming the field", async ({ contextDir, dockerfile, field }) => {
    await write("Dockerfile", "FROM scratch\n");
    await symlink("/etc/passwd", join(root, "evil-link"));
    await symlink("/etc", join(root, "etc-link"));
    await expect(packContext({ root, contextDir, dockerfile, maxBytes: 100 })).rejects.toMatchObject({
      name: "ContextPathError",
      field,
      problem: "outside-root",
    });
  });

  it("rejects a missing context and a directory as Dockerfile", async () => {
    await write("app/Dockerfile", "FROM scratch\n");
    await expect(packContext({ root, contextDir: "missing", dockerfile: "app/Dockerfile", maxBytes: 100 })).rejects.toEqual(
      new ContextPathError("contextDir", "missing", "not-found"),
    );
    await expect(packContext({ root, contextDir: "app", dockerfile: "app", maxBytes: 100 })).rejects.toEqual(
      new ContextPathError("dockerfile", "app", "not-a-file"),
    );
  });

  it("rejects a symlinked ignore file pointing outside the checkout", async () => {
    await write("Dockerfile", "FROM scratch\n");
    await symlink("/etc/hostname", join(root, ".dockerignore"));
    await expect(packContext({ root, contextDir: ".", dockerfile: "Dockerfile", maxBytes: 100 })).rejects.toMatchObject({
      field: "ignoreFile",
    });
  });
});

/** Lists a tar stream with GNU tar: type letter, size, name (`a -> b` for links), owner uid. */
async function listTar(stream: Readable): Promise<TarEntry[]> {
  const child = spawn("tar", ["-tv", "--numeric-owner", "-f", "-"], { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const exited = new Promise<number | null>((resolve) => child.once("close", resolve));
  let streamError: unknown;
  try {
    for await (const chunk of stream) {
      if (!child.stdin.write(chunk)) await new Promise((resolve) => child.stdin.once("drain", resolve));
    }
  } catch (error) {
    streamError = error;
  }
  child.stdin.end();
  const code = await exited;
  if (streamError !== undefined) throw streamError;
  if (code !== 0) throw new Error(`tar -t failed: ${stderr}`);
  return stdout
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => {
      const match = /^(\S)\S*\s+(\d+)\/\d+\s+(\d+)\s+\S+\s+\S+\s+(.*)$/.exec(line);
      if (match === null) throw new Error(`unexpected tar line ${line}`);
      return { type: match[1] ?? "", uid: Number(match[2]), size: Number(match[3]), name: (match[4] ?? "").replace(/\/$/, "") };
    });
}
