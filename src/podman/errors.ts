/**
 * A failed call to a podman service. Carries what an operator needs to act on it (HTTP status, method,
 * versioned path without its query, podman's own cause/message) and never a credential: paths hold only
 * image and manifest names, and registry credentials travel in headers that are not recorded here.
 */
export class PodmanError extends Error {
  override readonly name = "PodmanError";
  /** HTTP status, or undefined when no response arrived (refused, reset, timed out). */
  readonly status: number | undefined;
  readonly method: string;
  readonly path: string;
  /** Endpoint label such as `tcp://10.0.0.5:8080`. */
  readonly endpoint: string;
  readonly podmanCause: string | undefined;
  readonly podmanMessage: string | undefined;

  constructor(init: {
    status: number | undefined;
    method: string;
    path: string;
    endpoint: string;
    podmanCause?: string | undefined;
    podmanMessage?: string | undefined;
    cause?: unknown;
    /** Why the transport's session under the request ended, when the request broke off with it. */
    transportLost?: string | undefined;
  }) {
    const detail = init.podmanMessage ?? init.podmanCause ?? describeCause(init.cause);
    const status = init.status === undefined ? "no response" : `HTTP ${init.status}`;
    const lost = init.transportLost === undefined ? "" : `; ${init.transportLost}`;
    super(`podman ${init.method} ${init.path} at ${init.endpoint}: ${status}: ${detail}${lost}`, { cause: init.cause });
    this.status = init.status;
    this.method = init.method;
    this.path = init.path;
    this.endpoint = init.endpoint;
    this.podmanCause = init.podmanCause;
    this.podmanMessage = init.podmanMessage;
  }
}

/** An endpoint string this client cannot connect to. */
export class PodmanEndpointError extends Error {
  override readonly name = "PodmanEndpointError";
}

export function describeCause(cause: unknown): string {
  if (cause instanceof Error) {
    return "code" in cause && typeof cause.code === "string" ? `${cause.code}: ${cause.message}` : cause.message;
  }
  return "unknown error";
}

/**
 * A transport that could not carry requests to podman. `permanent` when retrying cannot help (a host key that
 * does not match, a key the VM refuses): the build then fails at once instead of waiting for podman.
 */
export class PodmanTransportError extends Error {
  override readonly name = "PodmanTransportError";
  constructor(
    message: string,
    readonly permanent: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The permanent transport error behind `err` (itself or a cause of it), if there is one. */
export function permanentTransportError(err: unknown): PodmanTransportError | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof PodmanTransportError && e.permanent) return e;
  }
  return undefined;
}
