import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import { createContextRepo } from "../test/support/context-repo.js";
import { buildParams, stage, type BenchContext } from "./context.js";
import { memoryOf, MiB } from "./measure.js";
import { finalCondition } from "./observe.js";

// (e) A large repository of incompressible files, served by the test git server, streamed as the build context to
// the VM's real podman service. The stream is timed from the build request ("Building … on VM") to podman's first
// build step (podman reads and unpacks the whole context before it starts the Dockerfile).

export interface ContextStreamResult {
  contextBytes: number;
  reason: string;
  /** Fetching → build request: the git fetch of the repository into the controller's work dir. */
  fetchMs: number | undefined;
  /** Build request → first STEP: the context tar streamed to podman and unpacked there. */
  streamMs: number | undefined;
  mbPerSecond: number | undefined;
  /** Controller VmHWM after the run minus before it. */
  rssGrowthBytes: number;
  peakRssBytes: number;
}

const FILE_BYTES = 16 * MiB;

export async function contextStream(ctx: BenchContext, totalBytes = ctx.smoke ? 16 * MiB : 1024 * MiB): Promise<ContextStreamResult> {
  const { h } = ctx;
  const made = Date.now();
  // The checkout's .git holds the same bytes again (loose objects): without the .dockerignore a user would write,
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
    const at = (test: (message: string) => boolean) => t?.transitions.find((x) => test(x.message))?.at;
    const fetching = at((m) => m.startsWith("Fetching "));
    const building = at((m) => /^Building .+ on VM /.test(m));
    const firstStep = at((m) => m.startsWith("STEP 1/"));
    const streamMs = building && firstStep ? firstStep - building : undefined;
    return {
      contextBytes: totalBytes,
      reason: (run && finalCondition(run)?.reason) ?? "",
      fetchMs: fetching && building ? building - fetching : undefined,
      streamMs,
      mbPerSecond: streamMs ? Math.round(totalBytes / MiB / (streamMs / 1000)) : undefined,
      rssGrowthBytes: after - before,
      peakRssBytes: after,
    };
  } finally {
    await s.stop();
  }
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
