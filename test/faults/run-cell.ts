import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { restartComponent, stopComponent } from "../../hack/testenv/index.js";
import { killTree } from "../../hack/kubevirt-sim/processes.js";
import { readRecord, startedVMs, waitForRecord } from "../../hack/kubevirt-sim/record.js";
import { succeeded, type CustomRunObject } from "../support/cluster.js";
import { createContextRepo } from "../support/context-repo.js";
import type { SupervisedController } from "../support/controller.js";
import type { Harness } from "../support/harness.js";
import { waitUntil } from "../support/processes.js";
import { cellName, FAULTS, PHASES, type ApplicableCell, type Cell, type Fault, type Phase } from "./cells.js";

// Runs one cell of the fault matrix against the real testenv: hold a run in the phase, inject the fault, clear
// it, and check the run's terminal state, the scratch of every VM and the release of every lease.

/** Controller settings for the matrix: 20 s leases (leader and replica) outlive an API server restart (about 8 s here). */
export const FAULT_CONTROLLER_ENV = { VMBUILD_SWEEP_SECONDS: "2", VMBUILD_LEADER_LEASE_SECONDS: "20", VMBUILD_OWNER_LEASE_SECONDS: "20" };

/** Fault cleared → run terminal, every VM scratched and every lease released: at most this long. */
export const RECOVERY_BOUND_MS = 120_000;

const STALL_MS = 8_000;
const BOOT_DELAY_MS = "8000";

export interface CellResult {
  cell: Cell;
  pass: boolean;
  /** Fault cleared → terminal and scratched; undefined for cells that do not apply or failed before that. */
  recoveryMs?: number;
  /** The terminal reason seen, or why the cell failed. */
  detail: string;
}

export interface FaultContext {
  h: Harness;
  controller: SupervisedController;
}

/** The build contexts the cells use, in the harness's git server. */
export async function createFaultRepos(h: Harness): Promise<void> {
  const base = h.env.baseImage;
  await createContextRepo(h.repos, "quick", { Dockerfile: `FROM ${base}\nRUN true\n` });
  await createContextRepo(h.repos, "slow", { Dockerfile: `FROM ${base}\nRUN sleep 20\n` });
  // Random bytes do not compress: the push of this layer takes long enough to be hit.
  await createContextRepo(h.repos, "big", { Dockerfile: `FROM ${base}\nRUN head -c 100000000 /dev/urandom > /blob\n` });
}

const REPO: Record<Phase, string> = { queued: "quick", starting: "quick", building: "slow", pushing: "big", scratching: "quick" };

export async function runCell(ctx: FaultContext, cell: ApplicableCell): Promise<CellResult> {
  const restartsBefore = ctx.controller.restarts();
  try {
    const { recoveryMs, run } = await drive(ctx, cell);
    // Besides the kill itself: a controller that could not renew its leader lease in time exits (by design).
    const restarts = ctx.controller.restarts() - restartsBefore;
    const c = succeeded(run);
    const problems: string[] = [];
    if (c?.reason !== cell.expect.reason) problems.push(`ended ${c?.reason ?? "?"}, expected ${cell.expect.reason}`);
    if (cell.expect.message && !cell.expect.message.test(c?.message ?? "")) {
      problems.push(`message ${JSON.stringify(c?.message)} does not match ${String(cell.expect.message)}`);
    }
    const recoveries = (run.status?.extraFields as { recoveries?: number } | undefined)?.recoveries ?? 0;
    if (recoveries !== (cell.expect.recoveries ?? 0)) problems.push(`re-run ${recoveries} times, expected ${cell.expect.recoveries ?? 0}`);
    if ((run.status?.retriesStatus ?? []).length > 0) problems.push("spent a retry");
    if (recoveryMs > RECOVERY_BOUND_MS) problems.push(`recovered in ${recoveryMs} ms, over the bound of ${RECOVERY_BOUND_MS} ms`);
    const detail = `${problems.length > 0 ? problems.join("; ") : (c?.reason ?? "?")}; controller restarts: ${restarts}`;
    return { cell, pass: problems.length === 0, recoveryMs, detail };
  } catch (err) {
    return { cell, pass: false, detail: err instanceof Error ? err.message.slice(0, 500) : String(err) };
  }
}

