// Layout of --state-dir, shared with testenv (`down` kills every PID listed in pids/):
//   record.jsonl                              lifecycle record (record.ts)
//   vms/<namespace>.<vm>.<vmi-uid>/           one VMI's "disk": podman storage and config, removed on scratch
//   pids/<vmi-uid>.pid                        PID of that VMI's podman service
//   logs/<namespace>.<vm>.<vmi-uid>.log       that service's output, kept after the scratch for debugging
// plus /run/kvsim/<vmi-uid>: podman refuses a runroot path over 50 characters, so it cannot live in the state dir.
import { mkdirSync } from "node:fs";
import { basename, join } from "node:path";

export interface StateDir {
  root: string;
  vms: string;
  pids: string;
  logs: string;
}

export function stateDirLayout(root: string): StateDir {
  return { root, vms: join(root, "vms"), pids: join(root, "pids"), logs: join(root, "logs") };
}

export function ensureStateDir(layout: StateDir): void {
  for (const dir of [layout.root, layout.vms, layout.pids, layout.logs]) mkdirSync(dir, { recursive: true });
}

export interface VMIKey {
  namespace: string;
  vm: string;
  uid: string;
}

function slug(key: VMIKey): string {
  return `${key.namespace}.${key.vm}.${key.uid}`;
}

export function storageDirFor(layout: StateDir, key: VMIKey): string {
  return join(layout.vms, slug(key));
}

export function logFileFor(layout: StateDir, key: VMIKey): string {
  return join(layout.logs, `${slug(key)}.log`);
}

const RUNROOT_BASE = "/run/kvsim";

/** The VMI's podman runroot: short (podman's 50-character limit) and unique across sims on this machine. */
export function runRootFor(uid: string): string {
  return `${RUNROOT_BASE}/${uid}`;
}

export function pidFileFor(layout: StateDir, uid: string): string {
  return join(layout.pids, `${uid}.pid`);
}

/** Inverse of storageDirFor: namespaces and uids hold no dots, VM names may. */
export function parseStorageDirName(dir: string): VMIKey | undefined {
  const name = basename(dir);
  const first = name.indexOf(".");
  const last = name.lastIndexOf(".");
  if (first <= 0 || last <= first + 1 || last === name.length - 1) return undefined;
  return { namespace: name.slice(0, first), vm: name.slice(first + 1, last), uid: name.slice(last + 1) };
}
