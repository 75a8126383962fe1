import { Readable } from "node:stream";
import type { Dispatcher } from "undici";
import type { z } from "zod";
import { parseBuildEvents, type BuildEvent } from "./build-events.js";
import { buildQueryString, type BuildQuery } from "./build-query.js";
import { connectEndpoint, type PodmanConnection } from "./connection.js";
import { describeCause, PodmanError } from "./errors.js";
import type { RegistryLogin } from "../registry/login.js";
import { encodeRegistryAuth, encodeRegistryConfig, type PushAuth } from "./registry-headers.js";
import { errorBodySchema, infoSchema, manifestListSchema, pushReplySchema } from "./schemas.js";

export interface PodmanInfo {
  arch: string;
  os: string;
  version: string;
  apiVersion: string;
  /** Architectures the host runs under emulation; reported by podman ≥ 5.6 only, else empty. */
  emulatedArchitectures: string[];
}

export interface BuildOptions extends BuildQuery {
  /** A tar of the build context. */
  context: NodeJS.ReadableStream;
  /** Logins for pulling base images, keyed by registry host (`host[:port]`). */
  registryConfig?: Readonly<Record<string, RegistryLogin>> | undefined;
}

export interface ManifestEntry {
  digest: string;
  /** `os/arch[/variant]`, undefined when the list does not say. */
  platform: string | undefined;
  mediaType: string | undefined;
}

export interface ManifestList {
  mediaType: string | undefined;
  entries: ManifestEntry[];
}

export interface PushOptions {
  /** Push the images of the list too; podman's handler defaults to pushing only the list. */
  all: boolean;
  tlsVerify: boolean;
  auth?: PushAuth | undefined;
}

export interface PodmanClient {
  /** Resolves with the service's libpod API version. */
  ping(signal?: AbortSignal): Promise<{ apiVersion: string }>;
  info(signal?: AbortSignal): Promise<PodmanInfo>;
  /**
   * Streams the build's events. The request starts on the first iteration; stopping the iteration early (or
   * aborting `signal`) closes the connection: podman 4.3 lets the running step finish but commits nothing
   * (docs/architecture.md, "A build whose controller goes away"); the scratch of the VM ends the rest.
   */
  build(opts: BuildOptions, signal: AbortSignal): AsyncIterable<BuildEvent>;
  manifestExists(name: string, signal?: AbortSignal): Promise<boolean>;
  /** Deletes a local manifest list; false when there was none. */
  manifestDelete(name: string, signal?: AbortSignal): Promise<boolean>;
  manifestInspect(name: string, signal?: AbortSignal): Promise<ManifestList>;
  /** Pushes a manifest list; resolves with the digest podman reports for it. */
  manifestPush(name: string, destination: string, opts: PushOptions, signal: AbortSignal): Promise<string>;
  /** Opens the transport's session (the ssh handshake) before the first request needs it; nothing over tcp. */
  warm(): Promise<void>;
  close(): Promise<void>;
}

const API = "/v4.0.0/libpod";
// Short calls answer in well under a second; long ones (build, push) are bounded by the caller's signal only.
const SHORT_TIMEOUT_MS = 30_000;

interface Call {
  method: Dispatcher.HttpMethod;
  /** Path without query: what errors report. */
  path: string;
  query?: string;
  headers?: Record<string, string>;
  body?: Readable;
  signal?: AbortSignal | undefined;
  long?: boolean;
}

/** A client for one podman service, from `tcp://HOST:PORT`, `unix:///PATH` or a prepared connection. */
export function createPodmanClient(endpoint: string | PodmanConnection): PodmanClient {
  const connection = typeof endpoint === "string" ? connectEndpoint(endpoint) : endpoint;
  const http = new Http(connection);
  const manifestPath = (name: string): string => `${API}/manifests/${encodeURIComponent(name)}`;

  return {
    async ping(signal) {
      const call: Call = { method: "GET", path: "/libpod/_ping", signal };
      const res = await http.expect(call, [200]);
      await res.body.dump();
      const version = res.headers["libpod-api-version"];
      return { apiVersion: typeof version === "string" ? version : "" };
    },

    async info(signal) {
      const call: Call = { method: "GET", path: `${API}/info`, signal };
      const info = await http.json(call, infoSchema);
      return {
        arch: info.host.arch,
        os: info.host.os,
        version: info.version.Version,
        apiVersion: info.version.APIVersion,
        emulatedArchitectures: info.host.emulatedArchitectures ?? [],
      };
    },

    build(opts, signal) {
      return buildEvents(http, opts, signal);
    },

    async manifestExists(name, signal) {
      const res = await http.expect({ method: "GET", path: `${manifestPath(name)}/exists`, signal }, [204, 404]);
      await res.body.dump();
      return res.statusCode === 204;
    },

    async manifestDelete(name, signal) {
      const res = await http.expect({ method: "DELETE", path: manifestPath(name), signal }, [200, 404]);
      await res.body.dump();
      return res.statusCode === 200;
    },

    async manifestInspect(name, signal) {
      const list = await http.json({ method: "GET", path: `${manifestPath(name)}/json`, signal }, manifestListSchema);
      return {
        mediaType: list.mediaType,
        entries: (list.manifests ?? []).map((entry) => ({
          digest: entry.digest,
          mediaType: entry.mediaType,
          platform:
            entry.platform === undefined
              ? undefined
              : [entry.platform.os, entry.platform.architecture, entry.platform.variant]
                  .filter((part) => part !== undefined && part !== "")
                  .join("/"),
        })),
      };
    },

    async manifestPush(name, destination, opts, signal) {
      const query = new URLSearchParams({ all: String(opts.all), tlsVerify: String(opts.tlsVerify) });
      const headers: Record<string, string> = {};
      if (opts.auth !== undefined) headers["x-registry-auth"] = encodeRegistryAuth(opts.auth);
      const call: Call = {
        method: "POST",
        path: `${manifestPath(name)}/registry/${encodeURIComponent(destination)}`,
        query: query.toString(),
        headers,
        signal,
        long: true,
      };
      const reply = await http.json(call, pushReplySchema);
      return reply.Id;
    },

    async warm() {
      await connection.warm?.();
    },

    async close() {
      // destroy, not close: close() waits for requests in flight, and a cancelled build's may never finish.
      await connection.dispatcher.destroy();
      await connection.close?.();
    },
  };
}

