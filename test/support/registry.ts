import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "./exec.js";
import { freePort } from "./ports.js";
import { startProcess, waitUntil } from "./processes.js";
import { makeTempDir } from "./temp-dir.js";

/** How the registry authenticates: htpasswd (Basic) or a token service (Bearer). */
export type RegistryAuth =
  | { kind: "htpasswd"; username: string; password: string }
  | { kind: "token"; realm: string; service: string; issuer: string; certPath: string };

/** A real registry (Debian's docker-registry, distribution 2.8), plain HTTP on loopback. */
export interface TestRegistry {
  /** `HOST:PORT`, as image references and podman's serveraddress use it. */
  host: string;
  pid: number;
  output(): string;
  stop(): Promise<void>;
}

export async function startRegistry(opts: { host?: string; auth: RegistryAuth }): Promise<TestRegistry> {
  const address = opts.host ?? "127.0.0.3";
  const temp = await makeTempDir("registry");
  const storage = join(temp.path, "storage");
  await mkdir(storage, { recursive: true });
  let auth: object;
  if (opts.auth.kind === "htpasswd") {
    const htpasswd = join(temp.path, "htpasswd");
    // bcrypt (-B) is the only hash distribution accepts.
    await writeFile(htpasswd, await run("htpasswd", ["-Bbn", opts.auth.username, opts.auth.password]), { mode: 0o600 });
    auth = { htpasswd: { realm: "vmbuild-test", path: htpasswd } };
  } else {
    const { realm, service, issuer, certPath } = opts.auth;
    auth = { token: { realm, service, issuer, rootcertbundle: certPath } };
  }
  const port = await freePort(address);
  const host = `${address}:${port}`;
  const config = join(temp.path, "config.yml");
  // JSON is YAML: no YAML writer needed.
  await writeFile(
    config,
    JSON.stringify({
      version: 0.1,
      log: { level: "warn" },
      storage: { filesystem: { rootdirectory: storage }, delete: { enabled: true } },
      http: { addr: host },
      auth,
    }),
  );
  const registry = startProcess("docker-registry", ["serve", config]);
  const stop = async (): Promise<void> => {
    await registry.stop();
    await temp.remove();
  };
  try {
    // 401 means it is up (auth required).
    await waitUntil(
      async () => (await fetch(`http://${host}/v2/`)).status === 401,
      15_000,
      () => `registry on ${host}: ${registry.output()}`,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { host, pid: registry.pid, output: registry.output, stop };
}
