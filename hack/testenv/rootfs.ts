// A tiny busybox root filesystem tarball per architecture, from Debian's busybox-static.
import { mkdir, mkdtemp, rm, copyFile, symlink, writeFile, chmod } from "node:fs/promises";
import { join } from "node:path";
import { run } from "./exec.js";

/** Applets linked into /bin: what build steps and tests commonly call. */
const applets: readonly string[] = [
  "sh", "ash", "uname", "echo", "cat", "ls", "sleep", "mkdir", "rm", "rmdir", "true", "false", "dd", "sha256sum",
  "sha1sum", "md5sum", "seq", "cp", "mv", "ln", "touch", "chmod", "chown", "env", "printf", "test", "[", "grep",
  "sed", "awk", "head", "tail", "wc", "tr", "cut", "sort", "uniq", "tee", "xargs", "find", "id", "whoami", "date",
  "pwd", "hostname", "basename", "dirname", "readlink", "realpath", "mktemp", "stat", "du", "df", "tar", "gzip",
  "gunzip", "expr", "yes", "sync", "which", "ps", "kill", "arch",
];

/** `deb`: busybox-static of `arch`. Returns the path of a tar of the rootfs, created under `workDir`. */
export async function busyboxRootfsTar(deb: string, arch: string, workDir: string): Promise<string> {
  const tmp = await mkdtemp(join(workDir, `rootfs-${arch}-`));
  try {
    const unpacked = join(tmp, "deb");
    await run("dpkg-deb", ["-x", deb, unpacked]);
    const root = join(tmp, "rootfs");
    for (const d of ["bin", "usr/bin", "etc", "tmp", "root", "proc", "sys", "dev", "var/tmp"]) {
      await mkdir(join(root, d), { recursive: true });
    }
    await chmod(join(root, "tmp"), 0o1777);
    await copyFile(join(unpacked, "bin/busybox"), join(root, "bin/busybox"));
    await chmod(join(root, "bin/busybox"), 0o755);
    for (const applet of applets) await symlink("busybox", join(root, "bin", applet));
    // #!/usr/bin/env scripts are common.
    await symlink("/bin/busybox", join(root, "usr/bin/env"));
    await writeFile(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n");
    await writeFile(join(root, "etc/group"), "root:x:0:\nnogroup:x:65534:\n");
    return await tarRootfs(root, join(workDir, `busybox-rootfs-${arch}.tar`));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Tars the root filesystem at `root` into `tarPath` (every file owned by root, as an image's layer is); returns it. */
export async function tarRootfs(root: string, tarPath: string): Promise<string> {
  await run("tar", ["-C", root, "--numeric-owner", "--owner=0", "--group=0", "-cf", tarPath, "."]);
  return tarPath;
}
