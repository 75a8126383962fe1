import { createHash } from "node:crypto";
import { Agent, RetryAgent, type Dispatcher, type RetryHandler } from "undici";
import { z } from "zod";
import type { RegistryLogin } from "./login.js";
import { RegistryError, type RegistryFailure } from "./errors.js";
import { formatImageReference, parseImageReference, registryApiHost, type ImageReference } from "../api/image-reference.js";
import { parseWwwAuthenticate, type AuthChallenge } from "./www-authenticate.js";

export interface ResolveDigestOptions {
  /** false: accept any certificate, and fall back to plain HTTP when HTTPS cannot connect. */
  tlsVerify: boolean;
  signal?: AbortSignal | undefined;
}

// Index types first: for a multi-platform push the digest users pull is the index's.
const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const TIMEOUT_MS = 30_000;

/** A manifest as the registry serves it: its digest and, for an index, the digest of each platform's image. */
export interface ServedManifest {
  digest: string;
  mediaType: string | undefined;
  platforms: { platform: string; digest: string }[];
}

/**
 * The digest the registry serves for `imageRef`'s manifest (HEAD, `Docker-Content-Digest`; hashing a GET when
 * the header is missing). Handles anonymous access, Basic auth and the Bearer token challenge.
 */
export async function resolveDigest(
  imageRef: string,
  creds: RegistryLogin | undefined,
  opts: ResolveDigestOptions,
): Promise<string> {
  return withSession(imageRef, creds, opts, (session) => session.resolve());
}

/** A manifest's bytes as served, with the media type the registry gave them. */
export interface RawManifest {
  bytes: Buffer;
  mediaType: string;
  digest: string;
}

/** The manifest the registry serves for `imageRef`, byte for byte. */
export async function getManifest(
  imageRef: string,
  creds: RegistryLogin | undefined,
  opts: ResolveDigestOptions,
): Promise<RawManifest> {
  return withSession(imageRef, creds, opts, (session) => session.raw());
}

/** Uploads a manifest (e.g. an index of images already in the repository) under `imageRef`'s tag. */
export async function putManifest(
  imageRef: string,
  manifest: { bytes: Buffer; mediaType: string },
  creds: RegistryLogin | undefined,
  opts: ResolveDigestOptions,
): Promise<string> {
  return withSession(imageRef, creds, opts, (session) => session.put(manifest));
}

/** The manifest the registry serves for `imageRef`, read with GET: digest and per-platform digests of an index. */
export async function inspectManifest(
  imageRef: string,
  creds: RegistryLogin | undefined,
  opts: ResolveDigestOptions,
): Promise<ServedManifest> {
  return withSession(imageRef, creds, opts, (session) => session.inspect());
}

/**
 * A GET the registry answers with a 5xx is tried again: a registry serving a tag that another push is writing (a
 * shared `:latest`) may answer 500 for a moment. After the last try the response is handed on as it came.
 */
const READ_RETRIES: RetryHandler.RetryOptions = {
  methods: ["GET"],
  statusCodes: [500, 502, 503, 504],
  errorCodes: [],
  maxRetries: 3,
  minTimeout: 200,
  maxTimeout: 1000,
  throwOnError: false,
};

async function withSession<T>(
  imageRef: string,
  creds: RegistryLogin | undefined,
  opts: ResolveDigestOptions,
  use: (session: Session) => Promise<T>,
): Promise<T> {
  const ref = parseImageReference(imageRef);
  const image = formatImageReference(ref);
  const dispatcher = new RetryAgent(new Agent({ connect: { rejectUnauthorized: opts.tlsVerify } }), READ_RETRIES);
  try {
    const schemes = opts.tlsVerify ? ["https"] : ["https", "http"];
    let lastError: unknown;
    for (const scheme of schemes) {
      const base = `${scheme}://${registryApiHost(ref.registry)}`;
      const session = new Session({ dispatcher, base, ref, image, creds, signal: opts.signal });
      try {
        return await use(session);
      } catch (error) {
        if (!(error instanceof ConnectError)) throw error;
        lastError = error.cause;
      }
    }
    throw new RegistryError({ reason: "Unreachable", image, detail: describe(lastError), cause: lastError });
  } finally {
    await dispatcher.close();
  }
}

