import { z } from "zod";
import { normalizeRegistryHost, parseImageReference } from "../api/image-reference.js";
import type { RegistryLogin } from "../registry/login.js";

/** Logins keyed by registry host (`host[:port]`, `docker.io`), or by `host/namespace` for narrower ones. */
export type RegistryCredentials = Record<string, RegistryLogin>;

/** Content that is not a docker config; the message never quotes the content. */
export class CredentialsParseError extends Error {
  override readonly name = "CredentialsParseError";
}

const entrySchema = z.looseObject({
  username: z.string().optional(),
  password: z.string().optional(),
  auth: z.string().optional(),
});
const legacySchema = z.record(z.string(), entrySchema);
const configSchema = z.looseObject({ auths: legacySchema });

/**
 * Parses a `.dockerconfigjson` (`{"auths": {...}}`) or a legacy `.dockercfg` (`{host: {...}}`) into logins.
 * Entries carry `username`+`password` or `auth` = base64("user:pass"); entries with neither (identity tokens,
 * credential helpers) are skipped.
 */
export function parseDockerConfig(content: string): RegistryCredentials {
  let value: unknown;
  try {
    value = JSON.parse(content);
  } catch {
    throw new CredentialsParseError("registry credentials are not JSON");
  }
  // A config with "auths" must be a valid .dockerconfigjson: never fall back to reading it as legacy.
  const modern = typeof value === "object" && value !== null && "auths" in value;
  const entries = modern ? configSchema.safeParse(value).data?.auths : legacySchema.safeParse(value).data;
  if (entries === undefined) {
    throw new CredentialsParseError("registry credentials are neither a .dockerconfigjson nor a .dockercfg");
  }
  const credentials: RegistryCredentials = {};
  for (const [key, entry] of Object.entries(entries)) {
    const login = loginOf(entry);
    if (login !== undefined) credentials[normalizeCredentialKey(key)] = login;
  }
  return credentials;
}

/**
 * The login for pulling or pushing `image`: the most specific `host/namespace` key first, then the host.
 * `host` is the registry host (what podman's `serveraddress` wants).
 */
export function credentialsFor(
  credentials: Readonly<RegistryCredentials>,
  image: string,
): { host: string; credentials: RegistryLogin } | undefined {
  const ref = parseImageReference(image);
  const byKey = new Map<string, RegistryLogin>();
  for (const [key, login] of Object.entries(credentials)) byKey.set(normalizeCredentialKey(key), login);
  const parts = ref.repository.split("/");
  for (let length = parts.length; length >= 0; length--) {
    const key = length === 0 ? ref.registry : `${ref.registry}/${parts.slice(0, length).join("/")}`;
    const login = byKey.get(key);
    if (login !== undefined) return { host: ref.registry, credentials: login };
  }
  return undefined;
}

/**
 * `https://index.docker.io/v1/` → `docker.io`, `https://host:5000/v2/` → `host:5000`, `quay.io/org` stays.
 */
export function normalizeCredentialKey(key: string): string {
  const stripped = key.trim().replace(/^[a-z]+:\/\//i, "");
  const slash = stripped.indexOf("/");
  const host = normalizeRegistryHost(slash === -1 ? stripped : stripped.slice(0, slash));
  const path = slash === -1 ? "" : stripped.slice(slash + 1).replace(/\/+$/, "");
  // Docker writes API-version paths into keys; they name no namespace.
  if (path === "" || path === "v1" || path === "v2") return host;
  return `${host}/${path}`;
}

function loginOf(entry: z.output<typeof entrySchema>): RegistryLogin | undefined {
  if (entry.username !== undefined && entry.username !== "" && entry.password !== undefined) {
    return { username: entry.username, password: entry.password };
  }
  if (entry.auth === undefined || entry.auth === "") return undefined;
  const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon <= 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
