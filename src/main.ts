import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { pino } from "pino";
import { loadConfig } from "./config.js";
import { startController } from "./controller.js";
import { loadKube } from "./kube/client.js";
import { startMetricsServer, startServer } from "./server/http.js";
import { createAuthorizer, kubeAccessReviewer } from "./server/auth.js";
import { LogStore } from "./jobs/log-store.js";
import { kubeLogObjects } from "./jobs/log-object.js";
import { LogCopies } from "./jobs/log-sync.js";
import { storedLogs } from "./server/stored-logs.js";
import { removeStaleCheckouts } from "./jobs/build.js";

// The one entry point: configuration, wiring, graceful shutdown.

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const log = pino({
    level: config.VMBUILD_LOG_LEVEL,
    base: { component: "vmbuild" },
    // Nothing secret is logged on purpose; this is the net under that promise.
    redact: { paths: ["*.password", "*.token", "*.auth", "*.authorization", "*.privateKey", "*.headers.authorization"], censor: "***" },
  });
  const kube = loadKube(config.KUBECONFIG);
  await mkdir(config.VMBUILD_WORK_DIR, { recursive: true });
  await removeStaleCheckouts(config.VMBUILD_WORK_DIR);
  const identity = `${config.HOSTNAME}-${process.pid}`;
  // Each build log is also stored in a VMBuildLog, so that any replica serves it once this one is gone.
  const logObjects = kubeLogObjects(kube.custom);
  const copies = new LogCopies({
    objects: logObjects,
    replica: identity,
    maxBytes: config.VMBUILD_LOG_STORED_MAX_BYTES,
    syncMs: config.VMBUILD_LOG_SYNC_SECONDS * 1000,
    log,
  });
  const logs = new LogStore({
    root: config.VMBUILD_LOG_DIR ?? join(config.VMBUILD_WORK_DIR, "logs"),
    maxBytes: config.VMBUILD_LOG_MAX_BYTES,
    maxBytesPerLog: config.VMBUILD_LOG_MAX_BYTES_PER_BUILD,
    maxAgeMs: config.VMBUILD_LOG_MAX_AGE,
    log,
    mirrors: copies,
  });
  logs.start();
  const publicURL = config.VMBUILD_PUBLIC_URL ?? `http://${config.HOSTNAME}:${config.VMBUILD_HTTP_PORT}`;

  const controller = await startController(
    kube,
    {
      namespace: config.VMBUILD_NAMESPACE,
      identity,
      leaderElection: config.VMBUILD_LEADER_ELECTION,
      leaderLeaseMs: config.VMBUILD_LEADER_LEASE_SECONDS * 1000,
      sweepEveryMs: config.VMBUILD_SWEEP_SECONDS * 1000,
      resyncEveryMs: config.VMBUILD_RESYNC_SECONDS * 1000,
      workDir: config.VMBUILD_WORK_DIR,
      logs,
      publicURL,
      podmanPort: config.VMBUILD_PODMAN_PORT,
      maxContextBytes: config.VMBUILD_MAX_CONTEXT_BYTES,
      concurrency: config.VMBUILD_CONCURRENCY,
    },
    log,
    () => {
      // Restarting is the safe way to drop every in-memory belief; the new leader continues from the API.
      log.error("lost leadership; exiting so a fresh process takes over");
      process.exit(1);
    },
  );
  let ready = false;
  void controller.ready.then(() => {
    ready = true;
  });
  // One authorizer for the logs and the view, so their answers share one cache.
  const authorizer = createAuthorizer(kubeAccessReviewer(kube.kc), { log });
  const server = await startServer({
    host: config.VMBUILD_HTTP_HOST,
    port: config.VMBUILD_HTTP_PORT,
    log,
    health: { live: () => true, ready: () => ready },
    logs: { store: logs, authorizer, stored: storedLogs(controller.caches.runs, logObjects) },
    view: { caches: controller.caches, authorizer },
  });
  const metricsServer = await startMetricsServer({
    host: config.VMBUILD_HTTP_HOST,
    port: config.VMBUILD_METRICS_PORT,
    log,
    metrics: controller.metrics.registry,
  });
  log.info(
    { port: config.VMBUILD_HTTP_PORT, metricsPort: config.VMBUILD_METRICS_PORT, server: kube.kc.getCurrentCluster()?.server },
    "vmbuild controller started",
  );

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    await server.close();
    await controller.stop();
    // The builds just stopped closed their logs: let their last copies reach the API.
    await copies.drain(5_000);
    await metricsServer.close();
    logs.stop();
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
}

main().catch((err: unknown) => {
  process.stderr.write(`vmbuild: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
