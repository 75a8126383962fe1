import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";

/** A child process a test started, stopped by its PID only. */
export interface TestProcess {
  readonly pid: number;
  /** Last stdout/stderr bytes, for failure messages. */
  output(): string;
  /** Resolves once the process has exited. */
  readonly exited: Promise<void>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

const OUTPUT_LIMIT = 64 * 1024;

export function startProcess(
  command: string,
  args: readonly string[],
  /** outputFile: every byte it prints, kept whole (output() keeps only the last 64 KiB). */
  options: { env?: NodeJS.ProcessEnv; cwd?: string; outputFile?: string } = {},
): TestProcess {
  const child: ChildProcess = spawn(command, args, {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`could not start ${command}`);
  let output = "";
  const file = options.outputFile === undefined ? undefined : createWriteStream(options.outputFile, { flags: "a" });
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString("utf8")).slice(-OUTPUT_LIMIT);
    file?.write(chunk);
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  let running = true;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => {
      running = false;
      file?.end();
      resolve();
    });
    child.once("error", (error) => {
      collect(Buffer.from(String(error)));
      running = false;
      resolve();
    });
  });

  return {
    pid,
    output: () => output,
    exited,
    async stop(graceMs = 10_000) {
      if (!running) return;
      process.kill(pid, "SIGTERM");
      const timer = setTimeout(() => {
        if (running) process.kill(pid, "SIGKILL");
      }, graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Polls `probe` until it resolves true, failing after `timeoutMs` with `describe()` in the message. */
export async function waitUntil(
  probe: () => Promise<boolean>,
  timeoutMs: number,
  describe: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Waits until `ready` resolves true while `proc` runs. Fails at once if it exits first, or after `timeoutMs`,
 * with `describe()` in the message; either way it is stopped (2 s grace) before the error is thrown.
 */
export async function waitReady(
  proc: TestProcess,
  ready: () => Promise<boolean>,
  timeoutMs: number,
  describe: () => string,
): Promise<void> {
  let exited = false;
  void proc.exited.then(() => {
    exited = true;
  });
  try {
    await waitUntil(async () => exited || (await ready()), timeoutMs, describe);
    if (exited) throw new Error(`exited before it was ready: ${describe()}`);
  } catch (err) {
    await proc.stop(2_000);
    throw err;
  }
}
