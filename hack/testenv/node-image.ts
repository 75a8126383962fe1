// The Node base image the controller's Dockerfile builds FROM in the testenv (its NODE_IMAGE build argument). No
// public registry is reachable, so it is assembled here, like the busybox base, for amd64 and arm64: Debian's
// userland from packages (among them what the Dockerfile's runtime stage would apt-get: git, openssh-client,
// ca-certificates), the official Node binary from the npm registry's node-linux-<arch> package, npm from its own.
import { chmod, mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { pushIndex, registryServesIndex, withScratchDir, type RootfsTar } from "./base-image.js";
import { debClosure } from "./debs.js";
import type { RegistryInfo } from "./env-file.js";
import { run } from "./exec.js";
import { elapsed, progress } from "./log.js";
import { npmTarball } from "./npm-tarballs.js";
import { tarRootfs } from "./rootfs.js";

/** The Dockerfile's Node major (node:26-trixie-slim); Debian's userland is the host's release (apt sources). */
const nodeVersion = "26.12.1";
const npmVersion = "12.2.3";
const nodeImageRepository = "vmbuild/node";

/** OCI architecture → Debian's and Node's names for it. */
const architectures: Readonly<Record<string, { debian: string; node: string }>> = {
  amd64: { debian: "amd64", node: "x64" },
  arm64: { debian: "arm64", node: "arm64" },
};
const nodeImageArchitectures: readonly string[] = Object.keys(architectures);

/** The node binary's libraries, a shell for RUN steps, and what the controller runs (git, ssh). */
const packages: readonly string[] = [
  "dash",
  "coreutils", // /usr/bin/env, for npm's and its packages' #!/usr/bin/env node
  "libc6",
  "libgcc-s1",
  "libstdc++6",
  "libatomic1",
  "git",
  "openssh-client",
  "ca-certificates",
];

function nodeImageRef(registry: RegistryInfo): string {
  return `${registry.host}/${nodeImageRepository}:${nodeVersion}`;
}

/** Builds and pushes the image unless the registry serves it already; returns its reference. */
export async function ensureNodeImage(registry: RegistryInfo): Promise<string> {
  const ref = nodeImageRef(registry);
  if (await registryServesIndex(registry, nodeImageRepository, nodeVersion, nodeImageArchitectures)) return ref;
  const start = Date.now();
  progress(`building Node base image ${ref} (${nodeImageArchitectures.join(", ")})`);
  await withScratchDir("vmbuild-node-", async (dir) => {
    const npm = await npmTarball("npm", npmVersion);
    const rootfs: RootfsTar[] = [];
    for (const [arch, names] of Object.entries(architectures)) {
      const debs = await debClosure(packages, names.debian);
      const node = await npmTarball(`node-linux-${names.node}`, nodeVersion);
      rootfs.push({ arch, tar: await nodeRootfsTar({ arch, debs, node, npm, workDir: dir }) });
    }
    const changes = [
      "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      `ENV NODE_VERSION=${nodeVersion}`,
      'CMD ["node"]',
    ];
    await pushIndex(registry, { repository: nodeImageRepository, tag: nodeVersion }, rootfs, changes, dir);
  });
  progress(`Node base image ${ref} pushed (${elapsed(start)})`);
  return ref;
}

async function nodeRootfsTar(o: { arch: string; debs: readonly string[]; node: string; npm: string; workDir: string }): Promise<string> {
  const root = join(o.workDir, `node-rootfs-${o.arch}`);
  await mkdir(root, { recursive: true });
  // Unpacked, not installed: no maintainer script runs, so what they would make is made below.
  for (const deb of o.debs) await run("dpkg-deb", ["-x", deb, root]);
  if (!existsSync(join(root, "bin/sh"))) await symlink("dash", join(root, "bin/sh"));
  await caBundle(root);

  const local = join(root, "usr/local");
  await mkdir(join(local, "bin"), { recursive: true });
  await run("tar", ["-xzf", o.node, "-C", local, "--strip-components=1", "package/bin/node"]);
  const npmDir = join(local, "lib/node_modules/npm");
  await mkdir(npmDir, { recursive: true });
  await run("tar", ["-xzf", o.npm, "-C", npmDir, "--strip-components=1"]);
  await symlink("../lib/node_modules/npm/bin/npm-cli.js", join(local, "bin/npm"));
  await symlink("../lib/node_modules/npm/bin/npx-cli.js", join(local, "bin/npx"));

  for (const d of ["tmp", "root", "proc", "sys", "dev", "run", "var/tmp"]) await mkdir(join(root, d), { recursive: true });
  await chmod(join(root, "tmp"), 0o1777);
  await chmod(join(root, "var/tmp"), 0o1777);
  // base-passwd's postinst would write these.
  await writeFile(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
  await writeFile(join(root, "etc/group"), "root:x:0:\nnogroup:x:65534:\n");

  return tarRootfs(root, join(o.workDir, `node-rootfs-${o.arch}.tar`));
}

/** What ca-certificates' postinst (update-ca-certificates) makes: one bundle of every certificate it ships. */
async function caBundle(root: string): Promise<void> {
  const shipped = join(root, "usr/share/ca-certificates");
  const files: string[] = [];
  for (const entry of await readdir(shipped, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith(".crt")) files.push(join(entry.parentPath, entry.name));
  }
  files.sort();
  const pems = await Promise.all(files.map((f) => readFile(f, "utf8")));
  await mkdir(join(root, "etc/ssl/certs"), { recursive: true });
  await writeFile(join(root, "etc/ssl/certs/ca-certificates.crt"), pems.map((p) => p.trimEnd() + "\n").join(""));
}
