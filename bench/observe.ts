import { KubeConfig, Watch } from "@kubernetes/client-node";
import type { Condition, CustomRunObject } from "../test/support/cluster.js";
import { waitUntil } from "../test/support/processes.js";

// What the bench sees from outside the controller: every change of the CustomRuns, VMs and VMIs of one namespace,
// stamped with the local time the watch event arrived. All hand-offs are differences of these times.

export interface RunTransition {
  at: number;
  status: string;
  reason: string;
  message: string;
}

export interface RunTimeline {
  name: string;
  uid: string;
  /** When the ADDED event arrived. */
  created: number;
  transitions: RunTransition[];
  /** The last object seen. */
  last: CustomRunObject;
}

export interface VMIEvents {
  vm: string;
  uid: string;
  created: number;
  ready: number | undefined;
  deleted: number | undefined;
}

export interface NamespaceWatch {
  runs: Map<string, RunTimeline>;
  /** runStrategy changes per VM, in order. */
  vmStrategies: Map<string, { at: number; runStrategy: string }[]>;
  vmis: VMIEvents[];
  /** Resolves once every named run has a final Succeeded condition; rejects after timeoutMs. */
  waitForRuns(names: readonly string[], timeoutMs: number): Promise<CustomRunObject[]>;
  stop(): void;
}

interface Obj {
  metadata?: { name?: string; uid?: string; ownerReferences?: { name: string }[] };
  spec?: { runStrategy?: string; running?: boolean };
  status?: { conditions?: Condition[]; interfaces?: { ipAddress?: string }[] };
}

export function finalCondition(run: CustomRunObject): Condition | undefined {
  const c = run.status?.conditions?.find((x) => x.type === "Succeeded");
  return c && c.status !== "Unknown" ? c : undefined;
}

export async function watchNamespace(kubeconfig: string, namespace: string): Promise<NamespaceWatch> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  const watch = new Watch(kc);
  const runs = new Map<string, RunTimeline>();
  const vmStrategies = new Map<string, { at: number; runStrategy: string }[]>();
  const vmis = new Map<string, VMIEvents>();
  const failures: string[] = [];
  const failed = (what: string) => (err: unknown) => {
    // A watch ends normally only when stop() aborts it; anything else would leave gaps in the timelines.
    if (err && !String(err).includes("abort")) failures.push(`${what} watch ended: ${String(err)}`);
  };

  const onRun = (type: string, run: CustomRunObject) => {
    const name = run.metadata?.name ?? "";
    const now = Date.now();
    let t = runs.get(name);
    if (!t || (type === "ADDED" && t.uid !== run.metadata?.uid)) {
      t = { name, uid: run.metadata?.uid ?? "", created: now, transitions: [], last: run };
      runs.set(name, t);
    }
    t.last = run;
    const c = run.status?.conditions?.find((x) => x.type === "Succeeded");
    const prev = t.transitions.at(-1);
    if (c && (prev?.status !== c.status || prev.reason !== c.reason || prev.message !== (c.message ?? ""))) {
      t.transitions.push({ at: now, status: c.status, reason: c.reason ?? "", message: c.message ?? "" });
    }
  };
  const onVM = (_type: string, vm: Obj) => {
    const name = vm.metadata?.name ?? "";
    const strategy = vm.spec?.runStrategy ?? (vm.spec?.running ? "Always" : "Halted");
    const seen = vmStrategies.get(name) ?? [];
    if (seen.at(-1)?.runStrategy !== strategy) seen.push({ at: Date.now(), runStrategy: strategy });
    vmStrategies.set(name, seen);
  };
  const onVMI = (type: string, vmi: Obj) => {
    const uid = vmi.metadata?.uid ?? "";
    const now = Date.now();
    let e = vmis.get(uid);
    if (!e) {
      e = { vm: vmi.metadata?.ownerReferences?.[0]?.name ?? vmi.metadata?.name ?? "", uid, created: now, ready: undefined, deleted: undefined };
      vmis.set(uid, e);
    }
    const ready = vmi.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True");
    if (ready && vmi.status?.interfaces?.[0]?.ipAddress && e.ready === undefined) e.ready = now;
    if (type === "DELETED") e.deleted = now;
  };

  const requests = await Promise.all([
    watch.watch(`/apis/tekton.dev/v1beta1/namespaces/${namespace}/customruns`, {}, onRun, failed("CustomRun")),
    watch.watch(`/apis/kubevirt.io/v1/namespaces/${namespace}/virtualmachines`, {}, onVM, failed("VM")),
    watch.watch(`/apis/kubevirt.io/v1/namespaces/${namespace}/virtualmachineinstances`, {}, onVMI, failed("VMI")),
  ]);

  return {
    runs,
    vmStrategies,
    get vmis() {
      return [...vmis.values()];
    },
    async waitForRuns(names, timeoutMs) {
      await waitUntil(
        async () => {
          if (failures.length > 0) throw new Error(failures.join("; "));
          return names.every((n) => {
            const t = runs.get(n);
            return t !== undefined && finalCondition(t.last) !== undefined;
          });
        },
        timeoutMs,
        () => `${names.filter((n) => !finalCondition(runs.get(n)?.last ?? { spec: {} })).length} runs not finished ${failures.join("; ")}`,
      );
      return names.map((n) => runs.get(n)?.last).filter((r): r is CustomRunObject => r !== undefined);
    },
    stop: () => requests.forEach((r) => r.abort()),
  };
}
