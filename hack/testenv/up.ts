// `up`: everything the integration tests need, or nothing (a failed `up` stops what it started).
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { ensureCommands } from "./apt.js";
import { ensureBaseImage } from "./base-image.js";
import { tektonController } from "./binaries.js";
import { ensureBinfmt } from "./binfmt.js";
import { startControlPlane } from "./control-plane.js";
import { certUser } from "./client-certs.js";
import { controllerUser, nobodyUser, tektonUser } from "./credentials.js";
import { stopAndClean } from "./down.js";
import { readTestenv, writeTestenv, type Testenv } from "./env-file.js";
import { simMain, simStateDir, startKubevirtSim } from "./kubevirt-sim.js";
import { withLock } from "./lock.js";
import { elapsed, progress, warn } from "./log.js";
import { manifestsChangedSince } from "./manifest-files.js";
import { ensureVMNetwork, type VMNetwork } from "./network.js";
import { logsDir, pidsDir, stateDir } from "./paths.js";
import { assertRegistryPortFree, startRegistry } from "./registry.js";
import { checkHealth } from "./status.js";
import { ensureVMSsh } from "./vm-ssh.js";

export interface UpOptions {
  /** Start hack/kubevirt-sim (default true). */
  kubevirtSim?: boolean;
}

export function up(opts: UpOptions = {}): Promise<Testenv> {
  return withLock("up", () => upLocked(opts.kubevirtSim ?? true));
}

async function upLocked(wantSim: boolean): Promise<Testenv> {
  const existing = readTestenv();
  if (existing) {
    const reused = await reuse(existing, wantSim);
    if (reused) return reused;
    warn("a previous testenv is only partly running: stopping it and starting afresh");
  }
  if (existing || existsSync(stateDir)) await stopAndClean();
  try {
    return await fresh(wantSim);
  } catch (err) {
    progress("up failed: stopping what was started (logs are kept in .testenv/logs)");
    await stopAndClean({ keepLogs: true }).catch((cleanupErr: unknown) => warn(`cleanup failed: ${(cleanupErr as Error).message}`));
    throw err;
  }
}

/**
 * The second `up`: everything still healthy → keep it. Manifests edited since are applied again (a developer
 * iterating on a CRD), and the stand-in is started if it has appeared since.
 */
async function reuse(env: Testenv, wantSim: boolean): Promise<Testenv | undefined> {
  const health = await checkHealth(env);
  if (!health.core) return undefined;
  await ensureBinfmt();
  const tektonChanged = env.tektonCrds !== tektonController.version;
  if (tektonChanged || (await manifestsChangedSince(env.appliedAt ?? env.startedAt))) {
    progress(`${tektonChanged ? `Tekton's CRDs (${tektonController.version})` : "manifests"} changed since the last apply: applying them again`);
    const appliedAt = new Date().toISOString();
    await applyAll(env.adminKubeconfig, env.controllerKubeconfig);
    env.appliedAt = appliedAt;
    env.tektonCrds = tektonController.version;
    await writeTestenv(env);
  }
  if (wantSim && !health.kubevirtSim && existsSync(simMain)) {
    const pid = await startKubevirtSim(env.adminKubeconfig, env.registry.host, env.network, env.vmSsh.dir);
    if (pid !== undefined) env.pids.kubevirtSim = pid;
    await writeTestenv(env);
  }
  progress("already up");
  return env;
}

async function applyAll(adminKubeconfig: string, controllerKubeconfig: string): Promise<void> {
  // Loaded here, not at the top: importing client-node takes seconds under tsx, which `down`, `status` and an
  // unchanged repeated `up` do not need.
  const { applyManifests } = await import("./manifests.js");
  await applyManifests(adminKubeconfig, controllerKubeconfig);
}

async function fresh(wantSim: boolean): Promise<Testenv> {
  const start = Date.now();
  await mkdir(logsDir, { recursive: true });
  await mkdir(pidsDir, { recursive: true });
  await ensureCommands();
  await ensureBinfmt();
  const network: VMNetwork = await ensureVMNetwork();
  await assertRegistryPortFree(network.gateway);
  const vmSsh = await ensureVMSsh();

  // The registry and base image do not need Kubernetes: make them while etcd and the apiserver start.
  const registryAndImage = (async () => {
    const registry = await startRegistry(network.gateway);
    progress(`registry on ${registry.info.host}`);
    const baseImage = await ensureBaseImage(registry.info);
    return { registry, baseImage };
  })();
  const [cp, { registry, baseImage }] = await allSettledOrThrow([startControlPlane(), registryAndImage] as const);

  const appliedAt = new Date().toISOString();
  await applyAll(cp.adminKubeconfig, cp.controllerKubeconfig);
  const simPid = wantSim ? await startKubevirtSim(cp.adminKubeconfig, registry.info.host, network, vmSsh.dir) : undefined;

  const env: Testenv = {
    apiserverURL: cp.apiserverURL,
    caFile: cp.caFile,
    adminKubeconfig: cp.adminKubeconfig,
    controllerKubeconfig: cp.controllerKubeconfig,
    tektonKubeconfig: cp.tektonKubeconfig,
    nobodyKubeconfig: cp.nobodyKubeconfig,
    certKubeconfig: cp.certKubeconfig,
    tokens: cp.tokens,
    users: { controller: controllerUser, tekton: tektonUser, nobody: nobodyUser, cert: certUser.name },
    etcdURL: cp.etcdURL,
    registry: registry.info,
    network,
    vmSsh,
    baseImage,
    simStateDir,
    stateDir,
    logsDir,
    pids: {
      etcd: cp.etcdPid,
      apiserver: cp.apiserverPid,
      registry: registry.pid,
      ...(simPid !== undefined ? { kubevirtSim: simPid } : {}),
    },
    startedAt: new Date().toISOString(),
    appliedAt,
    tektonCrds: tektonController.version,
  };
  await writeTestenv(env);
  progress(`up in ${elapsed(start)}`);
  return env;
}

/**
 * Promise.all that waits for every branch before rejecting: cleanup must not run while the other branch is still
 * starting processes (they would be left running).
 */
async function allSettledOrThrow<T extends readonly unknown[]>(
  promises: { [K in keyof T]: Promise<T[K]> },
): Promise<T> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
