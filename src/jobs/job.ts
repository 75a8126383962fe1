import type { CoreV1Api } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { PodmanConnection } from "../podman/connection.js";
import { withApiRetries } from "../kube/retry.js";
import { knownPool, podmanConnectionFor, PoolTransportError, type PoolSecrets } from "../podman/pool-transport.js";
import { CredentialSourceError } from "../credentials/errors.js";
import { gitCredentialFor, resolveCredentials, type ResolvedCredentials } from "../credentials/tekton.js";
import type { BuildSettings } from "../api/settings.js";
import type { CustomRun } from "../tekton/customrun.js";
import { gitFetchAuth } from "../source/git.js";
import { runBuild, VMConnectionError } from "./build.js";
import type { JobBody, JobVM } from "./jobs.js";
import { maskSecrets } from "./log.js";
import type { LogStore } from "./log-store.js";
import { splitPoolKey } from "../kubevirt/pool-key.js";
import { logURL } from "../api/log-url.js";

// The body of one build job: the run's credentials read the Tekton way, its log opened with every secret
// masked, then the build. Registry logins reach podman in request headers only (the push logins with the push
// alone); git credentials reach git only.

export interface BuildJobDeps {
  core: CoreV1Api;
  /** The controller's log (not the build log users read). */
  log: Logger;
  logs: LogStore;
  publicURL: string;
  podmanPort: number;
  /** The informer cache the VMs' pools are found in: their annotations choose tcp or ssh. */
  caches: { pools: Parameters<typeof knownPool>[0] };
  /** The pools' ssh Secrets, shared by every build job of the controller. */
  poolSecrets: PoolSecrets;
  workDir: string;
  maxContextBytes: number;
}

export function buildJob(
  deps: BuildJobDeps,
  run: CustomRun,
  attempt: number,
  settings: BuildSettings,
  vms: readonly JobVM[],
): JobBody {
  const { namespace, name, uid } = run.metadata;
  const url = logURL(deps.publicURL, namespace, name, attempt);
  return async (handle) => {
    let creds: ResolvedCredentials;
    try {
      const options = {
        serviceAccountName: run.spec.serviceAccountName,
        workspaces: run.spec.workspaces ?? [],
        registrySecret: settings.registrySecret,
        pullSecret: settings.pullSecret,
      };
      creds = await withApiRetries(() => resolveCredentials(deps.core, namespace, options), handle.signal);
    } catch (err) {
      const message =
        err instanceof CredentialSourceError ? err.message : `could not read the run's credentials: ${String(err)}`;
      const log = deps.logs.open({ namespace, name, uid }, attempt);
      log.line(`error: ${message}`);
      await log.close();
      return { state: "failed", stage: "fetching", reason: "InvalidSecret", message, results: [] };
    }
    const secrets = [
      ...[creds.pull, creds.push].flatMap((logins) => Object.values(logins).map((login) => login.password)),
      ...creds.git.map((git) => (git.kind === "basic" ? git.password : git.privateKey)),
    ];
    const log = deps.logs.open({ namespace, name, uid }, attempt, { redact: maskSecrets(secrets) });
    for (const missing of creds.missingSecrets) {
      log.line(`warning: Secret ${namespace}/${missing}, linked to the run's ServiceAccount, does not exist; skipped`);
    }
    const git = gitCredentialFor(creds, settings.gitUrl);
    const connect = async (): Promise<PodmanConnection[]> => {
      const addresses = await handle.addresses();
      try {
        return await connectAll(
          vms.map((vm, i) => () => podmanConnectionFor(deps.poolSecrets, knownPool(deps.caches.pools, vm.pool), addresses[i] ?? "", deps.podmanPort, handle.signal)),
        );
      } catch (err) {
        throw new VMConnectionError(
          err instanceof PoolTransportError ? err.message : `could not read the pool's ssh Secret: ${String(err)}`,
        );
      }
    };
    return runBuild(
      {
        run: { namespace, name, uid },
        attempt,
        logger: deps.log.child({ run: `${namespace}/${name}`, attempt }),
        vms: vms.map((vm) => ({ vm: vm.vm, vmNamespace: splitPoolKey(vm.pool).namespace, platforms: vm.platforms })),
        connect,
        settings,
        credentials: { pull: creds.pull, push: creds.push },
        gitAuth: gitFetchAuth(git, namespace, run.spec.serviceAccountName),
        workDir: deps.workDir,
        maxContextBytes: deps.maxContextBytes,
        log,
        logURL: url,
      },
      handle,
    );
  };
}

/** Every VM's connection, or none: when one cannot be made, those already open (ssh sessions) are closed. */
async function connectAll(connect: (() => Promise<PodmanConnection>)[]): Promise<PodmanConnection[]> {
  const settled = await Promise.allSettled(connect.map((c) => c()));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
  const open = settled.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  if (!failed) return open;
  await Promise.all(open.map((c) => c.close?.()));
  throw failed.reason;
}
