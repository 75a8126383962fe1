import Fastify from "fastify";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { logRoutes, type LogRoutesOptions } from "./logs.js";
import { viewRoutes, type ViewRoutesOptions } from "./view.js";

// The controller's HTTP server: health for the kubelet's probes, Prometheus metrics, the build logs and the web view.

export interface Health {
  /** Alive: the process is not wedged. */
  live(): boolean;
  /** Ready: caches synced and reconciling. */
  ready(): boolean;
}

export async function startServer(opts: {
  host: string;
  port: number;
  log: Logger;
  health: Health;
  logs: LogRoutesOptions;
  view: ViewRoutesOptions;
  metrics: Registry;
}): Promise<{ close(): Promise<void> }> {
  const app = Fastify({ loggerInstance: opts.log.child({ component: "http" }) });
  // Probes come every few seconds: not worth a log line each.
  const quiet = { logLevel: "warn" } as const;
  app.get("/healthz", quiet, async (_req, reply) => (opts.health.live() ? "ok" : reply.code(500).send("not alive")));
  app.get("/readyz", quiet, async (_req, reply) => (opts.health.ready() ? "ok" : reply.code(503).send("not ready")));
  app.get("/metrics", quiet, async (_req, reply) =>
    reply.type(opts.metrics.contentType).send(await opts.metrics.metrics()),
  );
  await app.register(logRoutes, opts.logs);
  await app.register(viewRoutes, opts.view);
  await app.listen({ host: opts.host, port: opts.port });
  return { close: () => app.close() };
}
