import type { RegistryLogin } from "../registry/login.js";

/** A push login: podman also wants the registry it is meant for. */
export interface PushAuth extends RegistryLogin {
  serveraddress: string;
}

/**
 * `X-Registry-Config` for builds (pulls of base images): a JSON map host → login. Podman decodes it with Go's
 * base64.URLEncoding, i.e. URL alphabet WITH padding, so Node's unpadded "base64url" is not usable.
 */
export function encodeRegistryConfig(config: Readonly<Record<string, RegistryLogin>>): string {
  const map: Record<string, RegistryLogin> = {};
  for (const [host, login] of Object.entries(config)) {
    map[host] = { username: login.username, password: login.password };
  }
  return base64UrlPadded(JSON.stringify(map));
}

/** `X-Registry-Auth` for pushes: one login, same encoding as above (podman decodes both with URLEncoding). */
export function encodeRegistryAuth(auth: PushAuth): string {
  return base64UrlPadded(
    JSON.stringify({ username: auth.username, password: auth.password, serveraddress: auth.serveraddress }),
  );
}

function base64UrlPadded(text: string): string {
  return Buffer.from(text, "utf8").toString("base64").replace(/\+/g, "-").replace(/\//g, "_");
}
