import { VMBuildLogSchema, vmbuildLogName, type VMBuildLog } from "../api/vmbuild-log.js";
import { isFinished, isOurs, parseRun, type CustomRun } from "../tekton/customrun.js";
import { readRunState } from "../tekton/run-state.js";
import { CliError, type Reader } from "./api.js";
import { formatDescribe, queuePlaces, type QueueInfo } from "./describe.js";
import { newOutput } from "./follow.js";
import { formatPools, poolViews } from "./pools.js";

// The three commands over a Reader: what they read, in which order, and when they give up.

export interface Output {
  stdout(text: string): void;
  stderr(text: string): void;
}

export interface FollowTiming {
  /** Between two reads of a followed log. The controller writes it every VMBUILD_LOG_SYNC_SECONDS (10 s). */
  pollMs: number;
  sleep(ms: number): Promise<void>;
}

/** Reads of a finished run that still leave its log incomplete before -f stops waiting for the last write. */
const FINISHED_READS = 3;

export async function logs(
  reader: Reader,
  cmd: { run: string; follow: boolean; attempt?: number },
  out: Output,
  timing: FollowTiming,
): Promise<void> {
  const run = await readRun(reader, cmd.run);
  const attempt = cmd.attempt ?? readRunState(run.status?.extraFields)?.attempt ?? 0;
  const name = vmbuildLogName(run.metadata.uid, attempt);
  const what = `${run.metadata.namespace}/${run.metadata.name}${attempt > 0 || cmd.attempt !== undefined ? ` (attempt ${attempt})` : ""}`;
  let stored = await readLog(reader, name);
  if (!cmd.follow) {
    if (!stored) throw new CliError(`no log yet for ${what}: the controller stores it once its build has run a few seconds (-f waits for it)`);
    out.stdout(stored.text);
    return;
  }
  let printed = "";
  let finishedReads = 0;
  for (;;) {
    if (stored) {
      out.stdout(newOutput(printed, stored.text));
      const unchanged = stored.text === printed;
      printed = stored.text;
      if (stored.complete) return;
      // A log whose last write never came (its writer gave up) would be followed forever: ask the run.
      if (unchanged && isFinished((await readRun(reader, cmd.run)).status) && ++finishedReads >= FINISHED_READS) {
        out.stderr(`the run ${what} has finished but its stored log was never marked complete: it may lack its end\n`);
        return;
      }
    } else if (printed !== "") {
      throw new CliError(`the log of ${what} is gone: the run was deleted`);
    } else if (isFinished((await readRun(reader, cmd.run)).status) && ++finishedReads >= FINISHED_READS) {
      throw new CliError(`no log for ${what}: the run finished without one (it ended before its build started)`);
    }
    await timing.sleep(timing.pollMs);
    stored = await readLog(reader, name);
  }
}

export async function describe(reader: Reader, runName: string, out: Output): Promise<void> {
  const run = await readRun(reader, runName);
  const state = readRunState(run.status?.extraFields);
  let queue: QueueInfo = { places: [], scope: "cluster" };
  if (state?.phase === "Queued") {
    try {
      const { items, scope } = await reader.listRuns();
      queue = { places: queuePlaces(run, state, items), scope };
    } catch (err) {
      queue = { unknown: (err as Error).message };
    }
  }
  out.stdout(formatDescribe(run, queue));
}

export async function pools(reader: Reader, out: Output, now: Date): Promise<void> {
  // One after another: a refusal names the first list in this order, whichever would have answered first.
  const poolList = await reader.listPools();
  const vms = await reader.listVMs();
  const vmis = await reader.listVMIs();
  const leases = await reader.listLeases();
  // The runs only add each holder's phase and the queues: without them, the VMs are still shown.
  const runs = await reader.listRuns().then(
    (r) => r.items,
    () => [],
  );
  out.stdout(formatPools(poolViews({ pools: poolList, vms, vmis, leases, runs }, now), reader.namespace));
}

async function readRun(reader: Reader, name: string): Promise<CustomRun> {
  const raw = await reader.getRun(name);
  if (!isOurs(raw)) throw new CliError(`error: ${reader.namespace}/${name} is not a vmbuild run (its customRef is not vmbuild.dev/v1alpha1 VMBuild)`);
  const { run, problem } = parseRun(raw);
  if (!run) throw new CliError(`error: the run ${reader.namespace}/${name} is malformed: ${problem}`);
  return run;
}

async function readLog(reader: Reader, name: string): Promise<VMBuildLog | undefined> {
  const raw = await reader.getLog(name);
  if (raw === undefined) return undefined;
  const parsed = VMBuildLogSchema.safeParse(raw);
  if (!parsed.success) throw new CliError(`error: VMBuildLog ${reader.namespace}/${name} is malformed: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}
