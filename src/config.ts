import { z } from "zod";
import { parseDuration } from "./timing/duration.js";

// The controller's configuration, from the environment, validated once at start.

/** The smallest per-build log cap: room for a head and a tail of many lines each. */
const MIN_LOG_BYTES = 64 * 1024;
/**
 * The stored copy's text is counted as it travels, JSON-escaped: at most 1 MiB leaves the object (text, markers,
 * metadata) well under etcd's 1.5 MiB request limit whatever the log holds.
 */
const MAX_STORED_LOG_BYTES = 1024 ** 2;
const MIN_STORED_LOG_BYTES = 4 * 1024;

export const ConfigSchema = z.object({
  KUBECONFIG: z.string().optional().describe("Kubeconfig to use; unset: ~/.kube/config, else the in-cluster ServiceAccount."),
  VMBUILD_HTTP_HOST: z.string().default("0.0.0.0").describe("Address the HTTP server listens on."),
  VMBUILD_HTTP_PORT: z.coerce
    .number()
    .int()
    .min(0)
    .max(65535)
    .default(8080)
    .describe("Port of the HTTP server: /healthz, /readyz, /logs, the web view."),
  VMBUILD_METRICS_PORT: z.coerce
    .number()
    .int()
    .min(0)
    .max(65535)
    .default(9090)
    .describe("Port of the Prometheus endpoint /metrics, apart from the logs and the web view (as Tekton's controllers serve theirs)."),
  VMBUILD_PUBLIC_URL: z
    .url()
    .optional()
    .describe("Base URL users reach the HTTP server at (Service or Ingress), for LOG_URL; default http://HOSTNAME:PORT."),
  VMBUILD_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error"]).default("info").describe("pino log level."),
  VMBUILD_WORK_DIR: z.string().default("/tmp/vmbuild").describe("Git checkouts (removed after each build) and, by default, build logs."),
  VMBUILD_LOG_DIR: z.string().optional().describe("Where build logs are kept; default WORK_DIR/logs."),
  VMBUILD_LOG_MAX_BYTES: z.coerce.number().int().positive().default(1024 ** 3).describe("Build logs kept, in bytes, oldest removed first."),
  VMBUILD_LOG_MAX_BYTES_PER_BUILD: z.coerce
    .number()
    .int()
    .min(MIN_LOG_BYTES)
    .default(16 * 1024 ** 2)
    .describe("Each build log's cap, in bytes: its first and last halves are kept, a marker line says what was cut between."),
  VMBUILD_LOG_MAX_AGE: z
    .string()
    .default("168h")
    .refine((d) => parseDuration(d) !== undefined, { message: "expected a duration such as 72h" })
    .transform((d) => parseDuration(d) ?? 0)
    .describe("Build logs older than this are removed."),
  VMBUILD_LOG_STORED_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(MIN_STORED_LOG_BYTES)
    .max(MAX_STORED_LOG_BYTES, { message: `at most ${MAX_STORED_LOG_BYTES} (1 MiB): the object must stay under etcd's 1.5 MiB request limit` })
    .default(512 * 1024)
    .describe(
      "Each build log's stored copy (a VMBuildLog next to the run, served by any replica), in bytes as sent (JSON-escaped): its first and last halves are kept around a marker line. At most 1 MiB.",
    ),
  VMBUILD_LOG_SYNC_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(3600)
    .default(10)
    .describe("How often a running build's stored log copy is written while it grows; a build shorter than this writes it once, at its end."),
  VMBUILD_PODMAN_PORT: z.coerce.number().int().min(1).max(65535).default(8888).describe("Port of podman's TCP service on the build VMs of pools annotated vmbuild.dev/podman-connection: tcp (trusted builds only); the default ssh connection uses the pool's ssh port."),
  VMBUILD_MAX_CONTEXT_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(2 * 1024 ** 3)
    .describe("Largest build context (after .dockerignore) sent to a VM."),
  VMBUILD_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(8).describe("Runs reconciled at once."),
  VMBUILD_NAMESPACE: z.string().default("vmbuild-system").describe("Namespace of the leader-election Lease (the controller's own)."),
  VMBUILD_LEADER_ELECTION: z
    .enum(["true", "false"])
    .default("true")
    .transform((v) => v === "true")
    .describe("Elect one acting replica; turn off only for a single replica."),
  VMBUILD_LEADER_LEASE_SECONDS: z.coerce
    .number()
    .int()
    .min(2)
    .max(300)
    .default(15)
    .describe("Leader lease duration; a standby takes over this long after the leader is gone."),
  VMBUILD_OWNER_LEASE_SECONDS: z.coerce
    .number()
    .int()
    .min(2)
    .max(300)
    .default(15)
    .describe("Each replica's own Lease: the runs it executes are taken over (scratched, run again) this long after it is lost."),
  VMBUILD_DRAIN_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .max(86_400)
    .default(3600)
    .describe(
      "On SIGTERM a replica takes no new runs and finishes its builds for at most this long, then hands the rest over; keep the pod's terminationGracePeriodSeconds above it.",
    ),
  VMBUILD_RESYNC_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(86_400)
    .default(300)
    .describe("How often every unfinished run is reconciled whatever the events: the backstop for a wake-up lost."),
  VMBUILD_SWEEP_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(3600)
    .default(30)
    .describe("How often the sweeper looks for VMs leased without a live run."),
  HOSTNAME: z.string().default("vmbuild").describe("This replica's name (the pod name in a cluster), for leader election and run ownership."),
});

export type ControllerEnv = z.infer<typeof ConfigSchema>;

export function loadConfig(env: NodeJS.ProcessEnv): ControllerEnv {
  const parsed = ConfigSchema.safeParse(env);
  const problems = parsed.success
    ? conflicts(parsed.data, env)
    : parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  if (!parsed.success || problems.length > 0) throw new Error(`invalid configuration: ${problems.join("; ")}`);
  const config = parsed.data;
  // The default per-build cap gives way to a smaller total one; one set on purpose was checked above.
  if (env.VMBUILD_LOG_MAX_BYTES_PER_BUILD === undefined) {
    config.VMBUILD_LOG_MAX_BYTES_PER_BUILD = Math.max(MIN_LOG_BYTES, Math.min(config.VMBUILD_LOG_MAX_BYTES_PER_BUILD, config.VMBUILD_LOG_MAX_BYTES));
  }
  return config;
}

/** Settings valid alone that do not go together. */
function conflicts(config: ControllerEnv, env: NodeJS.ProcessEnv): string[] {
  const problems: string[] = [];
  if (config.VMBUILD_METRICS_PORT !== 0 && config.VMBUILD_METRICS_PORT === config.VMBUILD_HTTP_PORT) {
    problems.push(`VMBUILD_METRICS_PORT: must differ from VMBUILD_HTTP_PORT (both ${config.VMBUILD_HTTP_PORT})`);
  }
  if (env.VMBUILD_LOG_MAX_BYTES_PER_BUILD !== undefined && config.VMBUILD_LOG_MAX_BYTES_PER_BUILD > config.VMBUILD_LOG_MAX_BYTES) {
    problems.push("VMBUILD_LOG_MAX_BYTES_PER_BUILD: must not exceed VMBUILD_LOG_MAX_BYTES (all the logs kept)");
  }
  return problems;
}
