// The testenv's VM network: a Linux bridge on this machine with a /24 of 10.231.0.0/16 (the first free one), whose
// .1 is the host's side. The KubeVirt stand-in plugs each VM's network namespace into it (a veth pair), so a build
// step sees what a VM's container would: its own address and loopback, and the registry at the gateway. Nothing
// is routed beyond the bridge: IP forwarding stays as it is, and the bridge has no uplink.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { removeLeftoverNamespaces } from "../kubevirt-sim/network.js";
import { run } from "./exec.js";
import { stateDir } from "./paths.js";

export interface VMNetwork {
  /** Interface name of the bridge, unique to this testenv's state dir. */
  bridge: string;
  /** The host's address on the bridge: where VMs reach the registry. */
  gateway: string;
  /** Prefix length of the subnet (24). */
  prefixLength: number;
}

const PREFIX = 24;

/** One bridge per state dir, so a second testenv (another checkout) gets its own. Fits IFNAMSIZ (15). */
export const bridgeName: string = `vmb${createHash("sha256").update(stateDir).digest("hex").slice(0, 10)}`;

async function ipv4Addresses(): Promise<{ ifname: string; address: string }[]> {
  const { stdout } = await run("ip", ["-j", "-4", "addr", "show"]);
  const links = JSON.parse(stdout) as { ifname: string; addr_info?: { local: string }[] }[];
  return links.flatMap((l) => (l.addr_info ?? []).map((a) => ({ ifname: l.ifname, address: a.local })));
}

/** The bridge, made if needed (`up` after a crash finds it still there and keeps it). */
export async function ensureVMNetwork(): Promise<VMNetwork> {
  const addresses = await ipv4Addresses();
  const mine = addresses.find((a) => a.ifname === bridgeName);
  if (mine) return { bridge: bridgeName, gateway: mine.address, prefixLength: PREFIX };
  const taken = new Set(addresses.filter((a) => a.address.startsWith("10.231.")).map((a) => a.address.split(".")[2]));
  let third = 1;
  while (taken.has(String(third))) third++;
  if (third > 254) throw new Error("no free /24 in 10.231.0.0/16 for the testenv's VM bridge");
  const gateway = `10.231.${third}.1`;
  if (!existsSync(`/sys/class/net/${bridgeName}`)) await run("ip", ["link", "add", bridgeName, "type", "bridge"]);
  await run("ip", ["addr", "add", `${gateway}/${PREFIX}`, "dev", bridgeName]);
  await run("ip", ["link", "set", bridgeName, "up"]);
  return { bridge: bridgeName, gateway, prefixLength: PREFIX };
}

/** Deletes what the stand-in may have left (VM namespaces, so their veths) and the bridge. Idempotent. */
export async function removeVMNetwork(): Promise<void> {
  await removeLeftoverNamespaces(bridgeName);
  if (existsSync(`/sys/class/net/${bridgeName}`)) await run("ip", ["link", "delete", bridgeName]);
}
