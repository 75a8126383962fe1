import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { parseDuration } from "./spec/duration.js";

// The controller's configuration, from the environment, validated once at start.

const Config = z.object({
  KUBECONFIG: z.string().optional(),
  VMBUILD_HTTP_HOST: z.string().default("0.0.0.0"),
  VMBUILD_HTTP_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  VMBUILD_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error"]).default("info"),
  VMBUILD_WORK_DIR: z.string().default(join(tmpdir(), "vmbuild")),
  VMBUILD_LOG_DIR: z.string().optional(),
  /** Base URL under which users reach this controller's /logs (through the Service or an Ingress). */
  VMBUILD_PUBLIC_URL: z.url().optional(),
  VMBUILD_LOG_MAX_BYTES: z.coerce.number().int().positive().default(1024 ** 3),
  VMBUILD_LOG_MAX_AGE: z
    .string()
    .default("168h")
    .refine((d) => parseDuration(d) !== undefined, { message: "expected a duration such as 72h" })
    .transform((d) => parseDuration(d) ?? 0),
  VMBUILD_PODMAN_PORT: z.coerce.number().int().min(1).max(65535).default(8888),
  VMBUILD_MAX_CONTEXT_BYTES: z.coerce.number().int().positive().default(2 * 1024 ** 3),
  VMBUILD_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(8),
  VMBUILD_NAMESPACE: z.string().default("vmbuild-system"),
  VMBUILD_LEADER_ELECTION: z.enum(["true", "false"]).default("true").transform((v) => v === "true"),
  VMBUILD_LEADER_LEASE_SECONDS: z.coerce.number().int().min(2).max(300).default(15),
  VMBUILD_SWEEP_SECONDS: z.coerce.number().int().min(1).max(3600).default(30),
  HOSTNAME: z.string().default("vmbuild"),
});

export type ControllerEnv = z.infer<typeof Config>;

export function loadConfig(env: NodeJS.ProcessEnv): ControllerEnv {
  const parsed = Config.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`invalid configuration: ${problems}`);
  }
  return parsed.data;
}
