// etcd + kube-apiserver + kubeconfigs for the four identities: the Kubernetes half of `up`.
import { join } from "node:path";
import { startApiserver } from "./apiserver.js";
import { etcd, kubeApiserver, resolveBinary } from "./binaries.js";
import { certUser } from "./client-certs.js";
import { writeCredentials } from "./credentials.js";
import type { Tokens } from "./env-file.js";
import { startEtcd } from "./etcd.js";
import { writeKubeconfig } from "./kubeconfig.js";
import { elapsed, progress } from "./log.js";
import { stateDir } from "./paths.js";
import { freePorts } from "./ports.js";

export interface ControlPlane {
  etcdURL: string;
  etcdPid: number;
  apiserverURL: string;
  apiserverPid: number;
  caFile: string;
  tokens: Tokens;
  adminKubeconfig: string;
  controllerKubeconfig: string;
  tektonKubeconfig: string;
  nobodyKubeconfig: string;
  certKubeconfig: string;
}

export async function startControlPlane(): Promise<ControlPlane> {
  // Sequential on purpose: two Go builds at once would fight over 2 cores and a few GB of RAM.
  const etcdBin = await resolveBinary(etcd);
  const apiserverBin = await resolveBinary(kubeApiserver);
  const [clientPort, peerPort, apiserverPort] = (await freePorts(3)) as [number, number, number];

  let start = Date.now();
  progress(`starting etcd (${etcdBin}) on 127.0.0.1:${clientPort}`);
  const etcdHandle = await startEtcd(etcdBin, clientPort, peerPort);
  progress(`etcd healthy (${elapsed(start)})`);

  const creds = await writeCredentials();
  start = Date.now();
  progress(`starting kube-apiserver (${apiserverBin}) on 127.0.0.1:${apiserverPort}`);
  const api = await startApiserver(apiserverBin, apiserverPort, etcdHandle.url, creds);
  progress(`kube-apiserver ready (${elapsed(start)})`);

  const kubeconfig = (name: string): string => join(stateDir, `${name}.kubeconfig`);
  const adminKubeconfig = kubeconfig("admin");
  const controllerKubeconfig = kubeconfig("controller");
  const tektonKubeconfig = kubeconfig("tekton");
  const nobodyKubeconfig = kubeconfig("nobody");
  const common = { server: api.url, ca: api.ca };
  await writeKubeconfig({ ...common, path: adminKubeconfig, user: "testenv-admin", token: creds.tokens.admin });
  await writeKubeconfig({ ...common, path: controllerKubeconfig, user: "vmbuild-controller", token: creds.tokens.controller });
  await writeKubeconfig({ ...common, path: tektonKubeconfig, user: "tekton-pipelines-controller", token: creds.tokens.tekton });
  await writeKubeconfig({ ...common, path: nobodyKubeconfig, user: "vmbuild-test-nobody", token: creds.tokens.nobody });
  const certKubeconfig = kubeconfig(certUser.name);
  await writeKubeconfig({ ...common, path: certKubeconfig, user: certUser.name, cert: creds.clientCerts });

  return {
    etcdURL: etcdHandle.url,
    etcdPid: etcdHandle.pid,
    apiserverURL: api.url,
    apiserverPid: api.pid,
    caFile: api.caFile,
    tokens: creds.tokens,
    adminKubeconfig,
    controllerKubeconfig,
    tektonKubeconfig,
    nobodyKubeconfig,
    certKubeconfig,
  };
}
