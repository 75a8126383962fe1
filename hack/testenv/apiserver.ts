// kube-apiserver on loopback: RBAC, static tokens and client certificates, a self-signed serving cert whose CA the kubeconfigs trust.
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { controllerUser, tektonUser, type CredentialFiles } from "./credentials.js";
import { httpsGet } from "./https.js";
import { isRunning, startDetached } from "./processes.js";
import { logsDir, pidsDir, rel, repoRoot, stateDir } from "./paths.js";
import { poll } from "./wait.js";

export interface ApiserverHandle {
  url: string;
  pid: number;
  caFile: string;
  ca: string;
}

export const apiserverLog: string = join(logsDir, "kube-apiserver.log");
export const apiserverPidFile: string = join(pidsDir, "kube-apiserver.pid");
/** One JSON line per request of vmbuild's and Tekton's controllers, when it completed: how the bench counts API calls. */
export const controllerAuditLog: string = join(logsDir, "audit-controller.jsonl");

// Metadata level (verb, resource, user, timestamps), no bodies; one event per request at ResponseComplete.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
    users: [${JSON.stringify(controllerUser)}, ${JSON.stringify(tektonUser)}]
  - level: None
`;

export async function startApiserver(
  binary: string,
  port: number,
  etcdURL: string,
  creds: CredentialFiles,
): Promise<ApiserverHandle> {
  const dir = join(stateDir, "apiserver");
  const certDir = join(dir, "certs");
  await mkdir(certDir, { recursive: true, mode: 0o700 });
  const auditPolicyFile = join(dir, "audit-policy.yaml");
  await writeFile(auditPolicyFile, auditPolicy);
  const url = `https://127.0.0.1:${port}`;
  const pid = startDetached({
    cmd: binary,
    args: [
      `--etcd-servers=${etcdURL}`,
      `--cert-dir=${certDir}`,
      "--bind-address=127.0.0.1",
      // Without a default route the apiserver cannot pick an address to advertise and refuses to start.
      "--advertise-address=127.0.0.1",
      `--secure-port=${port}`,
      "--service-cluster-ip-range=10.0.0.0/24",
      "--allow-privileged=true",
      "--authorization-mode=RBAC",
      `--token-auth-file=${creds.tokenFile}`,
      `--client-ca-file=${creds.clientCerts.caFile}`,
      `--service-account-issuer=${url}`,
      `--service-account-key-file=${creds.saPublicKey}`,
      `--service-account-signing-key-file=${creds.saPrivateKey}`,
      // No controller-manager runs, so nothing would create the service-account tokens this plugin waits for.
      "--disable-admission-plugins=ServiceAccount",
      // The default reconciler writes 127.0.0.1 into Endpoints "kubernetes", which validation rejects every 10s.
      "--endpoint-reconciler-type=none",
      `--audit-policy-file=${auditPolicyFile}`,
      `--audit-log-path=${controllerAuditLog}`,
    ],
    cwd: repoRoot,
    logFile: apiserverLog,
    pidFile: apiserverPidFile,
  });
  const failFast = (): string | undefined => (isRunning(pid) ? undefined : "kube-apiserver exited during startup");
  const hint = `; see ${rel(apiserverLog)}`;

  // The apiserver writes its self-signed cert (leaf, then CA) before it starts serving.
  const bundlePath = join(certDir, "apiserver.crt");
  const bundle = await poll(async () => (existsSync(bundlePath) ? await readFile(bundlePath, "utf8") : undefined), {
    timeoutMs: 30_000,
    what: `kube-apiserver did not write ${rel(bundlePath)}`,
    hint,
    failFast,
  });
  const ca = lastPemBlock(bundle);
  const caFile = join(dir, "ca.crt");
  await writeFile(caFile, ca);

  await poll(async () => ((await httpsGet(`${url}/healthz`, ca, creds.tokens.admin)).body === "ok" ? true : undefined), {
    timeoutMs: 60_000,
    what: "kube-apiserver did not become healthy",
    hint,
    failFast,
  });
  // Healthy is not enough: clients expect the bootstrap objects, and `default` is created last of them.
  await poll(
    async () =>
      (await httpsGet(`${url}/api/v1/namespaces/default`, ca, creds.tokens.admin)).status === 200 ? true : undefined,
    { timeoutMs: 20_000, what: "namespace default did not appear", hint, failFast },
  );
  return { url, pid, caFile, ca };
}

export async function apiserverHealthy(url: string, ca: string, adminToken: string): Promise<boolean> {
  return (await httpsGet(`${url}/healthz`, ca, adminToken)).body === "ok";
}

function lastPemBlock(bundle: string): string {
  const blocks = bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  const last = blocks?.[blocks.length - 1];
  if (!last) throw new Error("kube-apiserver's self-signed certificate file holds no PEM certificate");
  return `${last}\n`;
}
