// A read-only npm registry serving exactly the packages of one package-lock.json, for `npm ci` on a build VM that
// cannot reach registry.npmjs.org: packuments made from the lockfile's entries, tarballs from the testenv's cache
// (downloaded there once, checked against the lockfile's integrity).
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { npmTarball, tarballFileName } from "../../hack/testenv/npm-tarballs.js";

interface LockEntry {
  name?: string;
  version?: string;
  integrity?: string;
  link?: boolean;
  [field: string]: unknown;
}

export interface NpmMirror {
  /** Registry URL, with the trailing slash npm expects. */
  url: string;
  /** Tarballs served so far, as name@version. */
  served(): string[];
  stop(): Promise<void>;
}

/** The manifest fields of a packument's version that npm reads when it installs. */
const manifestFields = [
  "dependencies",
  "optionalDependencies",
  "peerDependencies",
  "peerDependenciesMeta",
  "bin",
  "engines",
  "os",
  "cpu",
  "libc",
  "license",
  "hasInstallScript",
] as const;

export async function startNpmMirror(opts: { lockfile: string; host: string }): Promise<NpmMirror> {
  const lock = JSON.parse(await readFile(opts.lockfile, "utf8")) as { packages: Record<string, LockEntry> };
  // name → version → entry; one name can be locked at several versions (nested node_modules).
  const packages = new Map<string, Map<string, LockEntry>>();
  for (const [path, entry] of Object.entries(lock.packages)) {
    const at = path.lastIndexOf("node_modules/");
    if (at < 0 || entry.link || !entry.version || !entry.integrity) continue;
    const name = entry.name ?? path.slice(at + "node_modules/".length);
    const versions = packages.get(name) ?? new Map<string, LockEntry>();
    versions.set(entry.version, entry);
    packages.set(name, versions);
  }
  const served: string[] = [];

  const server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? "/").split("?")[0] ?? "/").slice(1);
    const fail = (status: number, message: string) => res.writeHead(status, { "content-type": "text/plain" }).end(message);
    if (req.method !== "GET" && req.method !== "HEAD") return fail(405, "read-only mirror");
    const tarball = /^(.+)\/-\/([^/]+\.tgz)$/.exec(path);
    if (!tarball) {
      const versions = packages.get(path);
      if (!versions) return fail(404, `${path} is not in the lockfile`);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(packument(path, versions, url)));
      return;
    }
    const [, name = "", file] = tarball;
    const entry = [...(packages.get(name)?.values() ?? [])].find((e) => tarballFileName(name, e.version ?? "") === file);
    if (!entry?.version || !entry.integrity) return fail(404, `${path} is not in the lockfile`);
    const version = entry.version;
    npmTarball(name, version, entry.integrity).then(
      (local) => {
        served.push(`${name}@${version}`);
        res.writeHead(200, { "content-type": "application/octet-stream" });
        createReadStream(local).pipe(res);
      },
      (err: unknown) => fail(502, err instanceof Error ? err.message : String(err)),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, opts.host, resolve));
  const url = `http://${opts.host}:${(server.address() as AddressInfo).port}/`;
  return {
    url,
    served: () => [...served],
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function packument(name: string, versions: Map<string, LockEntry>, base: string): object {
  const all = [...versions.values()];
  return {
    name,
    "dist-tags": { latest: all[all.length - 1]?.version },
    versions: Object.fromEntries(
      all.map((e) => {
        const manifest: Record<string, unknown> = { name, version: e.version };
        for (const field of manifestFields) if (e[field] !== undefined) manifest[field] = e[field];
        manifest["dist"] = { tarball: `${base}${name}/-/${tarballFileName(name, e.version ?? "")}`, integrity: e.integrity };
        return [e.version, manifest];
      }),
    ),
  };
}
