// One build host: a real `podman system service` in the VM's network namespace with its own fresh storage, set up
// so that builds work in this sandbox without the controller passing anything special. Like the example pool's
// image, by default podman listens on its unix socket only (in a mount namespace of the VM's own, where
// /run/podman is a private tmpfs) and an sshd on port 22 forwards the controller's key to it; a VM annotated
// `sim.vmbuild.dev/podman-listen: tcp` serves podman on tcp://ADDRESS:PORT instead (the article's setup).
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { killTree } from "./processes.js";

/** Where podman listens: its unix socket behind sshd (default), or plain TCP on the VM's address. */
export type PodmanListen = { kind: "socket"; sshDir: string } | { kind: "tcp"; port: number };

export const PODMAN_SOCKET = "/run/podman/podman.sock";
const SSH_PORT = 22;

export interface PodmanServiceOptions {
  ip: string;
  /** The VM's network namespace (network.ts). */
  netns: string;
  listen: PodmanListen;
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

// Runs as the VM's "init": a mount namespace of its own with /run/podman on a private tmpfs (so the socket path is
// the VM's, not the host's), sshd in the background when asked, then podman in the foreground.
const VM_INIT = [
  "set -e",
  "mkdir -p /run/podman /run/sshd",
  "mount -t tmpfs -o mode=0700 vm-run-podman /run/podman",
  'if [ -n "$VM_SSHD_CONFIG" ]; then /usr/sbin/sshd -D -e -f "$VM_SSHD_CONFIG" & fi',
  'exec "$@"',
].join("\n");

export function podmanServiceCommand(opts: PodmanServiceOptions): PodmanCommand {
  const dir = opts.storageDir;
  const endpoint = opts.listen.kind === "tcp" ? `tcp://${opts.ip}:${opts.listen.port}` : `unix://${PODMAN_SOCKET}`;
  return {
    command: "ip",
    args: [
      "netns",
      "exec",
      opts.netns,
      // A private mount namespace: podman's overlay mounts vanish with the process, so the scratch can rm -rf.
      "unshare",
      "--mount",
      "--propagation",
      "private",
      "sh",
      "-c",
      VM_INIT,
      "vm-init",
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
      endpoint,
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
      VM_SSHD_CONFIG: opts.listen.kind === "socket" ? join(dir, "sshd_config") : "",
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
  if (opts.listen.kind === "socket") {
    const ssh = opts.listen.sshDir;
    writeFileSync(
      join(dir, "sshd_config"),
      hardenedSshdConfig({
        port: SSH_PORT,
        hostKey: join(ssh, "host_ed25519"),
        authorizedKeys: join(ssh, "authorized_keys"),
        pidFile: join(dir, "sshd.pid"),
      }),
    );
  }
}

/**
 * SECURITY.md's hardening for a build VM's sshd: keys only, nothing but local forwarding (to podman's socket), no
 * pty, no X11. Without `listenAddress`, every address of the (VM's) network namespace.
 */
export function hardenedSshdConfig(o: {
  port: number;
  listenAddress?: string;
  hostKey: string;
  authorizedKeys: string;
  pidFile: string;
}): string {
  return [
    `Port ${o.port}`,
    ...(o.listenAddress ? [`ListenAddress ${o.listenAddress}`] : []),
    `HostKey ${o.hostKey}`,
    `AuthorizedKeysFile ${o.authorizedKeys}`,
    `PidFile ${o.pidFile}`,
    "PermitRootLogin prohibit-password",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "UsePAM no",
    // The testenv's key dirs are not home directories owned the way StrictModes wants.
    "StrictModes no",
    "AllowStreamLocalForwarding local",
    // OpenSSH ties streamlocal forwarding to AllowTcpForwarding's local permission: "no" would refuse it too.
    "AllowTcpForwarding local",
    "X11Forwarding no",
    "PermitTTY no",
    "",
  ].join("\n");
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
    this.url = opts.listen.kind === "tcp" ? `http://${opts.ip}:${opts.listen.port}` : `unix://${PODMAN_SOCKET} in ${opts.netns}`;
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

  /**
   * Resolves once GET /libpod/_ping answers OK (over the VM's socket, seen through the service's own root, or its
   * TCP port) and, behind a socket, sshd accepts connections; rejects if the service exits, on abort or after
   * timeoutMs. Resolves with how long podman took to answer, and the whole wait.
   */
  async waitReady(signal: AbortSignal, timeoutMs: number): Promise<{ podmanMs: number; readyMs: number }> {
    const started = Date.now();
    const deadline = started + timeoutMs;
    let podmanMs: number | undefined;
    for (;;) {
      signal.throwIfAborted();
      if (this.hasExited) {
        throw new Error(`podman service ${this.pid} on ${this.url} exited (${this.exitStatus ?? "?"}): ${this.logTail()}`);
      }
      if (Date.now() > deadline) throw new Error(`podman service on ${this.url} not answering _ping after ${timeoutMs} ms`);
      if (podmanMs === undefined && (await this.pings(signal))) podmanMs = Date.now() - started;
      const sshOK = this.opts.listen.kind === "tcp" || (podmanMs !== undefined && (await accepts(this.opts.ip, SSH_PORT)));
      if (podmanMs !== undefined && sshOK && !this.hasExited) return { podmanMs, readyMs: Date.now() - started };
      await sleep(20);
    }
  }

  private async pings(signal: AbortSignal): Promise<boolean> {
    const { listen, ip } = this.opts;
    const target =
      listen.kind === "tcp"
        ? { host: ip, port: listen.port }
        : { socketPath: `/proc/${this.pid}/root${PODMAN_SOCKET}` };
    return new Promise<boolean>((resolve) => {
      const req = request({ ...target, path: "/libpod/_ping", signal, timeout: 1000 }, (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => resolve(res.statusCode === 200 && body === "OK"));
      });
      req.once("error", () => resolve(false));
      req.once("timeout", () => req.destroy());
      req.end();
    });
  }

  /** SIGKILL the service and everything it started; resolves once all are dead. */
  async kill(): Promise<void> {
    await killTree(this.pid);
    await this.exited;
  }
}

/** True once a TCP connection to host:port is accepted within `timeoutMs`. */
export function accepts(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => {
      socket.destroy();
      resolve(false);
    });
  });
}
