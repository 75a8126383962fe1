import type { CoreV1Api } from "@kubernetes/client-node";
import type { PodmanConnection } from "../podman/connection.js";
import { podmanConnectionFor, poolOfVM, PoolTransportError } from "../podman/pool-transport.js";
import { CredentialSourceError } from "../registry/credential-errors.js";
import { gitCredentialFor, resolveCredentials, type ResolvedCredentials } from "../registry/tekton-credentials.js";
import { logURL } from "../server/logs.js";
import type { BuildSettings } from "../spec/settings.js";
import type { CustomRun } from "../tekton/customrun.js";
import { runBuild } from "./build.js";
import type { JobBody } from "./jobs.js";
import { maskSecrets } from "./log.js";
import type { LogStore } from "./log-store.js";

// The body of one build job: the run's credentials read the Tekton way, its log opened with every secret
// masked, then the build. Registry logins reach podman in request headers only; git credentials reach git only.

export interface BuildJobDeps {
  core: CoreV1Api;
  logs: LogStore;
  publicURL: string;
  podmanPort: number;
  /** The informer caches a VM's pool is found in: its annotations choose tcp or ssh. */
  caches: Parameters<typeof poolOfVM>[0];
  workDir: string;
  maxContextBytes: number;
}

export function buildJob(
  deps: BuildJobDeps,
  run: CustomRun,
  attempt: number,
  settings: BuildSettings,
  vm: { namespace: string; name: string },
  address: string,
): JobBody {
  const { namespace, name, uid } = run.metadata;
  const url = logURL(deps.publicURL, namespace, name, attempt);
  return async (handle) => {
    let creds: ResolvedCredentials;
    try {
      creds = await resolveCredentials(deps.core, namespace, {
        serviceAccountName: run.spec.serviceAccountName,
        workspaces: run.spec.workspaces ?? [],
        registrySecret: settings.registrySecret,
      });
    } catch (err) {
      const message =
        err instanceof CredentialSourceError ? err.message : `could not read the run's credentials: ${String(err)}`;
      const log = deps.logs.open({ namespace, name, uid }, attempt);
      log.line(`error: ${message}`);
      await log.close();
      return { state: "failed", stage: "connecting", reason: "InvalidSecret", message };
    }
    const secrets = [
      ...Object.values(creds.registry).map((login) => login.password),
      ...creds.git.map((git) => (git.kind === "basic" ? git.password : git.privateKey)),
    ];
    const log = deps.logs.open({ namespace, name, uid }, attempt, { redact: maskSecrets(secrets) });
    for (const missing of creds.missingSecrets) {
      log.line(`warning: Secret ${namespace}/${missing}, linked to the run's ServiceAccount, does not exist; skipped`);
    }
    let endpoint: PodmanConnection;
    try {
      endpoint = await podmanConnectionFor(deps.core, poolOfVM(deps.caches, vm), address, deps.podmanPort);
    } catch (err) {
      const message = err instanceof PoolTransportError ? err.message : `could not read the pool's ssh Secret: ${String(err)}`;
      log.line(`error: ${message}`);
      await log.close();
      return { state: "failed", stage: "connecting", reason: "VMConnectionFailed", message };
    }
    const git = gitCredentialFor(creds, settings.gitUrl);
    return runBuild(
      {
        run: { namespace, name, uid },
        attempt,
        vm: vm.name,
        vmNamespace: vm.namespace,
        endpoint,
        settings,
        credentials: creds.registry,
        ...(git?.kind === "basic" ? { gitAuth: { username: git.username, password: git.password } } : {}),
        workDir: deps.workDir,
        maxContextBytes: deps.maxContextBytes,
        log,
        logURL: url,
      },
      handle,
    );
  };
}
