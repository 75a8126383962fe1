import { randomBytes } from "node:crypto";
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
  let stopping = false;
  const log = pino({
    level: config.VMBUILD_LOG_LEVEL,
    base: { component: "vmbuild" },
    // Nothing secret is logged on purpose; this is the net under that promise.
    redact: { paths: ["*.password", "*.token", "*.auth", "*.authorization", "*.privateKey", "*.headers.authorization"], censor: "***" },
  });
  const kube = loadKube(config.KUBECONFIG);
  await mkdir(config.VMBUILD_WORK_DIR, { recursive: true });
  await removeStaleCheckouts(config.VMBUILD_WORK_DIR);
  // Unique per process: a container restarted in the same pod is a new replica, not the lost one.
  const identity = `${config.HOSTNAME}-${process.pid}-${randomBytes(3).toString("hex")}`;
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
      ownerLeaseMs: config.VMBUILD_OWNER_LEASE_SECONDS * 1000,
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
      // Another replica may take this one's runs over now: stop before anything here acts on them again.
      log.error("this replica's Lease lapsed; exiting so a fresh process takes over");
      process.exit(1);
    },
  );
  let ready = false;
  void controller.ready.then(() => {
    ready = !stopping;
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

  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    ready = false;
    const drainMs = config.VMBUILD_DRAIN_SECONDS * 1000;
    log.info({ signal, drainSeconds: config.VMBUILD_DRAIN_SECONDS }, "draining: no new runs; finishing the builds in flight");
    // Logs and health stay served while the builds finish.
    const { finished, handedOver } = await controller.drain(drainMs);
    if (finished) log.info("drained; shutting down");
    else log.warn({ runs: handedOver }, "drain deadline passed; the other replicas take these runs over");
    await server.close();
    // The builds stopped at the drain's end closed their logs: let their last copies reach the API.
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
