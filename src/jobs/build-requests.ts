import type { BuildSettings } from "../api/settings.js";
import { credentialsFor } from "../credentials/docker-config.js";
import type { RegistryLogins } from "../credentials/tekton.js";
import type { BuildOptions, PushOptions } from "../podman/client.js";

// What the build and push requests to a VM's podman carry. podman keeps a build request's logins (X-Registry-Config)
// in a temp auth file on the VM while the Containerfile's RUN steps run, so the build carries the pullSecret's
// alone; the push logins go with the push (X-Registry-Auth), which is sent after the build stream has ended.

/** The build request for `what`: the build args and the pull logins (none without a pullSecret). */
export function buildRequest(
  settings: BuildSettings,
  logins: RegistryLogins,
  what: Pick<BuildOptions, "context" | "dockerfile" | "platforms" | "manifest">,
): BuildOptions {
  return { ...what, buildArgs: settings.buildArgs, registryConfig: logins.pull };
}

/** The push of a manifest list with its images to `destination`, with the push login for that registry. */
export function pushRequest(settings: BuildSettings, logins: RegistryLogins, destination: string): PushOptions {
  const login = credentialsFor(logins.push, destination);
  return {
    all: true,
    tlsVerify: settings.tlsVerify,
    ...(login ? { auth: { ...login.credentials, serveraddress: login.host } } : {}),
  };
}