const ServedManifestSchema = z.object({
  mediaType: z.string().optional(),
  manifests: z
    .array(
      z.object({
        digest: z.string(),
        platform: z.object({ os: z.string(), architecture: z.string(), variant: z.string().optional() }).optional(),
      }),
    )
    .default([]),
});

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A failure before any HTTP response from the registry itself: the caller may try the next scheme. */
class ConnectError extends Error {}

interface SessionInit {
  dispatcher: Dispatcher;
  /** `scheme://host[:port]` of the registry API. */
  base: string;
  ref: ImageReference;
  /** The reference as errors print it. */
  image: string;
  creds: RegistryLogin | undefined;
  signal: AbortSignal | undefined;
}

/** One scheme's attempt: the manifest request and whatever auth round the registry asks for. */
class Session {
  private authorization: string | undefined;

  constructor(private readonly init: SessionInit) {}

  async resolve(): Promise<string> {
    const res = await this.manifest("HEAD");
    const header = res.headers["docker-content-digest"];
    await res.body.dump();
    // Read again with GET, which is tried again (undici's retry handler never stops retrying a HEAD).
    if (res.statusCode >= 500) return (await this.inspect()).digest;
    this.check("HEAD", res.statusCode);
    if (typeof header === "string" && DIGEST.test(header)) return header;
    // Some registries omit the header on HEAD: the digest is the hash of the manifest bytes.
    return (await this.inspect()).digest;
  }

  async raw(): Promise<RawManifest> {
    const res = await this.manifest("GET");
    const bytes = Buffer.from(await res.body.arrayBuffer());
    this.check("GET", res.statusCode);
    const header = res.headers["content-type"];
    // The hash of the bytes served is the digest users pull by, whatever the header says.
    return { bytes, mediaType: typeof header === "string" ? header : "", digest: sha256(bytes) };
  }

  async put(manifest: { bytes: Buffer; mediaType: string }): Promise<string> {
    const res = await this.manifest("PUT", manifest);
    const text = await res.body.text();
    if (res.statusCode !== 201 && res.statusCode !== 200) {
      if (res.statusCode === 401 || res.statusCode === 403) {
        throw this.error("AuthFailed", res.statusCode, this.init.creds === undefined ? "credentials required" : "push refused");
      }
      throw this.error("Failed", res.statusCode, `PUT manifest: ${text.slice(0, 200)}`);
    }
    return sha256(manifest.bytes);
  }

  async inspect(): Promise<ServedManifest> {
    const { bytes, digest } = await this.raw();
    const parsed = ServedManifestSchema.safeParse(safeJson(bytes.toString("utf8")));
    const manifest = parsed.success ? parsed.data : { manifests: [] };
    return {
      digest,
      mediaType: manifest.mediaType,
      platforms: manifest.manifests.flatMap((m) =>
        m.platform ? [{ platform: [m.platform.os, m.platform.architecture, m.platform.variant].filter(Boolean).join("/"), digest: m.digest }] : [],
      ),
    };
  }

  /** The manifest request, with one authentication round if the registry asks for it. */
  private async manifest(method: Method, body?: { bytes: Buffer; mediaType: string }): Promise<Dispatcher.ResponseData> {
    const { base, ref } = this.init;
    const url = `${base}/v2/${ref.repository}/manifests/${ref.digest ?? ref.tag ?? "latest"}`;
    let res = await this.send(method, url, "manifest", body);
    if (res.statusCode === 401) {
      await res.body.dump();
      await this.authenticate(res.headers["www-authenticate"], method === "PUT" ? "pull,push" : "pull");
      res = await this.send(method, url, "manifest", body);
    }
    return res;
  }

