// The testenv's description for tests and tools: .testenv/env.json, written at the end of a successful `up`.
import { existsSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import type { VMNetwork } from "./network.js";
import { envFile } from "./paths.js";
import type { VMSsh } from "./vm-ssh.js";

export interface RegistryInfo {
  /** "GATEWAY:PORT" on the VM bridge, plain HTTP (never leaves the machine). */
  host: string;
  username: string;
  password: string;
  /** Another login of the same registry, for builds whose pull login differs from their push login. */
  puller: { username: string; password: string };
}

export interface Tokens {
  /** Group system:masters. */
  admin: string;
  /** system:serviceaccount:vmbuild-system:vmbuild-controller: only what deploy/rbac.yaml grants. */
  controller: string;
  /** Tekton Pipelines' controller's service account, in group system:masters. */
  tekton: string;
  /** vmbuild-test-nobody: authenticated, nothing else. */
  nobody: string;
}

export interface Pids {
  etcd: number;
  apiserver: number;
  registry: number;
  /** Absent when hack/kubevirt-sim/main.ts does not exist yet. */
  kubevirtSim?: number;
}

export interface Testenv {
  apiserverURL: string;
  /** PEM of the apiserver's serving CA (also embedded in the kubeconfigs). */
  caFile: string;
  adminKubeconfig: string;
  controllerKubeconfig: string;
  /** Tekton Pipelines' controller's identity (tokens.tekton). */
  tektonKubeconfig: string;
  nobodyKubeconfig: string;
  /** alice (group devs), authenticated by a client certificate of the testenv's client CA; no rights of its own. */
  certKubeconfig: string;
  tokens: Tokens;
  users: { controller: string; tekton: string; nobody: string; cert: string };
  etcdURL: string;
  registry: RegistryInfo;
  /** The bridge the stand-in's VMs are plugged into. */
  network: VMNetwork;
  /** What a pool's ssh Secret holds for the stand-in's VMs (their "image" has this host key and authorizes this client). */
  vmSsh: VMSsh;
  /** Multi-arch (amd64, arm64, ppc64le, s390x) busybox image in the registry, e.g. "10.231.1.1:5000/vmbuild/busybox:latest". */
  baseImage: string;
  simStateDir: string;
  stateDir: string;
  logsDir: string;
  pids: Pids;
  startedAt: string;
  /** When the manifests were last applied (a repeated `up` re-applies files edited after this). */
  appliedAt?: string;
  /** Tekton version whose CRDs were applied (a repeated `up` applies them again when the pinned one differs). */
  tektonCrds?: string;
}

export function readTestenv(): Testenv | undefined {
  if (!existsSync(envFile)) return undefined;
  return JSON.parse(readFileSync(envFile, "utf8")) as Testenv;
}

export async function writeTestenv(env: Testenv): Promise<void> {
  // Holds tokens and the registry password: readable by the owner only.
  await writeFile(envFile, `${JSON.stringify(env, null, 2)}\n`, { mode: 0o600 });
}
