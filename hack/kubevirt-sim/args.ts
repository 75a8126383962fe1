// Command line of the sim, as testenv starts it.
import { resolve } from "node:path";
import { parseArgs } from "node:util";

export interface SimArgs {
  kubeconfig: string;
  stateDir: string;
  /** host:port the build hosts may use over plain HTTP. */
  insecureRegistry: string;
  /** Default delay between VMI creation and starting podman; per-VM annotation overrides it. */
  bootDelayMs: number;
  /** Port every build host's podman service listens on (like KubeVirt VMs, each VM has its own address). */
  port: number;
  nodeName: string;
}

const usage =
  "usage: main.ts --kubeconfig PATH --state-dir DIR --insecure-registry HOST:PORT " +
  "[--boot-delay-ms N] [--port 8888] [--node-name NAME]";

function nonNegativeInt(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

export function parseSimArgs(argv: string[]): SimArgs {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      kubeconfig: { type: "string" },
      "state-dir": { type: "string" },
      "insecure-registry": { type: "string" },
      "boot-delay-ms": { type: "string", default: "0" },
      port: { type: "string", default: "8888" },
      "node-name": { type: "string", default: "kubevirt-sim" },
    },
  });
  const kubeconfig = values.kubeconfig;
  const stateDir = values["state-dir"];
  const insecureRegistry = values["insecure-registry"];
  if (!kubeconfig || !stateDir || !insecureRegistry) throw new Error(usage);
  const port = nonNegativeInt("port", values.port);
  if (port < 1 || port > 65535) throw new Error(`--port out of range: ${port}`);
  return {
    kubeconfig: resolve(kubeconfig),
    stateDir: resolve(stateDir),
    insecureRegistry,
    bootDelayMs: nonNegativeInt("boot-delay-ms", values["boot-delay-ms"]),
    port,
    nodeName: values["node-name"],
  };
}
