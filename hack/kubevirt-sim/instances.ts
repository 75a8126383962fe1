// The virt-handler part: the podman services backing VMIs on this "node", keyed by VMI uid. Boot and scratch of
// one VMI are serialised: a scratch first cancels a boot in progress and waits for it.
import { writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { AddressPool } from "./addresses.js";
import { errorMessage, log } from "./log.js";
import { plugVM, unplugVM, type BridgeConfig } from "./network.js";
import { PodmanService, type PodmanListen } from "./podman-service.js";
import type { InstanceFacts, Recorder } from "./recorder.js";
import { logFileFor, pidFileFor, runRootFor, storageDirFor, type StateDir, type VMIKey } from "./state-dir.js";
import { removeStorage } from "./storage.js";

export interface InstancesConfig {
  layout: StateDir;
  addresses: AddressPool;
  bridge: BridgeConfig;
  recorder: Recorder;
  /** podman's TCP port on VMs that serve it on TCP. */
  port: number;
  /** host_ed25519 and authorized_keys of every VM's sshd. */
  sshDir: string;
  insecureRegistry: string;
  readyTimeoutMs: number;
}

export interface BootOptions {
  delayMs: number;
  neverReady: boolean;
  /** podman on its socket behind sshd (the protected default), or on TCP. */
  podmanListen: "socket" | "tcp";
}

interface Instance {
  facts: InstanceFacts;
  abort: AbortController;
  service?: PodmanService;
  /** Settles (never rejects) when the boot task ended. */
  booted: Promise<void>;
  scratching?: Promise<void>;
}

export class Instances {
  private readonly byUid = new Map<string, Instance>();
  private shuttingDown = false;

  constructor(
    private readonly cfg: InstancesConfig,
    /** Called when a service dies without us killing it (a crashed VM). */
    private readonly onServiceDied: (key: VMIKey) => void,
  ) {}

  has(uid: string): boolean {
    return this.byUid.has(uid);
  }

  uidsFor(namespace: string, name: string): string[] {
    return [...this.byUid.values()].filter((i) => i.facts.namespace === namespace && i.facts.vm === name).map((i) => i.facts.uid);
  }

  facts(uid: string): InstanceFacts | undefined {
    const inst = this.byUid.get(uid);
    return inst === undefined ? undefined : { ...inst.facts };
  }

  /** True once a scratch of the VMI began (or it is unknown here): a failed boot then is no failure. */
  cancelled(uid: string): boolean {
    const inst = this.byUid.get(uid);
    return inst === undefined || inst.abort.signal.aborted;
  }

  /** True when the VMI's podman service was started and has exited (not while the guest still boots). */
  serviceExited(uid: string): boolean {
    return this.byUid.get(uid)?.service?.hasExited === true;
  }

  /**
   * Boots a VMI: plug its network, delay (the guest's boot), start podman, wait until it answers _ping. Resolves with
   * its address; `addressed` hears it as soon as the network is plugged, while the guest still boots.
   */
  boot(key: VMIKey, opts: BootOptions, addressed: (ip: string) => void): Promise<string> {
    if (this.byUid.has(key.uid)) throw new Error(`VMI ${key.namespace}/${key.vm} (${key.uid}) is already booted here`);
    const inst: Instance = {
      facts: { namespace: key.namespace, vm: key.vm, uid: key.uid, ip: null, storageDir: null },
      abort: new AbortController(),
      booted: Promise.resolve(),
    };
    this.byUid.set(key.uid, inst);
    const task = this.runBoot(inst, key, opts, addressed);
    inst.booted = task.then(
      () => undefined,
      () => undefined,
    );
    return task;
  }

  private async runBoot(inst: Instance, key: VMIKey, opts: BootOptions, addressed: (ip: string) => void): Promise<string> {
    const signal = inst.abort.signal;
    const ip = this.cfg.addresses.allocate();
    inst.facts.ip = ip;
    inst.facts.storageDir = storageDirFor(this.cfg.layout, key);
    const plugStarted = Date.now();
    const netns = await plugVM(this.cfg.bridge, key.uid, ip);
    const plugMs = Date.now() - plugStarted;
    signal.throwIfAborted();
    // Like KubeVirt: the pod's network, and so the VMI's address, exists while the guest still boots.
    addressed(ip);
    if (opts.delayMs > 0) await sleep(opts.delayMs, undefined, { signal });
    if (opts.neverReady) {
      // Stays booting until deleted, like a VM whose guest never comes up.
      await new Promise<never>((_resolve, reject) => signal.addEventListener("abort", () => reject(signal.reason), { once: true }));
    }
    const listen: PodmanListen =
      opts.podmanListen === "tcp" ? { kind: "tcp", port: this.cfg.port } : { kind: "socket", sshDir: this.cfg.sshDir };
    const service = PodmanService.start({
      ip,
      netns,
      listen,
      storageDir: inst.facts.storageDir,
      runRoot: runRootFor(key.uid),
      logFile: logFileFor(this.cfg.layout, key),
      insecureRegistry: this.cfg.insecureRegistry,
    });
    inst.service = service;
    writeFileSync(pidFileFor(this.cfg.layout, key.uid), `${service.pid}\n`);
    this.cfg.recorder.podmanStarted(inst.facts, service.pid);
    const waited = await service.waitReady(signal, this.cfg.readyTimeoutMs);
    // Which part of a slow boot was slow: the network, podman's first answer, or sshd after it.
    log.info("answering", { namespace: key.namespace, vmi: key.vm, uid: key.uid, ip, plugMs, ...waited });
    void service.exited.then(() => {
      if (inst.scratching === undefined && !this.shuttingDown) this.onServiceDied(key);
    });
    return ip;
  }

  /**
   * Kills the VMI's podman service, deletes its network namespace, removes its storage and frees its address, then
   * records the scratch.
   * Idempotent; a failed scratch can be retried.
   */
  scratch(uid: string): Promise<void> {
    const inst = this.byUid.get(uid);
    if (inst === undefined) return Promise.resolve();
    if (inst.scratching === undefined) {
      inst.scratching = this.runScratch(inst).catch((err: unknown) => {
        inst.scratching = undefined;
        throw new Error(`scratching VMI ${inst.facts.namespace}/${inst.facts.vm} (${uid}): ${errorMessage(err)}`);
      });
    }
    return inst.scratching;
  }

  private async runScratch(inst: Instance): Promise<void> {
    const started = Date.now();
    await this.teardown(inst);
    if (inst.facts.ip !== null) this.cfg.addresses.release(inst.facts.ip);
    this.byUid.delete(inst.facts.uid);
    this.cfg.recorder.scratched(inst.facts, Date.now() - started);
    log.info("scratched", { namespace: inst.facts.namespace, vmi: inst.facts.vm, uid: inst.facts.uid, ms: Date.now() - started });
  }

  /** Process dead, network namespace, PID file and storage gone. */
  private async teardown(inst: Instance): Promise<void> {
    inst.abort.abort(new Error("VMI is going away"));
    await inst.booted;
    if (inst.service !== undefined) await inst.service.kill();
    await unplugVM(this.cfg.bridge, inst.facts.uid);
    await rm(pidFileFor(this.cfg.layout, inst.facts.uid), { force: true });
    if (inst.facts.storageDir !== null) {
      await removeStorage(runRootFor(inst.facts.uid));
      await removeStorage(inst.facts.storageDir);
    }
  }

  /**
   * On SIGTERM: kill every service and remove its storage, recorded as scratches (the disks are gone; the VMIs stay
   * in the API and the next sim marks them Failed).
   */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    const all = [...this.byUid.values()];
    await Promise.all(
      all.map(async (inst) => {
        if (inst.scratching !== undefined) {
          await inst.scratching.catch(() => undefined);
          return;
        }
        const started = Date.now();
        try {
          await this.teardown(inst);
          this.cfg.recorder.scratched(inst.facts, Date.now() - started);
        } catch (err) {
          log.error("shutdown teardown failed", { vmi: inst.facts.uid, error: errorMessage(err) });
        }
      }),
    );
    this.byUid.clear();
  }
}
