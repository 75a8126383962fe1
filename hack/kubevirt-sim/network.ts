// A VM's network, as a pod network gives a virt-launcher pod: a network namespace of its own, plugged into the
// testenv's bridge by a veth pair, with one address and a default route to the bridge's gateway (the host side,
// where the registry listens). Build steps run in this namespace (chroot isolation shares it, as a real VM's
// `RUN --network=host` would), so they see exactly the VM's network: its own loopback, its own ports.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readdir } from "node:fs/promises";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export interface BridgeConfig {
  bridge: string;
  /** The host's address on the bridge, e.g. 10.231.1.1. */
  gateway: string;
  prefixLength: number;
}

const NETNS_DIR = "/run/netns";

/** `<bridge>.<vmi uid>`: testenv's `down` deletes whatever carries its bridge's prefix. */
export function netnsName(cfg: BridgeConfig, uid: string): string {
  return `${cfg.bridge}.${uid}`;
}

/** Host end of the VM's veth pair: unique per bridge and VMI, within IFNAMSIZ (15). */
function hostVeth(cfg: BridgeConfig, uid: string): string {
  return `vv${createHash("sha256").update(`${cfg.bridge}/${uid}`).digest("hex").slice(0, 12)}`;
}

async function ip(args: string[]): Promise<void> {
  try {
    await execFileAsync("ip", args);
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr?.trim();
    throw new Error(`ip ${args.join(" ")}: ${stderr || String(err)}`);
  }
}

/** Creates the VM's namespace with `address` on eth0; returns the namespace's name. */
export async function plugVM(cfg: BridgeConfig, uid: string, address: string): Promise<string> {
  const ns = netnsName(cfg, uid);
  const veth = hostVeth(cfg, uid);
  await ip(["netns", "add", ns]);
  try {
    await ip(["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns]);
    await ip(["link", "set", veth, "master", cfg.bridge, "up"]);
    await ip(["-n", ns, "addr", "add", `${address}/${cfg.prefixLength}`, "dev", "eth0"]);
    await ip(["-n", ns, "link", "set", "lo", "up"]);
    await ip(["-n", ns, "link", "set", "eth0", "up"]);
    await ip(["-n", ns, "route", "add", "default", "via", cfg.gateway]);
    // The host may still know an earlier VM's MAC for this address: it would send there until that entry went
    // stale and was probed again (5 to 45 s of connects that hang, measured as slow "boots" under load).
    await ip(["neigh", "flush", "to", address, "dev", cfg.bridge]);
  } catch (err) {
    await unplugVM(cfg, uid);
    throw err;
  }
  return ns;
}

/** Deletes the namespace (its veth pair goes with it). Idempotent. */
export async function unplugVM(cfg: BridgeConfig, uid: string): Promise<void> {
  const ns = netnsName(cfg, uid);
  const names = await readdir(NETNS_DIR).catch(() => [] as string[]);
  if (names.includes(ns)) await ip(["netns", "delete", ns]);
}

/** Namespaces a sim on this bridge left behind (its start-up recovery, testenv's `down`). */
export async function removeLeftoverNamespaces(bridge: string): Promise<string[]> {
  const names = (await readdir(NETNS_DIR).catch(() => [] as string[])).filter((n) => n.startsWith(`${bridge}.`));
  for (const name of names) await ip(["netns", "delete", name]);
  return names;
}
