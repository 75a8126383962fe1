// npm run bench [-- --scenarios a,b,c,d,e,t] [--smoke] [--runs N] [--boot-delay-ms N] [--replicas N] [--cpu-prof] [--node-args="FLAGS"] [--out bench/results]: the benchmark suite against the testenv
// (issue #6). Progress on stderr; the report's paths on stdout. Brings the testenv up if it is down, and down again.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { z } from "zod";
import { down, readTestenv, up } from "../hack/testenv/index.js";
import { openHarness } from "../test/support/harness.js";
import { runBench, SCENARIOS, writeReport } from "./report.js";

const Options = z.object({
  scenarios: z
    .string()
    .default(SCENARIOS.join(","))
    .transform((s) => s.split(",").map((x) => x.trim()))
    .pipe(z.array(z.enum(SCENARIOS)).min(1)),
  smoke: z.boolean().default(false),
  runs: z.coerce.number().int().positive().optional(),
  // Scenario (a)'s stand-in boot: 0 (its target's setting) leaves no time to overlap with the boot.
  "boot-delay-ms": z.coerce.number().int().min(0).max(60_000).default(0),
  replicas: z.coerce.number().int().min(1).max(4).default(1),
  "cpu-prof": z.boolean().default(false),
  // Extra flags for the controller's node (e.g. V8 heap sizes), to measure one before putting it in the image.
  "node-args": z
    .string()
    .default("")
    .transform((s) => s.split(/\s+/).filter((x) => x !== "")),
  out: z.string().default(new URL("results", import.meta.url).pathname),
});

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenarios: { type: "string" },
      smoke: { type: "boolean" },
      runs: { type: "string" },
      "boot-delay-ms": { type: "string" },
      replicas: { type: "string" },
      "cpu-prof": { type: "boolean" },
      "node-args": { type: "string" },
      out: { type: "string" },
    },
  });
  const parsed = Options.safeParse(values);
  if (!parsed.success) {
    throw new Error(`usage: npm run bench -- [--scenarios a,b,c,d,e,t] [--smoke] [--runs N] [--boot-delay-ms N] [--replicas N] [--cpu-prof] [--node-args="FLAGS"] [--out DIR]: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
  }
  const opts = parsed.data;
  const progress = (message: string) => process.stderr.write(`bench: ${message}\n`);
  // Full runs measure the controller as deployed (compiled); the smoke checks correctness and runs it from src/.
  const compiled = !opts.smoke;
  if (compiled) {
    progress("npm run build");
    await promisify(execFile)("npm", ["run", "build"], { cwd: new URL("..", import.meta.url).pathname });
  }
  const wasUp = readTestenv() !== undefined;
  await up();
  const h = await openHarness("bench");
  try {
    const cpuProfDir = opts["cpu-prof"] ? join(opts.out, "profiles") : undefined;
    const ctx = { h, smoke: opts.smoke, compiled, progress, ...(opts.runs ? { runs: opts.runs } : {}), bootDelayMs: opts["boot-delay-ms"], replicas: opts.replicas, ...(cpuProfDir ? { cpuProfDir } : {}), nodeArgs: opts["node-args"] };
    const report = await runBench(ctx, opts.scenarios, (r) =>
      writeReport(r, opts.out).then(() => undefined),
    );
    const paths = await writeReport(report, opts.out);
    process.stdout.write(`${paths.md}\n${paths.json}\n`);
    for (const t of report.targets) progress(`${t.met ? "met   " : "MISSED"} (${t.scenario}) ${t.target}: ${t.measured}`);
    if (report.errors.length > 0) process.exitCode = 1;
  } finally {
    await h.close();
    if (!wasUp) await down();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
