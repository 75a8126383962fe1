// A real registry (Debian's docker-registry, distribution 2.8) with htpasswd auth, plain HTTP, on the VM bridge's
// gateway address: the host and the VMs' network namespaces reach it at the same name, so image references agree.
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { V1Secret } from "@kubernetes/client-node";
import { stringify } from "yaml";
import { readTestenv, type RegistryInfo, type Testenv } from "./env-file.js";
import { run } from "./exec.js";
import { isPortFree } from "./ports.js";
import { isRunning, startDetached } from "./processes.js";
import { logsDir, pidsDir, rel, repoRoot, stateDir } from "./paths.js";
import { poll } from "./wait.js";

export const registryLog: string = join(logsDir, "registry.log");
export const registryPidFile: string = join(pidsDir, "registry.pid");
const username = "vmbuild";
// A second login, for tests that keep the pull login apart from the push login (distribution's htpasswd auth lets
// every user push: the difference is only which secret is where).
const pullerName = "puller";

export function registryPort(): number {
  const raw = process.env["VMBUILD_TESTENV_REGISTRY_PORT"];
  if (!raw) return 5000;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`VMBUILD_TESTENV_REGISTRY_PORT=${raw} is not a port number`);
  }
  return port;
}

export interface RegistryHandle {
  info: RegistryInfo;
  pid: number;
}

/** The registry's port is fixed (5000 by default), unlike the others: check it before starting anything. */
export async function assertRegistryPortFree(address: string): Promise<number> {
  const port = registryPort();
  if (!(await isPortFree(port, address))) {
    throw new Error(`port ${address}:${port} for the registry is in use; free it or set VMBUILD_TESTENV_REGISTRY_PORT`);
  }
  return port;
}

/** Listens on `address` (the VM bridge's gateway). */
export async function startRegistry(address: string): Promise<RegistryHandle> {
  const port = await assertRegistryPortFree(address);
  const dir = join(stateDir, "registry");
  const storage = join(dir, "storage");
  await mkdir(storage, { recursive: true });
  const password = randomBytes(18).toString("hex");
  const puller = { username: pullerName, password: randomBytes(18).toString("hex") };
  // bcrypt (-B) is the only hash distribution accepts.
  const lines = await Promise.all(
    [{ username, password }, puller].map(async (u) => (await run("htpasswd", ["-Bbn", u.username, u.password])).stdout.trim()),
  );
  const htpasswd = join(dir, "htpasswd");
  await writeFile(htpasswd, `${lines.join("\n")}\n`, { mode: 0o600 });
  const host = `${address}:${port}`;
  const config = join(dir, "config.yml");
  await writeFile(
    config,
    stringify({
      version: 0.1,
      log: { level: "info", fields: { service: "registry" } },
      storage: {
        filesystem: { rootdirectory: storage },
        delete: { enabled: true },
        cache: { blobdescriptor: "inmemory" },
      },
      http: { addr: host, secret: randomBytes(16).toString("hex"), headers: { "X-Content-Type-Options": ["nosniff"] } },
      auth: { htpasswd: { realm: "vmbuild-testenv", path: htpasswd } },
    }),
    { mode: 0o600 },
  );
  const pid = startDetached({
    cmd: "docker-registry",
    args: ["serve", config],
    cwd: repoRoot,
    logFile: registryLog,
    pidFile: registryPidFile,
  });
  const info: RegistryInfo = { host, username, password, puller };
  await poll(async () => ((await registryReady(info)) ? true : undefined), {
    timeoutMs: 20_000,
    what: `the registry on ${host} did not become ready`,
    hint: `; see ${rel(registryLog)}`,
    failFast: () => (isRunning(pid) ? undefined : "docker-registry exited during startup"),
  });
  return { info, pid };
}

export function basicAuth(info: RegistryInfo): string {
  return `Basic ${Buffer.from(`${info.username}:${info.password}`).toString("base64")}`;
}

/** The registry answers /v2/ with 200 for our credentials. */
export async function registryReady(info: RegistryInfo): Promise<boolean> {
  const res = await fetch(`http://${info.host}/v2/`, {
    headers: { Authorization: basicAuth(info) },
    signal: AbortSignal.timeout(2000),
  });
  return res.status === 200;
}

function requireTestenv(): Testenv {
  const env = readTestenv();
  if (!env) throw new Error("no testenv is up (.testenv/env.json missing); run `npm run testenv -- up`");
  return env;
}

/** The content of a `.dockerconfigjson` for the testenv registry. */
export function registryDockerConfigJson(env: Testenv = requireTestenv()): string {
  const { host, username: user, password } = env.registry;
  const auth = Buffer.from(`${user}:${password}`).toString("base64");
  return JSON.stringify({ auths: { [host]: { username: user, password, auth } } });
}

/** A `kubernetes.io/dockerconfigjson` Secret holding the testenv registry's credentials. */
export function registrySecretManifest(namespace: string, name: string, env: Testenv = requireTestenv()): V1Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace, labels: { "app.kubernetes.io/part-of": "vmbuild-testenv" } },
    type: "kubernetes.io/dockerconfigjson",
    data: { ".dockerconfigjson": Buffer.from(registryDockerConfigJson(env)).toString("base64") },
  };
}
