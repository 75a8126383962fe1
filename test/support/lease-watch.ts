import { KubeConfig, Watch } from "@kubernetes/client-node";
import { LEASE_SELECTOR } from "../../src/lease/leases.js";
import { readRunState } from "../../src/tekton/run-state.js";
import { succeeded, type CustomRunObject } from "./cluster.js";

// Every VM lease in a namespace as the API server reports it, in order: the ground truth for "no VM was ever
// leased twice at once" and "every run held the VM it built on".

export interface LeaseInterval {
  vm: string;
  holder: string;
  from: number;
  to: number | undefined;
}

export async function watchLeases(kubeconfig: string, namespace: string): Promise<{ intervals(): LeaseInterval[]; stop(): void }> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const intervals: LeaseInterval[] = [];
  const open = new Map<string, LeaseInterval>();
  const request = await new Watch(kc).watch(
    `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
    { labelSelector: LEASE_SELECTOR },
    (type: string, obj: { metadata?: { name?: string; labels?: Record<string, string> }; spec?: { holderIdentity?: string } }) => {
      const name = obj.metadata?.name ?? "";
      const now = Date.now();
      const holder = obj.spec?.holderIdentity ?? "";
      const begin = () => {
        const interval = { vm: obj.metadata?.labels?.["vmbuild.dev/vm"] ?? name, holder, from: now, to: undefined };
        intervals.push(interval);
        open.set(name, interval);
      };
      if (type === "ADDED") begin();
      else if (type === "MODIFIED" && open.get(name)?.holder !== holder) {
        // A holder swap (a run taking a warm VM, handing it back): one holder's interval ends as the next begins.
        const interval = open.get(name);
        if (interval) interval.to = now;
        begin();
      } else if (type === "DELETED") {
        const interval = open.get(name);
        if (interval) interval.to = now;
        open.delete(name);
      }
    },
    () => undefined,
  );
  return { intervals: () => intervals, stop: () => request.abort() };
}

/** Pairs of intervals on one VM that overlap in time: must be none. */
export function overlapping(intervals: readonly LeaseInterval[]): [LeaseInterval, LeaseInterval][] {
  const found: [LeaseInterval, LeaseInterval][] = [];
  intervals.forEach((a, i) =>
    intervals.slice(i + 1).forEach((b) => {
      if (a.vm === b.vm && a.from < (b.to ?? Infinity) && b.from < (a.to ?? Infinity)) found.push([a, b]);
    }),
  );
  return found;
}

/** Succeeded runs whose status names a VM (one per slot) that no lease of theirs ever covered: must be none. */
export function runsWithoutTheirLease(runs: readonly CustomRunObject[], intervals: readonly LeaseInterval[]): string[] {
  return runs
    .filter((r) => succeeded(r)?.status === "True")
    .flatMap((run) => {
      const state = readRunState(run.status?.extraFields);
      const holder = `${run.metadata?.namespace}/${run.metadata?.name}/${run.metadata?.uid}/${state?.attempt ?? 0}`;
      const vms = state?.slots.map((slot) => slot.vm) ?? [undefined];
      return vms.map((vm) => ({ vm, holder }));
    })
    .filter(({ vm, holder }) => !intervals.some((l) => l.vm === vm && l.holder === holder))
    .map(({ vm, holder }) => `${holder} never held ${vm ?? "?"}`);
}