  private async authenticate(header: string | string[] | undefined, actions: string): Promise<void> {
    const challenges = parseWwwAuthenticate(Array.isArray(header) ? header.join(", ") : (header ?? ""));
    const bearer = challenges.find((challenge) => challenge.scheme === "bearer");
    const basic = challenges.find((challenge) => challenge.scheme === "basic");
    if (bearer !== undefined) {
      this.authorization = `Bearer ${await this.token(bearer, actions)}`;
    } else if (basic !== undefined && this.init.creds !== undefined) {
      this.authorization = basicAuth(this.init.creds);
    } else {
      const detail = this.init.creds === undefined ? "credentials required" : "no supported challenge";
      throw this.error("AuthFailed", 401, detail);
    }
  }

  private async token(challenge: AuthChallenge, actions: string): Promise<string> {
    const realm = challenge.params.realm;
    if (realm === undefined) throw this.error("AuthFailed", 401, "Bearer challenge without realm");
    const url = new URL(realm);
    if (challenge.params.service !== undefined) url.searchParams.set("service", challenge.params.service);
    url.searchParams.set("scope", challenge.params.scope ?? `repository:${this.init.ref.repository}:${actions}`);
    const res = await this.send("GET", url.toString(), "token");
    const text = await res.body.text();
    if (res.statusCode === 401 || res.statusCode === 403) {
      throw this.error("AuthFailed", res.statusCode, `token service ${url.host} refused the login`);
    }
    if (res.statusCode !== 200) throw this.error("Failed", res.statusCode, `token service ${url.host}`);
    const token = tokenOf(text);
    if (token === undefined) throw this.error("Failed", 200, `token service ${url.host} sent no token`);
    return token;
  }

  private check(method: string, status: number): void {
    if (status === 200) return;
    if (status === 401 || status === 403) {
      throw this.error("AuthFailed", status, this.init.creds === undefined ? "credentials required" : "login refused");
    }
    throw this.error(status === 404 ? "NotFound" : "Failed", status, `${method} ${this.init.base}`);
  }

  private async send(
    method: Method,
    url: string,
    target: "manifest" | "token",
    body?: { bytes: Buffer; mediaType: string },
  ): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = {};
    if (body) headers["content-type"] = body.mediaType;
    if (target === "manifest") {
      headers.accept = MANIFEST_ACCEPT;
      if (this.authorization !== undefined) headers.authorization = this.authorization;
    } else if (this.init.creds !== undefined) {
      // The token service takes the login; the registry itself only ever sees the token.
      headers.authorization = basicAuth(this.init.creds);
    }
    const { origin, pathname, search } = new URL(url);
    try {
      return await this.init.dispatcher.request({
        origin,
        path: `${pathname}${search}`,
        method,
        headers,
        ...(body ? { body: body.bytes } : {}),
        signal: this.init.signal ?? null,
        headersTimeout: TIMEOUT_MS,
        bodyTimeout: TIMEOUT_MS,
      });
    } catch (error) {
      if (this.init.signal?.aborted === true) throw this.init.signal.reason;
      // Only the registry's own origin may fall back to the next scheme; a token service failing is final.
      if (target === "manifest") throw new ConnectError("connect", { cause: error });
      throw new RegistryError({
        reason: "Unreachable",
        image: this.init.image,
        detail: `token service ${origin}: ${describe(error)}`,
        cause: error,
      });
    }
  }

  private error(reason: RegistryFailure, status: number, detail: string): RegistryError {
    return new RegistryError({ reason, image: this.init.image, status, detail });
  }
}

type Method = "HEAD" | "GET" | "PUT";

function sha256(bytes: Buffer): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

function basicAuth(creds: RegistryLogin): string {
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`, "utf8").toString("base64")}`;
}

function tokenOf(text: string): string | undefined {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== "object" || value === null) return undefined;
    const token = "token" in value ? value.token : "access_token" in value ? value.access_token : undefined;
    return typeof token === "string" && token !== "" ? token : undefined;
  } catch {
    return undefined;
  }
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return "no response";
  const code = "code" in error && typeof error.code === "string" ? `${error.code} ` : "";
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
  return `${code}${error.message}${cause}`;
}
