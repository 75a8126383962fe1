import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { Testenv } from "../../hack/testenv/index.js";

const exec = promisify(execFile);

/** `skopeo inspect --raw` of an image in the testenv's registry: the exact manifest bytes it serves. */
export async function inspectRaw(env: Testenv, image: string): Promise<string> {
  const { stdout } = await exec("skopeo", [
    "inspect",
    "--raw",
    "--tls-verify=false",
    "--creds",
    `${env.registry.username}:${env.registry.password}`,
    `docker://${image}`,
  ]);
  return stdout;
}