async function drive(ctx: FaultContext, cell: ApplicableCell): Promise<{ recoveryMs: number; run: CustomRunObject }> {
  const { h, controller } = ctx;
  const { cluster, env, git } = h;
  const ns = await cluster.namespace(`f-${cell.phase}-${cell.fault}`.slice(0, 50));
  const annotations: Record<string, string> =
    cell.fault === "vm-never-ready"
      ? { "sim.vmbuild.dev/never-ready": "true" }
      : cell.phase === "queued" || cell.phase === "starting"
        ? { "sim.vmbuild.dev/boot-delay-ms": BOOT_DELAY_MS }
        : {};
  // Two VMs where a second one may be tried (a VM that never gets ready); one elsewhere, so a queue forms.
  await cluster.pool(ns, "builders", cell.phase === "starting" ? 2 : 1, annotations);
  const params = (name: string, repo: string) => ({
    pool: "builders",
    gitUrl: `${git.url}/${repo}.git`,
    image: `${env.registry.host}/faults/${ns}-${name}:1`,
    registrySecret: "registry",
    pullSecret: "registry",
    tlsVerify: "false",
    ...(cell.fault === "vm-never-ready" ? { readyTimeout: "3s" } : {}),
  });
  const others: string[] = [];
  if (cell.phase === "queued") {
    others.push("blocker");
    await cluster.createRun(ns, "blocker", params("blocker", "quick"));
    await cluster.waitForReason(ns, "blocker", ["StartingVM"]);
  }
  await cluster.createRun(ns, "run", params("run", REPO[cell.phase]));
  await reach(ctx, ns, cell);

  const clearedAt = await inject(ctx, ns, cell);

  const runs = await Promise.all(["run", ...others].map((n) => cluster.waitForRun(ns, n, RECOVERY_BOUND_MS + 60_000)));
  await h.everyVMScratched(ns);
  await waitUntil(async () => (await cluster.vmis(ns)).length === 0, 30_000, () => `VMIs left in ${ns}`);
  const recoveryMs = Date.now() - clearedAt;
  await controller.settled();
  for (const other of runs.slice(1)) {
    if (succeeded(other)?.reason !== "Succeeded") {
      throw new Error(`the other run ${other.metadata?.name} ended ${JSON.stringify(succeeded(other))}`);
    }
  }
  const [run] = runs;
  if (!run) throw new Error("unreachable");
  return { recoveryMs, run };
}

/** Resolves once the run is in the cell's phase (for podman faults while starting: once the VM's podman started). */
async function reach(ctx: FaultContext, ns: string, cell: Cell): Promise<void> {
  const { cluster, env } = ctx.h;
  const timeout = 120_000;
  switch (cell.phase) {
    case "queued":
      await cluster.waitForReason(ns, "run", ["WaitingForVM"], timeout);
      return;
    case "starting":
      await cluster.waitForReason(ns, "run", ["StartingVM"], timeout);
      if (cell.fault === "podman-killed" || cell.fault === "podman-unreachable") {
        await waitForRecord(env.simStateDir, (e) => e.namespace === ns && e.event === "podman-started", timeout);
      }
      return;
    case "building":
      await cluster.waitForReason(ns, "run", ["Building"], timeout, /STEP 2\/2/);
      return;
    case "pushing":
      await cluster.waitForReason(ns, "run", ["Pushing"], timeout);
      return;
    case "scratching":
      await cluster.watchForReason(ns, "run", ["Scratching"], timeout);
      return;
  }
}

