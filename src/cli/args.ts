import { parseArgs } from "node:util";

// The command line of `kubectl vmbuild`, parsed with node:util (no dependency). Pure: what to do, or a usage error.

export const USAGE = `Usage:
  kubectl vmbuild logs RUN [-f] [--attempt N]   print a run's build log (-f: follow it until it is complete)
  kubectl vmbuild describe RUN                  the run's condition, phases, VMs, queue position and results
  kubectl vmbuild pools                         each pool's VMs: free, leased (to which run), warm

Flags:
  -n, --namespace NS     the namespace (default: the kubeconfig context's, else "default")
      --kubeconfig PATH  the kubeconfig (default: $KUBECONFIG, else ~/.kube/config)
      --context NAME     the kubeconfig context (default: its current context)
  -h, --help             this text
`;

export interface Connection {
  namespace?: string;
  kubeconfig?: string;
  context?: string;
}

export type Command =
  | { kind: "help" }
  | { kind: "logs"; run: string; follow: boolean; attempt?: number; conn: Connection }
  | { kind: "describe"; run: string; conn: Connection }
  | { kind: "pools"; conn: Connection };

/** A mistake on the command line: printed with the usage, exit code 2. */
export class UsageError extends Error {}

const OPTIONS = {
  namespace: { type: "string", short: "n" },
  kubeconfig: { type: "string" },
  context: { type: "string" },
  follow: { type: "boolean", short: "f" },
  attempt: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

export function parseCommand(argv: readonly string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length === 0) return { kind: "help" };
  const [verb, ...rest] = positionals;
  const conn: Connection = {
    ...(values.namespace !== undefined ? { namespace: nonEmpty("--namespace", values.namespace) } : {}),
    ...(values.kubeconfig !== undefined ? { kubeconfig: nonEmpty("--kubeconfig", values.kubeconfig) } : {}),
    ...(values.context !== undefined ? { context: nonEmpty("--context", values.context) } : {}),
  };
  const only = (allowed: readonly string[]) => {
    const used = (["follow", "attempt"] as const).filter((k) => values[k] !== undefined && !allowed.includes(k));
    if (used.length > 0) throw new UsageError(`${verb}: unknown flag --${used[0]}`);
  };
  switch (verb) {
    case "logs": {
      only(["follow", "attempt"]);
      const run = oneRun(verb, rest);
      const attempt = values.attempt === undefined ? undefined : attemptNumber(values.attempt);
      return { kind: "logs", run, follow: values.follow === true, ...(attempt !== undefined ? { attempt } : {}), conn };
    }
    case "describe":
      only([]);
      return { kind: "describe", run: oneRun(verb, rest), conn };
    case "pools":
      only([]);
      if (rest.length > 0) throw new UsageError(`pools takes no arguments (got "${rest[0]}")`);
      return { kind: "pools", conn };
    default:
      throw new UsageError(`unknown command "${verb}"`);
  }
}

function oneRun(verb: string, rest: readonly string[]): string {
  if (rest.length !== 1 || !rest[0]) throw new UsageError(`${verb} takes one run name (got ${rest.length})`);
  return rest[0];
}

function attemptNumber(raw: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n)) throw new UsageError(`--attempt: expected 0, 1, ... (got "${raw}")`);
  return n;
}

function nonEmpty(flag: string, value: string): string {
  if (value === "") throw new UsageError(`${flag}: expected a value`);
  return value;
}
