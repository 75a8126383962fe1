import Fastify from "fastify";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { logRoutes, type LogRoutesOptions } from "./logs.js";
import { viewRoutes, type ViewRoutesOptions } from "./view.js";

// The controller's HTTP servers: one for the kubelet's probes, the build logs and the web view, and one of its own
// for Prometheus metrics, so that a scrape config or NetworkPolicy can admit the one without the other.

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
}): Promise<{ close(): Promise<void> }> {
  const app = Fastify({ loggerInstance: opts.log.child({ component: "http" }) });
  // Probes come every few seconds: not worth a log line each.
  const quiet = { logLevel: "warn" } as const;
  app.get("/healthz", quiet, async (_req, reply) => (opts.health.live() ? "ok" : reply.code(500).send("not alive")));
  app.get("/readyz", quiet, async (_req, reply) => (opts.health.ready() ? "ok" : reply.code(503).send("not ready")));
  await app.register(logRoutes, opts.logs);
  await app.register(viewRoutes, opts.view);
  await app.listen({ host: opts.host, port: opts.port });
  return { close: () => app.close() };
}

export async function startMetricsServer(opts: {
  host: string;
  port: number;
  log: Logger;
  metrics: Registry;
}): Promise<{ close(): Promise<void> }> {
  const app = Fastify({ loggerInstance: opts.log.child({ component: "metrics" }) });
  // Scraped every few seconds: not worth a log line each.
  app.get("/metrics", { logLevel: "warn" }, async (_req, reply) =>
    reply.type(opts.metrics.contentType).send(await opts.metrics.metrics()),
  );
  await app.listen({ host: opts.host, port: opts.port });
  return { close: () => app.close() };
}
