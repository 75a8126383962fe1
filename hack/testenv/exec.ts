// Running short-lived commands with their output captured, failing with the command and its stderr in the message.
import { spawn } from "node:child_process";
import { access, constants } from "node:fs/promises";
import { join } from "node:path";

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** A command that failed: the message has the command and the tail of its output, `stderr` all of it. */
export class RunError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", (err) => reject(new Error(`cannot run ${cmd}: ${err.message}`)));
    child.on("close", (code, signal) => {
      if (code === 0) return resolvePromise({ stdout, stderr });
      const why = signal ? `killed by ${signal}` : `exit code ${code}`;
      const tail = (stderr || stdout).trim().split("\n").slice(-15).join("\n");
      reject(new RunError(`${cmd} ${args.join(" ")} failed (${why})${tail ? `:\n${tail}` : ""}`, stderr));
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Absolute path of a command found on PATH, or undefined. */
export async function which(cmd: string): Promise<string | undefined> {
  for (const dir of (process.env["PATH"] ?? "").split(":")) {
    if (!dir) continue;
    const candidate = join(dir, cmd);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}
