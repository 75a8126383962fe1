import type { Harness } from "../test/support/harness.js";
import { startController, type ControllerProcess } from "../test/support/controller.js";
import { overlapping, watchLeases, type LeaseInterval } from "../test/support/lease-watch.js";
import { watchNamespace, type NamespaceWatch } from "./observe.js";

// What every scenario starts from: the test harness (testenv, admin client, git server), a fresh namespace with
// its watches, and a controller process of its own so that its peak RSS belongs to that scenario alone.

export interface BenchContext {
  h: Harness;
  /** Tiny sizes: CI checks the report's shape, not the figures. */
  smoke: boolean;
  /** Run the controller from dist/ (as deployed: without tsx's compiler in its memory), else from src/ via tsx. */
  compiled: boolean;
  /** Overrides the run count of scenarios a and b (a quick look at a change before a full-size run). */
  runs?: number;
  /** Scenario (a)'s stand-in boot delay; its target holds for 0. */
  bootDelayMs?: number;
  /** Directory for the controller's V8 CPU profile (`--cpu-prof`), written when it exits. */
  cpuProfDir?: string;
  /** Extra flags for the controller's node. */
  nodeArgs?: string[];
  /** Controller replicas per scenario (leader election on, every replica building); default 1. */
  replicas?: number;
  progress(message: string): void;
}

export interface Stage {
  ns: string;
  watch: NamespaceWatch;
  leases: { intervals(): LeaseInterval[]; stop(): void };
  /** The first replica: the one the single-replica figures are of. */
  controller: ControllerProcess;
  /** Every replica of the scenario, the first included. */
  controllers: ControllerProcess[];
  stop(): Promise<void>;
}

/** A namespace with a pool of `vms` VMs (template annotations as given), watched, and a controller just for it. */
export async function stage(
  ctx: BenchContext,
  name: string,
  vms: number,
  /** On the VM template (the stand-in's boot delay). */
  annotations: Record<string, string> = {},
  /** On the pool itself (warm settings). */
  poolAnnotations: Record<string, string> = {},
): Promise<Stage> {
  const { cluster, env } = ctx.h;
  const ns = await cluster.namespace(`bench-${name}`);
  const watch = await watchNamespace(env.adminKubeconfig, ns);
  const leases = await watchLeases(env.adminKubeconfig, ns);
  await cluster.pool(ns, "builders", vms, annotations, { annotations: poolAnnotations });
  // info, not the harness's debug: the bench measures the controller as operated.
  const controllers: ControllerProcess[] = [];
  for (let i = 0; i < (ctx.replicas ?? 1); i++) {
    controllers.push(
      await startController(env, {
        name: `bench-${name}${i > 0 ? `-${i}` : ""}`,
        compiled: ctx.compiled,
        extraEnv: { VMBUILD_LOG_LEVEL: "info" },
        nodeArgs: [...(ctx.nodeArgs ?? []), ...(ctx.cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${ctx.cpuProfDir}/${name}`] : [])],
      }),
    );
  }
  // The leader hands runs only to replicas it has seen renew their Lease (every 2.5 s by default).
  if (controllers.length > 1) await new Promise((resolve) => setTimeout(resolve, 6_000));
  const controller = controllers[0] as ControllerProcess;
  return {
    ns,
    watch,
    leases,
    controller,
    controllers,
    async stop() {
      await Promise.all(controllers.map((c) => c.stop()));
      watch.stop();
      leases.stop();
    },
  };
}

/** CustomRun params for a build of `repo` (served by the harness's git server) pushed to a per-run image. */
export function buildParams(
  ctx: BenchContext,
  ns: string,
  repo: string,
  run: string,
  extra: Record<string, string | string[]> = {},
): Record<string, string | string[]> {
  const { env, git } = ctx.h;
  return {
    pool: "builders",
    gitUrl: `${git.url}/${repo}.git`,
    image: `${env.registry.host}/${imageRepository(ns, run)}:1`,
    registrySecret: "registry",
    pullSecret: "registry",
    tlsVerify: "false",
    ...extra,
  };
}

/** The registry repository a run pushes to (what the registry's log names). */
export function imageRepository(ns: string, run: string): string {
  return `${ns}/${run}`;
}

/** Pairs of lease intervals on one VM that overlapped in time. */
export function doubleLeases(intervals: readonly LeaseInterval[]): number {
  return overlapping(intervals).length;
}

export function runNames(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(3, "0")}`);
}

/** Runs `task` over `items` with at most `limit` at once. */
export async function eachLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await task(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
