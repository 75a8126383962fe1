import Fastify from "fastify";
import type { Logger } from "pino";

// The controller's HTTP server: health for the kubelet's probes. Metrics and logs come with later issues.

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
}): Promise<{ close(): Promise<void> }> {
  const app = Fastify({ loggerInstance: opts.log.child({ component: "http" }), disableRequestLogging: true });
  app.get("/healthz", async (_req, reply) => (opts.health.live() ? "ok" : reply.code(500).send("not alive")));
  app.get("/readyz", async (_req, reply) => (opts.health.ready() ? "ok" : reply.code(503).send("not ready")));
  await app.listen({ host: opts.host, port: opts.port });
  return { close: () => app.close() };
}
