import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { Testenv } from "../../hack/testenv/index.js";

const exec = promisify(execFile);

async function inspect(env: Testenv, what: "--raw" | "--config", image: string): Promise<string> {
  const { stdout } = await exec("skopeo", [
    "inspect",
    what,
    "--tls-verify=false",
    "--creds",
    `${env.registry.username}:${env.registry.password}`,
    `docker://${image}`,
  ]);
  return stdout;
}

/** `skopeo inspect --raw` of an image in the testenv's registry: the exact manifest bytes it serves. */
export async function inspectRaw(env: Testenv, image: string): Promise<string> {
  return inspect(env, "--raw", image);
}

/** `skopeo inspect --config` of one image (a single-platform manifest) in the testenv's registry: its OCI config. */
export async function inspectConfig(env: Testenv, image: string): Promise<string> {
  return inspect(env, "--config", image);
}
