// Command line of the sim, as testenv starts it.
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import type { BridgeConfig } from "./network.js";

export interface SimArgs {
  kubeconfig: string;
  stateDir: string;
  /** host:port the build hosts may use over plain HTTP. */
  insecureRegistry: string;
  /** Default delay between VMI creation and starting podman; per-VM annotation overrides it. */
  bootDelayMs: number;
  /** Port of podman on VMs that serve it on TCP (like KubeVirt VMs, each VM has its own address). */
  port: number;
  /** The testenv's bridge that VMs' network namespaces are plugged into. */
  bridge: BridgeConfig;
  /** host_ed25519 and authorized_keys of every VM's sshd. */
  sshDir: string;
  nodeName: string;
}

const usage =
  "usage: main.ts --kubeconfig PATH --state-dir DIR --insecure-registry HOST:PORT --bridge NAME " +
  "--gateway A.B.C.1/24 --ssh-dir DIR [--boot-delay-ms N] [--port 8888] [--node-name NAME]";

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
      bridge: { type: "string" },
      gateway: { type: "string" },
      "ssh-dir": { type: "string" },
    },
  });
  const kubeconfig = values.kubeconfig;
  const stateDir = values["state-dir"];
  const insecureRegistry = values["insecure-registry"];
  const { bridge, gateway } = values;
  const sshDir = values["ssh-dir"];
  if (!kubeconfig || !stateDir || !insecureRegistry || !bridge || !gateway || !sshDir) throw new Error(usage);
  const cidr = /^(\d{1,3}\.\d{1,3}\.\d{1,3}\.1)\/24$/.exec(gateway);
  if (!cidr?.[1]) throw new Error(`--gateway must be the .1 of a /24, e.g. 10.231.1.1/24, got ${JSON.stringify(gateway)}`);
  const port = nonNegativeInt("port", values.port);
  if (port < 1 || port > 65535) throw new Error(`--port out of range: ${port}`);
  return {
    kubeconfig: resolve(kubeconfig),
    stateDir: resolve(stateDir),
    insecureRegistry,
    bootDelayMs: nonNegativeInt("boot-delay-ms", values["boot-delay-ms"]),
    port,
    bridge: { bridge, gateway: cidr[1], prefixLength: 24 },
    sshDir: resolve(sshDir),
    nodeName: values["node-name"],
  };
}
