import { Pool, type Dispatcher, type buildConnector } from "undici";
import { PodmanEndpointError } from "./errors.js";

/**
 * How requests reach one podman service: the origin used to build URLs, the undici dispatcher that carries
 * them, and a printable label. Transports differ only in the dispatcher, so an ssh tunnel slots in through
 * {@link connectWith} without touching the client.
 */
export interface PodmanConnection {
  readonly origin: string;
  readonly dispatcher: Dispatcher;
  /** Safe for logs and errors: never carries credentials. */
  readonly label: string;
  /** Frees what the transport holds besides the dispatcher's sockets (an ssh session). */
  readonly close?: () => Promise<void>;
  /** Opens what the first request would (an ssh session) ahead of it; rejects like that request would. */
  readonly warm?: () => Promise<void>;
  /**
   * Why the session requests ride on (an ssh session) last ended after it was up, until a new one is: what
   * a request cut off with it says beside undici's bare "socket closed".
   */
  readonly lost?: () => string | undefined;
}

// A build stream holds one connection for its whole length; a few more keep ping/inspect/push responsive.
const CONNECTIONS = 4;

/** Parses `tcp://HOST:PORT` or `unix:///path/podman.sock` into a connection. */
export function connectEndpoint(endpoint: string): PodmanConnection {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new PodmanEndpointError(`podman endpoint is not a URL (expected tcp://HOST:PORT or unix:///PATH)`);
  }
  switch (url.protocol) {
    case "tcp:": {
      if (url.hostname === "" || url.port === "") {
        throw new PodmanEndpointError(`podman endpoint tcp://${url.host} needs a host and a port`);
      }
      const origin = `http://${url.host}`;
      return { origin, dispatcher: new Pool(origin, { connections: CONNECTIONS }), label: `tcp://${url.host}` };
    }
    case "unix:": {
      if (url.pathname === "" || url.pathname === "/") {
        throw new PodmanEndpointError("podman endpoint unix:// needs a socket path");
      }
      const socketPath = decodeURIComponent(url.pathname);
      // The host part of the origin is only the Host header; the socket decides where bytes go.
      const origin = "http://podman";
      const dispatcher = new Pool(origin, { connections: CONNECTIONS, socketPath });
      return { origin, dispatcher, label: `unix://${socketPath}` };
    }
    default:
      throw new PodmanEndpointError(
        `podman endpoint scheme ${url.protocol} is not supported here; ssh connections come from connectSsh`,
      );
  }
}

/**
 * A connection whose sockets come from `connector` (for example a stream forwarded over ssh to the VM's
 * podman socket). Every request is plain HTTP over whatever duplex the connector yields.
 */
export function connectWith(connector: buildConnector.connector, label: string): PodmanConnection {
  const origin = "http://podman";
  return { origin, dispatcher: new Pool(origin, { connections: CONNECTIONS, connect: connector }), label };
}
