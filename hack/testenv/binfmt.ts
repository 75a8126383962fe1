// qemu-user-static in binfmt_misc so that foreign-architecture RUN steps (arm64, ...) execute on this amd64 host.
// Registrations are kernel-wide and shared with anything else on the machine: `down` leaves them in place.
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { run } from "./exec.js";
import { progress, warn } from "./log.js";

const binfmtDir = "/proc/sys/fs/binfmt_misc";
/** aarch64 is required; the others are cheap to add for users who build for them. */
const required = ["aarch64"] as const;
const optional = ["ppc64le", "s390x"] as const;

async function ensureMounted(): Promise<void> {
  if (existsSync(`${binfmtDir}/register`)) return;
  progress(`mounting binfmt_misc at ${binfmtDir}`);
  await run("mount", ["-t", "binfmt_misc", "binfmt_misc", binfmtDir]);
}

/** Registers qemu-<arch> from Debian's /usr/lib/binfmt.d/qemu-<arch>.conf unless the kernel already has it. */
async function register(arch: string): Promise<void> {
  const name = `qemu-${arch}`;
  if (existsSync(`${binfmtDir}/${name}`)) return;
  const confPath = `/usr/lib/binfmt.d/${name}.conf`;
  const line = (await readFile(confPath, "utf8")).split("\n").find((l) => l.startsWith(":"));
  // Format: :name:type:offset:magic:mask:interpreter:flags
  const interpreter = line?.split(":")[6];
  if (!line || !interpreter) throw new Error(`${confPath} holds no binfmt_misc registration line`);
  if (!existsSync(interpreter)) {
    throw new Error(`${confPath} names interpreter ${interpreter}, which does not exist (reinstall qemu-user-static)`);
  }
  try {
    await writeFile(`${binfmtDir}/register`, line);
  } catch (err) {
    // EEXIST: someone registered it between our check and our write.
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
      throw new Error(`registering ${name} in binfmt_misc failed: ${(err as Error).message}`);
    }
  }
  progress(`registered ${name} in binfmt_misc`);
}

export async function ensureBinfmt(): Promise<void> {
  await ensureMounted();
  for (const arch of required) await register(arch);
  for (const arch of optional) {
    try {
      await register(arch);
    } catch (err) {
      warn(`${(err as Error).message} (optional, continuing)`);
    }
  }
}

/** True if aarch64 binaries would run through qemu right now. */
export function binfmtReady(): boolean {
  return existsSync(`${binfmtDir}/qemu-aarch64`);
}
