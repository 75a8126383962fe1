#!/usr/bin/env node
// `kubectl vmbuild`: a kubectl plugin (kubectl runs `kubectl-vmbuild` from PATH) reading vmbuild's runs, their
// stored build logs and the pools with the user's own kubeconfig. Exit codes: 0 done, 1 an error, 2 a usage error.
import { setTimeout as sleep } from "node:timers/promises";
import { CliError, kubeReader, loadConfig } from "./api.js";
import { parseCommand, USAGE, UsageError, type Command } from "./args.js";
import { describe, logs, pools, type Output } from "./commands.js";

const output: Output = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
};

async function main(argv: readonly string[]): Promise<number> {
  let cmd: Command;
  try {
    cmd = parseCommand(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    output.stderr(`error: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (cmd.kind === "help") {
    output.stdout(USAGE);
    return 0;
  }
  try {
    const reader = kubeReader(loadConfig(cmd.conn), cmd.conn);
    if (cmd.kind === "logs") await logs(reader, cmd, output, { pollMs: 2000, sleep: (ms) => sleep(ms) });
    else if (cmd.kind === "describe") await describe(reader, cmd.run, output);
    else await pools(reader, output, new Date());
    return 0;
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    output.stderr(`${err.message}\n`);
    return err.code;
  }
}

// Exit once stdout is flushed (a pipe may still hold the log).
const code = await main(process.argv.slice(2));
process.stdout.write("", () => process.exit(code));
