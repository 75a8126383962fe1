// The testenv's apt against real apt-get and dpkg, with two flat repositories on loopback: a good one and one whose
// index fails like a mirror mid-sync. Foreign downloads must leave the host's apt and dpkg as they were; a failed
// index must neither stop a download or install that does not need it nor go unnamed.
import { createHash } from "node:crypto";
import { chmod, lstat, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ensureCommands, privateApt, type AptSources } from "../../hack/testenv/apt.js";
import { debsFor } from "../../hack/testenv/debs.js";
import { run, which } from "../../hack/testenv/exec.js";
import { makeTempDir } from "../support/temp-dir.js";

const probe = "vmbuild-apt-probe";
const hostApt = ["/etc/apt", "/var/lib/apt/lists"];

let tmp: Awaited<ReturnType<typeof makeTempDir>>;
let server: Server;
let sources: AptSources;
let native: string;
let foreign: string;

async function buildDeb(arch: string): Promise<{ name: string; deb: Buffer }> {
  const root = join(tmp.path, `${probe}-${arch}`);
  await mkdir(join(root, "DEBIAN"), { recursive: true });
  await mkdir(join(root, "usr/bin"), { recursive: true });
  await writeFile(
    join(root, "DEBIAN/control"),
    `Package: ${probe}\nVersion: 1.0\nArchitecture: ${arch}\nMaintainer: vmbuild tests <tests@vmbuild.invalid>\n` +
      `Description: vmbuild's apt test probe\n`,
  );
  await writeFile(join(root, "usr/bin", probe), `#!/bin/sh\necho ${probe}\n`);
  await chmod(join(root, "usr/bin", probe), 0o755);
  const name = `${probe}_1.0_${arch}.deb`;
  await run("dpkg-deb", ["--root-owner-group", "--build", root, join(tmp.path, name)]);
  return { name, deb: await readFile(join(tmp.path, name)) };
}

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex");

/** A Release listing `packages`, or, for a mirror mid-sync, a newer Packages than the one served. */
function release(packages: Buffer, midSync = false): Buffer {
  const hash = sha256(midSync ? Buffer.from("newer") : packages);
  const size = packages.length + (midSync ? 100 : 0);
  return Buffer.from(`Date: ${new Date().toUTCString()}\nSHA256:\n ${hash} ${size} Packages\n`);
}

/** Every entry under the host's apt directories with its mtime and size: equal snapshots, nothing written. */
async function snapshotHostApt(): Promise<string[]> {
  const lines: string[] = [];
  for (const dir of hostApt) {
    for (const entry of ["", ...(await readdir(dir, { recursive: true }))]) {
      const stat = await lstat(join(dir, entry));
      lines.push(`${join(dir, entry)} ${stat.mtimeMs} ${stat.size}`);
    }
  }
  return lines.sort();
}

const foreignArchitectures = async (): Promise<string> => (await run("dpkg", ["--print-foreign-architectures"])).stdout;
const purgeProbe = (): Promise<unknown> => run("dpkg", ["--purge", probe]);

/** What `action` printed as progress (the testenv reports on stderr). */
async function reported(action: () => Promise<unknown>): Promise<string> {
  const spy = vi.spyOn(process.stderr, "write");
  try {
    await action();
    return spy.mock.calls.map(([chunk]) => String(chunk)).join("");
  } finally {
    spy.mockRestore();
  }
}

beforeAll(async () => {
  tmp = await makeTempDir("apt");
  native = (await run("dpkg", ["--print-architecture"])).stdout.trim();
  foreign = native === "arm64" ? "s390x" : "arm64";
  const files = new Map<string, Buffer>();
  const stanzas: string[] = [];
  for (const arch of [native, foreign]) {
    const { name, deb } = await buildDeb(arch);
    files.set(`/good/${name}`, deb);
    const control = (await run("dpkg-deb", ["-f", join(tmp.path, name)])).stdout.trimEnd();
    stanzas.push(`${control}\nFilename: ${name}\nSize: ${deb.length}\nSHA256: ${sha256(deb)}\n`);
  }
  const packages = Buffer.from(stanzas.join("\n"));
  files.set("/good/Release", release(packages));
  files.set("/good/Packages", packages);
  files.set("/broken/Release", release(packages, true));
  files.set("/broken/Packages", packages);

  server = createServer((req, res) => {
    const body = files.get(new URL(req.url ?? "/", "http://x").pathname);
    res.writeHead(body ? 200 : 404).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  sources = { list: join(tmp.path, "sources.list"), parts: join(tmp.path, "sources.list.d") };
  await mkdir(sources.parts);
  await writeFile(
    sources.list,
    `deb [trusted=yes] http://127.0.0.1:${port}/good ./\ndeb [trusted=yes] http://127.0.0.1:${port}/broken ./\n`,
  );
  await purgeProbe();
});

afterAll(async () => {
  await purgeProbe();
  await new Promise((resolve) => server?.close(resolve));
  await tmp?.remove();
});

describe("testenv apt", () => {
  it("downloads a foreign .deb despite a broken index, leaving the host's apt and dpkg as they were", async () => {
    const foreignBefore = await foreignArchitectures();
    const hostBefore = await snapshotHostApt();
    const dir = join(tmp.path, "cache");

    let debs = new Map<string, string>();
    const progress = await reported(async () => (debs = await debsFor(probe, [foreign], { dir, sources })));
    const deb = debs.get(foreign) ?? "";
    expect(deb).toBe(join(dir, "debs", `${probe}_1.0_${foreign}.deb`));
    expect((await run("dpkg-deb", ["-f", deb, "Architecture"])).stdout.trim()).toBe(foreign);
    expect(progress).toMatch(
      /WARNING: apt-get update: failed to fetch http:\/\/127\.0\.0\.1:\d+\/broken\/\.\/Packages \S/,
    );

    // A package no index lists: the download's error names the failed index as the likely cause.
    await expect(debsFor("vmbuild-apt-absent", [foreign], { dir, sources })).rejects.toThrow(
      /apt-get .*download vmbuild-apt-absent.*failed[\s\S]*apt-get update before it: failed to fetch .*\/broken\//,
    );

    expect(await foreignArchitectures()).toBe(foreignBefore);
    expect(await snapshotHostApt()).toEqual(hostBefore);
  });

  it("installs a missing command into the host when another index fails", async () => {
    expect(await which(probe)).toBeUndefined();
    const hostBefore = await snapshotHostApt();
    // The host's dpkg, but lists of their own: an update from other sources would drop the host's lists.
    const apt = await privateApt(join(tmp.path, "host-apt"), sources);

    const progress = await reported(() => ensureCommands({ [probe]: probe }, apt));
    expect(progress).toMatch(/apt-get update: failed to fetch .*\/broken\//);
    expect(await which(probe)).toBe(`/usr/bin/${probe}`);
    expect((await run(probe, [])).stdout).toBe(`${probe}\n`);

    await expect(ensureCommands({ "vmbuild-apt-absent": "vmbuild-apt-absent" }, apt)).rejects.toThrow(
      /install .*vmbuild-apt-absent.*failed[\s\S]*apt-get update before it: failed to fetch .*\/broken\//,
    );
    expect(await snapshotHostApt()).toEqual(hostBefore);
  });
});
