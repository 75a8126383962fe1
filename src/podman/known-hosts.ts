import { createHash, createHmac, timingSafeEqual } from "node:crypto";

// OpenSSH's known_hosts format, the subset a pool's Secret needs: plain and hashed host patterns, wildcards and
// negation, `[host]:port` for ports other than 22, and @revoked. Pure: no I/O, so it is unit-tested as is.

export interface KnownHost {
  /** The line's host field: comma-separated patterns, or one hashed `|1|salt|hmac` entry. */
  readonly hosts: string;
  /** The key type the line names, e.g. ssh-ed25519. */
  readonly keyType: string;
  /** The public key in SSH wire format (what the server sends during key exchange). */
  readonly key: Buffer;
  readonly revoked: boolean;
}

export class KnownHostsError extends Error {
  override readonly name = "KnownHostsError";
}

export type HostKeyVerdict =
  | { ok: true }
  | { ok: false; problem: "unknown" | "mismatch" | "revoked"; message: string };

/** Parses known_hosts text; comments and blank lines are skipped, anything unsupported is an error. */
export function parseKnownHosts(text: string): KnownHost[] {
  const entries: KnownHost[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const where = `known_hosts line ${index + 1}`;
    const fields = line.split(/\s+/);
    let revoked = false;
    if (fields[0]?.startsWith("@")) {
      if (fields[0] !== "@revoked") {
        throw new KnownHostsError(`${where}: marker ${fields[0]} is not supported; list the host key itself`);
      }
      revoked = true;
      fields.shift();
    }
    const [hosts, keyType, encoded] = fields;
    if (hosts === undefined || keyType === undefined || encoded === undefined) {
      throw new KnownHostsError(`${where}: expected "HOSTS KEYTYPE BASE64KEY"`);
    }
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) throw new KnownHostsError(`${where}: the key is not base64`);
    const key = Buffer.from(encoded, "base64");
    if (keyTypeOf(key) !== keyType) {
      throw new KnownHostsError(`${where}: the key is not a ${keyType} key`);
    }
    entries.push({ hosts, keyType, key, revoked });
  });
  if (entries.length === 0) throw new KnownHostsError("known_hosts holds no host key");
  return entries;
}

/** What OpenSSH looks the host up as: `host` on port 22, else `[host]:port`. */
export function hostName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** The entries that name this host (revoked ones included). */
export function entriesFor(entries: readonly KnownHost[], host: string, port: number): KnownHost[] {
  const name = hostName(host, port);
  return entries.filter((entry) => hostMatches(entry.hosts, name));
}

/**
 * The host key algorithms to offer, in the order the entries list them: a server with several host keys then
 * presents one the Secret can check (as OpenSSH orders them from known_hosts).
 */
export function hostKeyAlgorithms(entries: readonly KnownHost[], host: string, port: number): string[] {
  const types = entriesFor(entries, host, port)
    .filter((entry) => !entry.revoked)
    .flatMap((entry) => (entry.keyType === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [entry.keyType]));
  return [...new Set(types)];
}

/** Accepts `key` only if an entry for this host lists exactly it and no @revoked entry does. */
export function checkHostKey(entries: readonly KnownHost[], host: string, port: number, key: Buffer): HostKeyVerdict {
  const name = hostName(host, port);
  const presented = `${keyTypeOf(key) ?? "unknown key type"} ${fingerprint(key)}`;
  const mine = entriesFor(entries, host, port);
  if (mine.some((entry) => entry.revoked && sameKey(entry.key, key))) {
    return { ok: false, problem: "revoked", message: `host key of ${name} (${presented}) is marked @revoked in known_hosts` };
  }
  if (mine.some((entry) => !entry.revoked && sameKey(entry.key, key))) return { ok: true };
  if (mine.length === 0) {
    return { ok: false, problem: "unknown", message: `known_hosts has no entry for ${name} (it presented ${presented})` };
  }
  return {
    ok: false,
    problem: "mismatch",
    message: `host key of ${name} does not match known_hosts: it presented ${presented}, known_hosts lists ${mine
      .filter((entry) => !entry.revoked)
      .map((entry) => `${entry.keyType} ${fingerprint(entry.key)}`)
      .join(", ")}`,
  };
}

/** OpenSSH's fingerprint: SHA256 of the key blob, base64 without padding. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
}

/** The type string a wire-format key starts with. */
function keyTypeOf(key: Buffer): string | undefined {
  if (key.length < 4) return undefined;
  const length = key.readUInt32BE(0);
  if (length === 0 || length > 64 || key.length < 4 + length) return undefined;
  return key.subarray(4, 4 + length).toString("latin1");
}

function sameKey(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function hostMatches(hosts: string, name: string): boolean {
  if (hosts.startsWith("|1|")) return hashedMatches(hosts, name);
  let matched = false;
  for (const pattern of hosts.split(",")) {
    const negated = pattern.startsWith("!");
    if (globMatches(negated ? pattern.slice(1) : pattern, name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`, as `ssh-keygen -H` writes. */
function hashedMatches(hosts: string, name: string): boolean {
  const [, , salt, hash] = hosts.split("|");
  if (salt === undefined || hash === undefined) return false;
  const expected = Buffer.from(hash, "base64");
  const actual = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest();
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

/** OpenSSH's wildcards: `*` any run of characters, `?` one; case-insensitive like host names. */
function globMatches(pattern: string, name: string): boolean {
  const source = pattern
    .split("")
    .map((ch) => (ch === "*" ? ".*" : ch === "?" ? "." : ch.replace(/[.+^${}()|[\]\\]/g, "\\$&")))
    .join("");
  return new RegExp(`^${source}$`, "i").test(name);
}
