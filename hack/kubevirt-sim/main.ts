// KubeVirt stand-in for the test harness (never part of the product): simulates KubeVirt's pool, VM and VMI
// controllers against a real kube-apiserver; each running VMI is a real podman service in a network namespace of
// its own, on the testenv's bridge.
import { setTimeout as sleep } from "node:timers/promises";
import { AddressPool } from "./addresses.js";
import { parseSimArgs, type SimArgs } from "./args.js";
import { watchResource, type Watched } from "./informers.js";
import { Instances } from "./instances.js";
import { KubeClient, describeError } from "./kube.js";
import { errorMessage, log } from "./log.js";
import { PoolController } from "./pool.js";
import { Recorder } from "./recorder.js";
import { checkBinfmt, recover } from "./recovery.js";
import { ensureStateDir, stateDirLayout } from "./state-dir.js";
import {
  POOL_GROUP,
  POOL_KIND,
  POOL_PLURAL,
  VM,
  VMI,
  controllerOf,
  key,
  type ResourceRef,
  type VirtualMachine,
  type VirtualMachineInstance,
  type VirtualMachinePool,
} from "./types.js";
import { VMController } from "./vm.js";
import { VMIController } from "./vmi.js";
import { WorkQueue } from "./workqueue.js";

const READY_TIMEOUT_MS = 60_000;
const DISCOVERY_TIMEOUT_MS = 60_000;

/** Both pool versions carry the same schema here: watch the server's preferred one, which sees objects of either. */
async function discoverPoolRef(client: KubeClient): Promise<ResourceRef> {
  const deadline = Date.now() + DISCOVERY_TIMEOUT_MS;
  for (;;) {
    try {
      const versions = (await client.servedVersions(POOL_GROUP)).filter((v) => v === "v1beta1" || v === "v1alpha1");
      const version = versions[0];
      if (version !== undefined) return { group: POOL_GROUP, version, plural: POOL_PLURAL, kind: POOL_KIND };
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`discovering ${POOL_GROUP}: ${describeError(err)}`);
    }
    // Waiting for the CRD to be established, a readiness wait rather than a fixed pause.
    if (Date.now() > deadline) throw new Error(`API group ${POOL_GROUP} is not served: are the KubeVirt CRDs installed?`);
    await sleep(250);
  }
}

async function run(args: SimArgs): Promise<void> {
  const layout = stateDirLayout(args.stateDir);
  ensureStateDir(layout);
  checkBinfmt();
  const recorder = new Recorder(args.stateDir);
  await recover(layout, recorder, args.bridge);

  const client = new KubeClient(args.kubeconfig);
  const poolRef = await discoverPoolRef(client);

  // Queues first: watch events enqueue keys; the controllers, which need the caches, start them once synced.
  const poolQueue = new WorkQueue("pools");
  const vmQueue = new WorkQueue("vms");
  const vmiQueue = new WorkQueue("vmis");

  const instances = new Instances(
    {
      layout,
      addresses: new AddressPool(args.bridge.gateway),
      bridge: args.bridge,
      recorder,
      port: args.port,
      sshDir: args.sshDir,
      insecureRegistry: args.insecureRegistry,
      readyTimeoutMs: READY_TIMEOUT_MS,
    },
    (k) => vmiQueue.add(key(k.namespace, k.vm)),
  );

  const pools = watchResource<VirtualMachinePool>(client, poolRef, (pool, kind) => {
    poolQueue.add(key(pool.metadata.namespace, pool.metadata.name));
    // The pool's VMs are garbage-collected by the VM controller.
    if (kind === "delete") {
      for (const vm of vms.cache.list(pool.metadata.namespace)) {
        if (controllerOf(vm.metadata)?.uid === pool.metadata.uid) vmQueue.add(key(vm.metadata.namespace, vm.metadata.name));
      }
    }
  });
  const vms: Watched<VirtualMachine> = watchResource<VirtualMachine>(client, VM, (vm, kind) => {
    const { namespace, name } = vm.metadata;
    if (kind === "delete") recorder.vmDeleted(vm);
    else recorder.vmSeen(vm);
    vmQueue.add(key(namespace, name));
    vmiQueue.add(key(namespace, name));
    const owner = controllerOf(vm.metadata);
    if (owner?.kind === POOL_KIND) poolQueue.add(key(namespace, owner.name));
  });
  const vmis = watchResource<VirtualMachineInstance>(client, VMI, (vmi, kind) => {
    const { namespace, name } = vmi.metadata;
    if (kind !== "delete") recorder.vmiSeen(vmi);
    vmiQueue.add(key(namespace, name));
    vmQueue.add(key(namespace, name));
  });

  const deps = { client, pools: pools.cache, vms: vms.cache, vmis: vmis.cache, poolRef };
  const poolController = new PoolController(deps);
  const vmController = new VMController({ ...deps, requeueAfter: (k, ms) => vmQueue.addAfter(k, ms) });
  const vmiController = new VMIController({
    client,
    vms: vms.cache,
    vmis: vmis.cache,
    instances,
    recorder,
    defaultBootDelayMs: args.bootDelayMs,
    nodeName: args.nodeName,
  });

  await Promise.all([pools.synced, vms.synced, vmis.synced]);
  poolQueue.start(poolController.reconcile);
  vmQueue.start(vmController.reconcile);
  vmiQueue.start(vmiController.reconcile);
  log.info("kubevirt-sim running", {
    pid: process.pid,
    stateDir: args.stateDir,
    pools: `${poolRef.plural}.${poolRef.group}/${poolRef.version}`,
    port: args.port,
    bridge: args.bridge.bridge,
    insecureRegistry: args.insecureRegistry,
    bootDelayMs: args.bootDelayMs,
  });

  let stopping = false;
  const shutdown = async (signal: NodeJS.Signals): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info("shutting down", { signal });
    await Promise.all([pools.stop(), vms.stop(), vmis.stop()]);
    await Promise.all([poolQueue.stop(), vmQueue.stop(), vmiQueue.stop()]);
    await instances.shutdown();
    log.info("stopped");
    process.exit(0);
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.on(signal, () => {
      shutdown(signal).catch((err: unknown) => {
        log.error("shutdown failed", { error: errorMessage(err) });
        process.exit(1);
      });
    });
  }
}

try {
  await run(parseSimArgs(process.argv.slice(2)));
} catch (err) {
  log.error("kubevirt-sim failed", { error: errorMessage(err) });
  process.exit(1);
}