/** Injects the fault and clears it again; resolves with the time it was cleared. */
async function inject(ctx: FaultContext, ns: string, cell: Cell): Promise<number> {
  const { h, controller } = ctx;
  switch (cell.fault) {
    case "controller-kill":
      await controller.kill();
      await controller.settled();
      return Date.now();
    case "apiserver-restart":
      await restartComponent("apiserver");
      return Date.now();
    case "etcd-restart":
      await restartComponent("etcd");
      return Date.now();
    case "podman-killed":
      await killTree(podmanPid(ctx, ns));
      return Date.now();
    case "podman-unreachable": {
      const pid = podmanPid(ctx, ns);
      signalGroup(pid, "SIGSTOP");
      await new Promise((resolve) => setTimeout(resolve, STALL_MS));
      signalGroup(pid, "SIGCONT");
      return Date.now();
    }
    case "registry-down": {
      const stopped = await stopComponent("registry");
      try {
        if (cell.phase === "pushing") {
          await waitUntil(
            async () => (succeeded(await h.cluster.getRun(ns, "run"))?.reason ?? "Pushing") !== "Pushing",
            RECOVERY_BOUND_MS,
            () => "the run stayed in Pushing with the registry down",
          );
        } else {
          await new Promise((resolve) => setTimeout(resolve, STALL_MS));
        }
      } finally {
        await stopped.start();
      }
      return Date.now();
    }
    case "vm-never-ready":
      // Set on the pool from the start: it "clears" never, so recovery counts from the run reaching StartingVM.
      return Date.now();
  }
}

/** The PID of the podman service the stand-in started last in the namespace (the run's VM), from its record. */
function podmanPid(ctx: FaultContext, ns: string): number {
  const started = startedVMs(readRecord(ctx.h.env.simStateDir).filter((e) => e.namespace === ns));
  const pid = started[started.length - 1]?.pid;
  if (pid === undefined) throw new Error(`no podman service was started in ${ns}`);
  return pid;
}

/** The service leads its own process group (the stand-in starts it detached): stop or continue all of it. */
function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch (err) {
    // Gone already (e.g. scratched while stopped): nothing to continue.
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/** The matrix as a markdown table: one row per phase, one column per fault, each cell pass/fail and recovery time. */
export function formatTable(results: readonly CellResult[]): string {
  const find = (fault: Fault, phase: Phase) => results.find((r) => r.cell.fault === fault && r.cell.phase === phase);
  const mark = (r: CellResult | undefined): string => {
    if (!r) return "not run";
    if ("notApplicable" in r.cell) return "n/a";
    return r.pass ? `pass ${((r.recoveryMs ?? 0) / 1000).toFixed(1)} s` : "**FAIL**";
  };
  const header = `| phase \\ fault | ${FAULTS.join(" | ")} |`;
  const rule = `| --- | ${FAULTS.map(() => "---").join(" | ")} |`;
  const rows = PHASES.map((p) => `| ${p} | ${FAULTS.map((f) => mark(find(f, p))).join(" | ")} |`);
  const applicable = results.filter((r) => !("notApplicable" in r.cell));
  const passed = applicable.filter((r) => r.pass).length;
  const details = results.map((r) => `- ${cellName(r.cell)}: ${r.pass ? "pass" : "FAIL"}${r.recoveryMs !== undefined ? ` in ${(r.recoveryMs / 1000).toFixed(1)} s` : ""}: ${r.detail}`);
  return [
    `${passed}/${applicable.length} applicable cells passed (recovery = fault cleared → run terminal, VMs scratched, leases released; bound ${RECOVERY_BOUND_MS / 1000} s).`,
    "",
    header,
    rule,
    ...rows,
    "",
    ...details,
    "",
  ].join("\n");
}

/** Prints the table and writes it to test-artifacts/<file>. */
export async function reportTable(results: readonly CellResult[], file: string): Promise<void> {
  const table = formatTable(results);
  const dir = join(new URL("../..", import.meta.url).pathname, "test-artifacts");
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, file), `# Fault matrix\n\n${new Date().toISOString()}\n\n${table}`);
  process.stdout.write(`\n${table}\n`);
}
