// One build host: a real `podman system service` on the VM's own loopback address with its own fresh storage, set
// up so that builds work in this sandbox without the controller passing anything special.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { killTree, listensOn } from "./processes.js";

export interface PodmanServiceOptions {
  ip: string;
  port: number;
  /** Created here; holds storage, tmp and the per-VM config files. */
  storageDir: string;
  /** Created here; podman's runtime state (must be at most 50 characters). */
  runRoot: string;
  logFile: string;
  /** host:port of the registry the build host reaches over plain HTTP. */
  insecureRegistry: string;
}

export interface PodmanCommand {
  command: string;
  args: string[];
  /** Added to the sim's environment. */
  env: Record<string, string>;
}

export function podmanServiceCommand(opts: PodmanServiceOptions): PodmanCommand {
  const dir = opts.storageDir;
  return {
    // A private mount namespace: podman's overlay mounts vanish with the process, so the scratch can rm -rf.
    command: "unshare",
    args: [
      "--mount",
      "--propagation",
      "private",
      "podman",
      "--root",
      join(dir, "root"),
      "--runroot",
      opts.runRoot,
      "--tmpdir",
      join(dir, "tmp"),
      // No systemd in the sandbox; journald absent too.
      "--cgroup-manager=cgroupfs",
      "--events-backend=file",
      "system",
      "service",
      "--time=0",
      `tcp://${opts.ip}:${opts.port}`,
    ],
    env: {
      CONTAINERS_REGISTRIES_CONF: join(dir, "registries.conf"),
      CONTAINERS_CONF: join(dir, "containers.conf"),
      // Measured: RUN with the default OCI isolation fails here (crun: "cgroups in hybrid mode not supported");
      // chroot isolation works. A property of the sandbox's build hosts, never of the controller's requests.
      BUILDAH_ISOLATION: "chroot",
      // Build contexts and image copies land on this VM's disk, credentials stay per VM.
      TMPDIR: join(dir, "tmp"),
      REGISTRY_AUTH_FILE: join(dir, "auth.json"),
    },
  };
}

function writeConfig(opts: PodmanServiceOptions): void {
  const dir = opts.storageDir;
  for (const sub of ["root", "tmp"]) mkdirSync(join(dir, sub), { recursive: true });
  mkdirSync(opts.runRoot, { recursive: true });
  writeFileSync(
    join(dir, "registries.conf"),
    [
      "# kubevirt-sim: the test registry is plain HTTP on loopback.",
      "unqualified-search-registries = []",
      "",
      "[[registry]]",
      `location = ${JSON.stringify(opts.insecureRegistry)}`,
      "insecure = true",
      "",
    ].join("\n"),
  );
  writeFileSync(
    join(dir, "containers.conf"),
    [
      "# kubevirt-sim: keeps the host's containers.conf out, and image copies on this VM's disk.",
      "[engine]",
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `image_copy_tmp_dir = ${JSON.stringify(join(dir, "tmp"))}`,
      "",
    ].join("\n"),
  );
}

export class PodmanService {
  readonly url: string;
  /** "code N" or "signal S" once the process has exited. */
  private exitStatus: string | undefined;
  /** Resolves when the service process has exited, for whatever reason. */
  readonly exited: Promise<void>;

  private constructor(
    readonly opts: PodmanServiceOptions,
    child: ChildProcess,
    readonly pid: number,
  ) {
    this.url = `http://${opts.ip}:${opts.port}`;
    this.exited = new Promise<void>((resolve) => {
      child.once("exit", (code, sig) => {
        this.exitStatus = sig !== null ? `signal ${sig}` : `code ${String(code)}`;
        resolve();
      });
    });
  }

  static start(opts: PodmanServiceOptions): PodmanService {
    writeConfig(opts);
    const cmd = podmanServiceCommand(opts);
    const logFd = openSync(opts.logFile, "a");
    let child: ChildProcess;
    try {
      // detached: own process group, so a kill of -pid reaches everything it started.
      child = spawn(cmd.command, cmd.args, {
        detached: true,
        stdio: ["ignore", logFd, logFd],
        env: { ...process.env, ...cmd.env },
      });
    } finally {
      closeSync(logFd);
    }
    if (child.pid === undefined) throw new Error(`spawning podman service for ${opts.ip}: no PID (see ${opts.logFile})`);
    return new PodmanService(opts, child, child.pid);
  }

  get hasExited(): boolean {
    return this.exitStatus !== undefined;
  }

  /** Last lines of the service's log, for error messages. */
  logTail(): string {
    try {
      return readFileSync(this.opts.logFile, "utf8").trim().split("\n").slice(-5).join(" | ");
    } catch {
      return "(no log)";
    }
  }

  /** Resolves once GET /libpod/_ping answers OK; rejects if the service exits, on abort or after timeoutMs. */
  async waitReady(signal: AbortSignal, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      signal.throwIfAborted();
      if (this.hasExited) {
        throw new Error(`podman service ${this.pid} on ${this.url} exited (${this.exitStatus ?? "?"}): ${this.logTail()}`);
      }
      if (Date.now() > deadline) throw new Error(`podman service on ${this.url} not answering _ping after ${timeoutMs} ms`);
      try {
        const res = await fetch(`${this.url}/libpod/_ping`, { signal: AbortSignal.any([signal, AbortSignal.timeout(1000)]) });
        // Another sim's VM may answer on this address: only a socket held by our live process counts.
        if (res.ok && (await res.text()) === "OK" && !this.hasExited && listensOn(this.pid, this.opts.ip, this.opts.port)) {
          return;
        }
      } catch {
        // Not listening yet.
      }
      await sleep(20);
    }
  }

  /** SIGKILL the service and everything it started; resolves once all are dead. */
  async kill(): Promise<void> {
    await killTree(this.pid);
    await this.exited;
  }
}