async function* buildEvents(http: Http, opts: BuildOptions, signal: AbortSignal): AsyncGenerator<BuildEvent> {
  const body = opts.context instanceof Readable ? opts.context : Readable.from(opts.context);
  const headers: Record<string, string> = { "content-type": "application/x-tar" };
  if (opts.registryConfig !== undefined && Object.keys(opts.registryConfig).length > 0) {
    headers["x-registry-config"] = encodeRegistryConfig(opts.registryConfig);
  }
  const call: Call = {
    method: "POST",
    path: `${API}/build`,
    query: buildQueryString(opts),
    headers,
    body,
    signal,
    long: true,
  };
  let res: Dispatcher.ResponseData | undefined;
  try {
    res = await http.expect(call, [200]);
    try {
      yield* parseBuildEvents(res.body);
    } catch (error) {
      if (signal.aborted) throw error;
      // The stream broke off (the VM's podman died, the connection was cut): say where, not just undici's words.
      throw http.error(call, res.statusCode, `the build's output broke off: ${describeCause(error)}`, error, true);
    }
  } finally {
    // Early exit by the consumer: drop the connection so podman stops the build, and free the context's files.
    res?.body.destroy();
    body.destroy();
  }
}

/** The request/response plumbing shared by every call: timeouts, error mapping, JSON validation. */
class Http {
  constructor(private readonly connection: PodmanConnection) {}

  async expect(call: Call, statuses: readonly number[]): Promise<Dispatcher.ResponseData> {
    const res = await this.send(call);
    if (statuses.includes(res.statusCode)) return res;
    throw await this.failure(call, res);
  }

  async json<T extends z.ZodType>(call: Call, schema: T): Promise<z.output<T>> {
    const res = await this.expect(call, [200]);
    const text = await this.readText(call, res);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw this.error(call, res.statusCode, "reply is not JSON", error);
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw this.error(call, res.statusCode, `unexpected reply: ${parsed.error.message}`);
    return parsed.data;
  }

  private async send(call: Call): Promise<Dispatcher.ResponseData> {
    // Errors of the body stream (say, a context over its size limit) are the caller's to see, unwrapped.
    let bodyError: unknown;
    call.body?.once("error", (error) => {
      bodyError = error;
    });
    const timeout = call.long === true ? 0 : SHORT_TIMEOUT_MS;
    try {
      return await this.connection.dispatcher.request({
        origin: this.connection.origin,
        method: call.method,
        path: call.query === undefined || call.query === "" ? call.path : `${call.path}?${call.query}`,
        headers: call.headers ?? {},
        body: call.body ?? null,
        signal: call.signal ?? null,
        headersTimeout: timeout,
        bodyTimeout: timeout,
      });
    } catch (error) {
      if (call.signal?.aborted === true) throw call.signal.reason;
      if (bodyError !== undefined) throw bodyError;
      throw new PodmanError({
        status: undefined,
        method: call.method,
        path: call.path,
        endpoint: this.connection.label,
        cause: error,
        transportLost: this.connection.lost?.(),
      });
    }
  }

  private async failure(call: Call, res: Dispatcher.ResponseData): Promise<PodmanError> {
    const text = await this.readText(call, res);
    let body: z.output<typeof errorBodySchema> = {};
    try {
      const parsed = errorBodySchema.safeParse(JSON.parse(text));
      if (parsed.success) body = parsed.data;
    } catch {
      body = { message: text.trim().slice(0, 500) };
    }
    return new PodmanError({
      status: res.statusCode,
      method: call.method,
      path: call.path,
      endpoint: this.connection.label,
      podmanCause: body.cause,
      podmanMessage: body.message,
    });
  }

  private async readText(call: Call, res: Dispatcher.ResponseData): Promise<string> {
    try {
      return await res.body.text();
    } catch (error) {
      if (call.signal?.aborted === true) throw call.signal.reason;
      throw this.error(call, res.statusCode, "reply could not be read", error, true);
    }
  }

  /** `brokeOff`: the reply stopped midway, perhaps with the transport under it. */
  error(call: Call, status: number, message: string, cause?: unknown, brokeOff = false): PodmanError {
    return new PodmanError({
      status,
      method: call.method,
      path: call.path,
      endpoint: this.connection.label,
      podmanMessage: message,
      cause,
      transportLost: brokeOff ? this.connection.lost?.() : undefined,
    });
  }
}
