import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { createContextRepo } from "../test/support/context-repo.js";
import { buildParams, stage, type BenchContext } from "./context.js";
import { controllerLogTimes, MiB } from "./measure.js";
import { memoryOf } from "../test/support/proc-stats.js";
import { finalCondition } from "./observe.js";

// (e) A large repository of incompressible files, served by the test git server, streamed as the build context to
// the VM's real podman service. Two figures: the send, from the build request until the controller's HTTP client
// has read the whole tar (the controller's build log line `context: … sent to VM … in …`), and the build request
// ("Building … on VM") to podman's first build step, which adds podman writing and unpacking the whole context
// before it starts the Dockerfile.

export interface ContextStreamResult {
  contextBytes: number;
  reason: string;
  /**
   * Lease → build request: mostly the git fetch into the controller's work dir, which starts with the lease and
   * overlaps the boot (0 s here).
   */
  fetchMs: number | undefined;
  /** Build request → whole tar sent, as the controller's build log states it. */
  sendMs: number | undefined;
  /** The controller's rate for that send: tar bytes (headers included) per second, MiB/s. */
  sendMiBps: number | undefined;
  /** The same in MB/s (10⁶ bytes), the unit of the target. */
  sendMBps: number | undefined;
  /** Build request → podman's first STEP (the controller's log times): the send plus podman writing and unpacking the context. */
  toFirstStepMs: number | undefined;
  /** The context's file bytes over toFirstStepMs, MiB/s. */
  toFirstStepMiBps: number | undefined;
  /** Controller VmHWM after the run minus before it. */
  rssGrowthBytes: number;
  peakRssBytes: number;
}

const FILE_BYTES = 16 * MiB;

export async function contextStream(ctx: BenchContext, totalBytes = ctx.smoke ? 16 * MiB : 1024 * MiB): Promise<ContextStreamResult> {
  const { h } = ctx;
  const made = Date.now();
  // The checkout's .git holds the same bytes again: without the .dockerignore a user would write,
  // the context is twice the repository and over the controller's 2 GiB limit.
  const files = { Dockerfile: `FROM ${h.env.baseImage}\nLABEL vmbuild.dev/bench=context\n`, ".dockerignore": ".git\n" };
  await createContextRepo(h.repos, "large", files, (dir) => generate(join(dir, "data"), totalBytes));
  // Random data neither deflates nor deltas: without these, the repack and every fetch's upload-pack spend minutes
  // on a delta search over 16 MiB blobs. The fetch then sends the pack as it lies.
  const git = (...args: string[]) => promisify(execFile)("git", args, { cwd: join(h.repos, "large.git") });
  await git("config", "pack.window", "0");
  await git("config", "pack.compression", "0");
  await git("repack", "-a", "-d", "-q");
  ctx.progress(`context: ${totalBytes / MiB} MiB repository ready in ${Date.now() - made} ms`);

  const s = await stage(ctx, "context", 1, { "sim.vmbuild.dev/boot-delay-ms": "0" });
  try {
    const before = memoryOf(s.controller.pid).peak;
    await h.cluster.createRun(s.ns, "large", buildParams(ctx, s.ns, "large", "large"));
    const [run] = await s.watch.waitForRuns(["large"], 1_800_000);
    const after = memoryOf(s.controller.pid).peak;
    const t = s.watch.runs.get("large");
    const leased = t?.transitions.find((x) => x.reason === "StartingVM")?.at;
    // The controller's own log: the status shows neither the fetch (it overlaps the boot) nor every STEP.
    const logged = (message: string) => controllerLogTimes(s.controller.outputPath, message).get(`${s.ns}/large`);
    const building = logged("build request sent");
    const firstStep = logged("first build step");
    const toFirstStepMs = building && firstStep ? firstStep - building : undefined;
    // No log (the run never started): the send is reported unknown, the other figures still count.
    const log = await readFile(join(s.controller.logDir, s.ns, "large", `${run?.metadata?.uid}-0.log`), "utf8").catch(() => "");
    const sent = sentLine(log);
    return {
      contextBytes: totalBytes,
      reason: (run && finalCondition(run)?.reason) ?? "",
      fetchMs: leased && building ? building - leased : undefined,
      sendMs: sent?.ms,
      sendMiBps: sent?.mibps,
      sendMBps: sent && Math.round(sent.mibps * (MiB / 1e6)),
      toFirstStepMs,
      toFirstStepMiBps: toFirstStepMs ? Math.round(totalBytes / MiB / (toFirstStepMs / 1000)) : undefined,
      rssGrowthBytes: after - before,
      peakRssBytes: after,
    };
  } finally {
    await s.stop();
  }
}

/** Duration and rate of the controller's `context: 1.0 GiB sent to VM vm-1 in 5.1 s (201 MiB/s)`. */
function sentLine(log: string): { ms: number; mibps: number } | undefined {
  const m = /^context: .* sent to VM \S+ in ([\d.]+) (s|ms) \((\d+) MiB\/s\)$/m.exec(log);
  if (!m) return undefined;
  return { ms: Number(m[1]) * (m[2] === "s" ? 1000 : 1), mibps: Number(m[3]) };
}

/** `totalBytes` of random data in files of 16 MiB under `dir`. */
async function generate(dir: string, totalBytes: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (let i = 0; i * FILE_BYTES < totalBytes; i++) {
    const size = Math.min(FILE_BYTES, totalBytes - i * FILE_BYTES);
    await pipeline(
      (function* () {
        for (let left = size; left > 0; left -= MiB) yield randomBytes(Math.min(MiB, left));
      })(),
      createWriteStream(join(dir, `blob-${String(i).padStart(4, "0")}.bin`)),
    );
  }
}
