import { createHash } from "node:crypto";
import { Agent } from "node:https";
import {
  CoordinationV1Api,
  CoreV1Api,
  createConfiguration,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  ServerConfiguration,
  setHeaderOptions,
  type Configuration,
  type RequestContext,
  type SecurityAuthentication,
} from "@kubernetes/client-node";

export interface Kube {
  kc: KubeConfig;
  custom: CustomObjectsApi;
  core: CoreV1Api;
  coordination: CoordinationV1Api;
}

/** From $KUBECONFIG, ~/.kube/config or the in-cluster service account, in client-node's usual order. */
export function loadKube(kubeconfigPath?: string): Kube {
  const kc = new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else kc.loadFromDefault();
  return {
    kc,
    custom: makeClient(kc, CustomObjectsApi),
    core: makeClient(kc, CoreV1Api),
    coordination: makeClient(kc, CoordinationV1Api),
  };
}

/**
 * kc.makeApiClient, but over kept-alive connections. client-node 1.x gives every request a new https.Agent: a TLS
 * handshake and a new SecureContext (its CA parsed again) per request, costly for the controller and the
 * apiserver alike under load.
 */
export function makeClient<T>(kc: KubeConfig, api: new (config: Configuration) => T): T {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error("No active cluster!");
  return new api(createConfiguration({ baseServer: new ServerConfiguration(server, {}), authMethods: { default: keepAliveAuth(kc) } }));
}

const TLS_OPTIONS = ["ca", "cert", "key", "pfx", "passphrase", "rejectUnauthorized", "servername"] as const;

/** kc's authentication (headers, client certificates) with one keep-alive agent per distinct set of TLS options. */
function keepAliveAuth(kc: KubeConfig): SecurityAuthentication {
  const agents = new Map<string, Agent>();
  return {
    getName: () => "default",
    async applySecurityAuthentication(context: RequestContext) {
      await kc.applySecurityAuthentication(context);
      const fresh = context.getAgent();
      // Proxy agents (and plain http) are kc's to keep as they are.
      if (fresh?.constructor !== Agent) return;
      const { options } = fresh as Agent;
      const hash = createHash("sha256");
      for (const name of TLS_OPTIONS) hash.update(`${name}=${JSON.stringify(options[name] ?? null)};`);
      const key = hash.digest("hex");
      let agent = agents.get(key);
      if (!agent) {
        agent = new Agent({ ...options, keepAlive: true });
        agents.set(key, agent);
      }
      context.setAgent(agent);
    },
  };
}

export const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
export const jsonPatch = setHeaderOptions("Content-Type", PatchStrategy.JsonPatch);
