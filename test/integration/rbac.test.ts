import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { RbacAuthorizationV1Api, type KubernetesObject, type V1Lease, type V1PolicyRule } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { canI, loadKubeconfig } from "../../hack/testenv/apply.js";
import type { Testenv } from "../../hack/testenv/index.js";
import { vmbuildLogName } from "../../src/api/vmbuild-log.js";
import { mergePatch } from "../../src/kube/client.js";
import { acquireVMLease } from "../../src/lease/leases.js";
import { Cluster, result, succeeded, type Condition } from "../support/cluster.js";
import { createContextRepo } from "../support/context-repo.js";
import { startController, type ControllerProcess } from "../support/controller.js";
import { openHarness, type Harness } from "../support/harness.js";
import { waitUntil } from "../support/processes.js";

// deploy/rbac.yaml is least privilege: no wildcard, and every verb of every resource it grants is one the
// controller visibly fails without. For each grant of the ClusterRole, it is replaced by a copy without it and the
// controller runs, under its own identity, one scenario that needs them all: a sweep of an orphaned lease (its
// VM's instance deleted by the controller itself), a warm pool (a VM leased and booted by the keeper, retired at
// the end by swapping its Lease's holder), a build by VMBuild name with the ServiceAccount's and the named Secret's credentials, its
// log read through the token check, then read again from a second replica with a log directory of its own (only the
// run's VMBuildLog, created and updated as the builds ran, can answer it there), its Events, and a cancel
// mid-build. The full role is restored after each case.
// Leader election has a Role of its own in vmbuild-system. The ClusterRole's per-VM Lease rule also reaches the
// leader Lease (RBAC only adds up), so the Role's grants are tested with the ClusterRole's Lease verbs that overlap
// them taken away: with the Role whole the controller leads, without any one of its grants it cannot.

const ROLE_FILE = new URL("../../deploy/rbac.yaml", import.meta.url).pathname;
const ROLE_NAME = "vmbuild-controller";
const LEADER_LEASE = "vmbuild-controller-leader";
const CONTROLLER_NAMESPACE = "vmbuild-system";
const POOLS = { group: "pool.kubevirt.io", version: "v1beta1", plural: "virtualmachinepools" };
const VMS = { group: "kubevirt.io", version: "v1", plural: "virtualmachines" };
const VMIS = { group: "kubevirt.io", version: "v1", plural: "virtualmachineinstances" };
// Log copies synced every second: a build's VMBuildLog is created, then updated, within the scenario.
const FAST = { VMBUILD_SWEEP_SECONDS: "1", VMBUILD_LEADER_LEASE_SECONDS: "3", VMBUILD_LOG_SYNC_SECONDS: "1" };
const WARM = "vmbuild.dev/warm-min";

/** One verb on one resource of one API group: the smallest thing the role grants. */
interface Grant {
  group: string;
  resource: string;
  verb: string;
}

const label = (g: Grant) => `${g.verb} ${g.resource}${g.group === "" ? "" : `.${g.group}`}`;

interface RoleDoc {
  kind?: string;
  metadata?: { name?: string; namespace?: string };
  rules?: V1PolicyRule[];
}

const roleDocs = () => parseAllDocuments(readFileSync(ROLE_FILE, "utf8")).map((d) => d.toJS() as RoleDoc);

function readRole(): V1PolicyRule[] {
  const role = roleDocs().find((d) => d.kind === "ClusterRole");
  if (!role?.rules) throw new Error(`no ClusterRole with rules in ${ROLE_FILE}`);
  return role.rules;
}

/** The Role in the controller's namespace that grants leader election. */
function readLeaderRole(): { name: string; rules: V1PolicyRule[] } {
  const role = roleDocs().find((d) => d.kind === "Role" && d.metadata?.namespace === CONTROLLER_NAMESPACE);
  if (!role?.rules || !role.metadata?.name) throw new Error(`no Role with rules in ${CONTROLLER_NAMESPACE} in ${ROLE_FILE}`);
  return { name: role.metadata.name, rules: role.rules };
}

function grantsOf(rules: readonly V1PolicyRule[]): Grant[] {
  return rules.flatMap((rule) =>
    (rule.apiGroups ?? []).flatMap((group) =>
      (rule.resources ?? []).flatMap((resource) => rule.verbs.map((verb) => ({ group, resource, verb }))),
    ),
  );
}

/** The role without one grant: the verb leaves its rule, a rule left without verbs or resources goes. */
function without(rules: readonly V1PolicyRule[], drop: Grant): V1PolicyRule[] {
  return rules.flatMap((rule) => {
    const matches = (rule.apiGroups ?? []).includes(drop.group) && (rule.resources ?? []).includes(drop.resource);
    if (!matches || !rule.verbs.includes(drop.verb)) return [rule];
    const others = (rule.resources ?? []).filter((r) => r !== drop.resource);
    const verbs = rule.verbs.filter((v) => v !== drop.verb);
    return [
      ...(others.length > 0 ? [{ ...rule, resources: others }] : []),
      ...(verbs.length > 0 ? [{ ...rule, resources: [drop.resource], verbs }] : []),
    ];
  });
}

/** The API server's 403 message names verb, resource and group; logs escape its quotes, once or more. */
const FORBIDDEN = /cannot (\S+) resource \\*"([^"\\]+)\\*" in API group \\*"([^"\\]*)\\*"/g;

// A refused watch reaches the informer as a bare "Forbidden", logged with the resource it watches but not its
// API group: such a 403 matches the grant by verb and resource.
const WATCHED_GROUP = "(group not logged)";
const WATCH_FORBIDDEN = /"resource":"([^"]+)","err":"Error: Forbidden"[^\n]*"msg":"watch failed/g;

function forbiddenIn(output: string): Grant[] {
  return [
    ...[...output.matchAll(FORBIDDEN)].map(([, verb, resource, group]) => ({ verb: verb ?? "", resource: resource ?? "", group: group ?? "" })),
    ...[...output.matchAll(WATCH_FORBIDDEN)].map(([, resource]) => ({ verb: "watch", resource: resource ?? "", group: WATCHED_GROUP })),
  ];
}

/** A 403 on a Lease in the controller's own namespace: what leader election runs into. */
const LEADER_FORBIDDEN = new RegExp(
  `cannot (\\S+) resource \\\\*"leases\\\\*" in API group \\\\*"coordination\\.k8s\\.io\\\\*" in the namespace \\\\*"${CONTROLLER_NAMESPACE}\\\\*"`,
  "g",
);

const sameGrant = (a: Grant, b: Grant) =>
  a.verb === b.verb && a.resource === b.resource && (a.group === b.group || a.group === WATCHED_GROUP || b.group === WATCHED_GROUP);

class Visible extends Error {}

describe("RBAC: deploy/rbac.yaml is the least the controller needs", () => {
  const rules = readRole();
  const grants = grantsOf(rules);
  const leader = readLeaderRole();
  const leaderGrants = grantsOf(leader.rules);
  /** The ClusterRole without the Lease verbs the Role grants, so that only the Role can make a leader. */
  const withoutLeaderOverlap = leaderGrants.reduce((r, g) => without(r, g), rules);
  let h: Harness;
  let env: Testenv;
  let cluster: Cluster;
  let rbac: RbacAuthorizationV1Api;
  const namespaces: string[] = [];
  /** The last scenario's controller log about its namespace, for a failure message. */
  let lastScenarioLog = "";
  const findings: string[] = [];

  const setRole = async (next: V1PolicyRule[], check: Grant | undefined, allowed: boolean) => {
    const current = await rbac.readClusterRole({ name: ROLE_NAME });
    await rbac.replaceClusterRole({ name: ROLE_NAME, body: { ...current, rules: next } });
    // RBAC reaches the authorizer through an informer: wait until the change is in effect.
    if (!check) return;
    const [resource = "", subresource] = check.resource.split("/");
    const controllerKc = loadKubeconfig(env.controllerKubeconfig);
    await waitUntil(
      async () => (await canI(controllerKc, { group: check.group, resource, subresource, verb: check.verb })) === allowed,
      20_000,
      () => `RBAC change for ${label(check)} not in effect`,
    );
  };

  /** Replaces the leader-election Role's rules; waits until `check` on the leader Lease is (not) allowed. */
  const setLeaderRole = async (next: V1PolicyRule[], check: Grant | undefined, allowed: boolean) => {
    const current = await rbac.readNamespacedRole({ name: leader.name, namespace: CONTROLLER_NAMESPACE });
    await rbac.replaceNamespacedRole({ name: leader.name, namespace: CONTROLLER_NAMESPACE, body: { ...current, rules: next } });
    if (!check) return;
    const controllerKc = loadKubeconfig(env.controllerKubeconfig);
    // A create carries no name when it is authorized.
    const name = check.verb === "create" ? undefined : LEADER_LEASE;
    await waitUntil(
      async () =>
        (await canI(controllerKc, { group: check.group, resource: check.resource, verb: check.verb, namespace: CONTROLLER_NAMESPACE, name })) === allowed,
      20_000,
      () => `Role change for ${label(check)} not in effect`,
    );
  };

  /**
   * Starts the controller with the ClusterRole that cannot make a leader and the Role as it is now; returns how
   * leader election went: whether it led (and kept leading through 3 lease durations) and the 403s it met on Leases
   * in its own namespace.
   */
  async function leaderScenario(): Promise<{ led: boolean; lost: boolean; denied: string[] }> {
    await cluster.coordination.deleteNamespacedLease({ name: LEADER_LEASE, namespace: CONTROLLER_NAMESPACE }).catch(() => undefined);
    const controller = await startController(env, { name: "rbac-leader", extraEnv: { VMBUILD_LEADER_LEASE_SECONDS: "3" }, readyTimeoutMs: 30_000 });
    try {
      const output = () => readFile(controller.outputPath, "utf8");
      const denied = async () => [...(await output()).matchAll(LEADER_FORBIDDEN)].map(([, verb]) => verb ?? "");
      await waitUntil(async () => (await output()).includes('"became leader"') || (await denied()).length > 0, 15_000, () => "no leader, no 403").catch(
        () => undefined,
      );
      // Three lease durations: a leader that cannot renew loses the lease well within them.
      await new Promise((resolve) => setTimeout(resolve, 9_000));
      const text = await output();
      return { led: text.includes('"became leader"'), lost: text.includes('"lost leadership"'), denied: [...new Set(await denied())] };
    } finally {
      await controller.stop(5_000);
      await cluster.coordination.deleteNamespacedLease({ name: LEADER_LEASE, namespace: CONTROLLER_NAMESPACE }).catch(() => undefined);
    }
  }

  /** Runs the scenario; returns the first visible failure, or undefined when everything worked. */
  async function scenario(removed: Grant | undefined): Promise<string | undefined> {
    const ns = await cluster.namespace("rbac");
    namespaces.push(ns);
    await cluster.pool(ns, "builders", 3);
    await cluster.custom.createNamespacedCustomObject({
      group: "vmbuild.dev",
      version: "v1alpha1",
      plural: "vmbuilds",
      namespace: ns,
      body: {
        apiVersion: "vmbuild.dev/v1alpha1",
        kind: "VMBuild",
        metadata: { name: "app" },
        spec: { pool: "builders", gitUrl: `${h.git.url}/quick.git`, image: `${env.registry.host}/${ns}/app:1`, tlsVerify: false },
      },
    });
    // Credentials both ways the controller reads them: a Secret linked to the ServiceAccount, and a named one.
    await cluster.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: "pipeline" }, secrets: [{ name: "registry" }] } });
    // An orphan: a lease whose run does not exist, on a VM that is not meant to run but whose instance is up
    // (runStrategy Manual leaves it to whoever started it). The sweeper must delete the instance itself.
    const orphan = (await cluster.custom.getNamespacedCustomObject({ ...VMS, namespace: ns, name: "builders-2" })) as KubernetesObject;
    await cluster.custom.patchNamespacedCustomObject({ ...VMS, namespace: ns, name: "builders-2", body: { spec: { runStrategy: "Manual" } } }, mergePatch);
    await cluster.custom.createNamespacedCustomObject({
      ...VMIS,
      namespace: ns,
      body: {
        apiVersion: "kubevirt.io/v1",
        kind: "VirtualMachineInstance",
        metadata: {
          name: "builders-2",
          ownerReferences: [{ apiVersion: "kubevirt.io/v1", kind: "VirtualMachine", name: "builders-2", uid: orphan.metadata?.uid ?? "", controller: true }],
        },
        spec: { domain: { devices: {} } },
      },
    });
    await acquireVMLease(cluster.coordination, { namespace: ns, pool: "builders", vm: "builders-2" }, `${ns}/gone/0000/0`, new Date());

    let controller: ControllerProcess | undefined;
    /** The second replica, a standby, that serves the log from the API. */
    let reader: ControllerProcess | undefined;
    // The whole logs of both: a 403 early in a chatty run would have left the in-memory tail.
    const output = async () =>
      (controller ? await readFile(controller.outputPath, "utf8") : "") + (reader ? await readFile(reader.outputPath, "utf8") : "");
    // Each step ends early once the controller logs a 403 for the removed grant: that is the visible failure.
    const step = async (what: string, timeoutMs: number, probe: () => Promise<boolean>) => {
      let denied: Grant | undefined;
      await waitUntil(
        async () => {
          denied = removed && forbiddenIn(await output()).find((g) => sameGrant(g, removed));
          return denied !== undefined || (await probe());
        },
        timeoutMs,
        () => what,
      ).catch((err: unknown) => {
        throw new Visible(`${what} (${err instanceof Error ? err.message : String(err)})`);
      });
      if (denied) throw new Visible(`${what}: the controller logged a 403 for ${label(denied)}`);
    };
    try {
      try {
        controller = await startController(env, { name: "rbac", extraEnv: FAST, readyTimeoutMs: 30_000 });
      } catch (err) {
        // Not ready within 30 s (a healthy one is within 10): its caches could not sync. Say which 403s it logged.
        const denied = forbiddenIn(String(err)).map(label);
        return `never ready${denied.length > 0 ? `; logged 403 for ${[...new Set(denied)].join(", ")}` : " (no 403 logged)"}`;
      }
      const c = controller;
      await step("the orphaned lease was not swept", 20_000, async () =>
        (await cluster.leases(ns)).length === 0 && (await cluster.vmis(ns)).length === 0,
      );
      // A warm pool: the keeper leases a VM as its own and boots it; a run may take it, or hand its scratched VM
      // back, by swapping the Lease's holder, and retiring it at the end (warm-min removed) swaps it for sure.
      await setWarm(ns, "1");
      await step("no VM was kept warm", 30_000, async () =>
        (await cluster.leases(ns)).some((l) => (l as V1Lease).spec?.holderIdentity === "vmbuild/warm"),
      );
      await cluster.createRun(ns, "built", { registrySecret: "registry", pullSecret: "registry" }, {
        customRef: { apiVersion: "vmbuild.dev/v1alpha1", kind: "VMBuild", name: "app" },
        serviceAccountName: "pipeline",
      });
      // The named Secret: without a login the FROM pull fails at once, and the run would end BuildFailed before the
      // cancel (a race this test lost now and then).
      await cluster.createRun(ns, "cancelled", {
        pool: "builders",
        gitUrl: `${h.git.url}/slow.git`,
        image: `${env.registry.host}/${ns}/slow:1`,
        registrySecret: "registry",
        pullSecret: "registry",
        tlsVerify: "false",
      });
      let cancelled: Condition | undefined;
      await step("the cancelled run never reached Building", 60_000, async () => {
        cancelled = succeeded(await cluster.getRun(ns, "cancelled"));
        return cancelled !== undefined && (cancelled.reason === "Building" || cancelled.status !== "Unknown");
      });
      if (cancelled?.reason !== "Building") return `the cancelled run ended ${cancelled?.reason} before Building: ${cancelled?.message}`;
      // Its log copy written once before the cancel: the copy's last write, at the close, is then an update.
      const uid = (await cluster.getRun(ns, "cancelled")).metadata?.uid ?? "";
      await step("the cancelled run's log copy was never written", 20_000, async () =>
        cluster.custom
          .getNamespacedCustomObject({ group: "vmbuild.dev", version: "v1alpha1", plural: "vmbuildlogs", namespace: ns, name: vmbuildLogName(uid, 0) })
          .then(() => true),
      );
      await cluster.patchRun(ns, "cancelled", { spec: { status: "RunCancelled", statusMessage: "rbac" } });
      await step("the cancel did not end the run", 30_000, async () => succeeded(await cluster.getRun(ns, "cancelled"))?.reason === "CustomRunCancelled");
      await step("the build did not finish", 90_000, async () => ["True", "False"].includes(succeeded(await cluster.getRun(ns, "built"))?.status ?? ""));
      const built = succeeded(await cluster.getRun(ns, "built"));
      if (built?.reason !== "Succeeded") return `the build ended ${built?.reason}: ${built?.message?.split("\n")[0]}`;
      const logURL = result(await cluster.getRun(ns, "built"), "LOG_URL") ?? "";
      await step("its log was not served to a token that may read the run", 10_000, async () =>
        logURL.startsWith(c.url) && (await fetch(logURL, { headers: { authorization: `Bearer ${env.tokens.admin}` } })).status === 200,
      );
      // As after the pod's deletion: a replica without the file, which only the run's VMBuildLog can answer.
      try {
        reader = await startController(env, { name: "rbac-reader", extraEnv: FAST, readyTimeoutMs: 30_000 });
      } catch {
        return "a second replica never got ready";
      }
      const r = reader;
      await step("its log was not served, whole, by another replica from the API", 20_000, async () => {
        const res = await fetch(`${r.url}${new URL(logURL).pathname}`, { headers: { authorization: `Bearer ${env.tokens.admin}` } });
        const complete = res.headers.get("x-vmbuild-log-source") === "api" && res.headers.get("x-vmbuild-live") === "false";
        return res.status === 200 && complete && /^pushed /m.test(await res.text());
      });
      await step("no Event was recorded for the run", 10_000, async () =>
        (await cluster.core.listNamespacedEvent({ namespace: ns })).items.some((e) => e.involvedObject.name === "built"),
      );
      await setWarm(ns, null);
      await step("a VM was left unscratched", 30_000, async () =>
        (await cluster.leases(ns)).length === 0 && (await cluster.vmis(ns)).length === 0,
      );
      const denied = forbiddenIn(await output());
      if (denied.length > 0) return `logged 403 for ${[...new Set(denied.map(label))].join(", ")}`;
      return undefined;
    } catch (err) {
      if (err instanceof Visible) return err.message;
      throw err;
    } finally {
      const lines = (await output().catch(() => "")).split("\n").filter((l) => l.includes(ns));
      lastScenarioLog = `controller log lines naming ${ns} (last 40):\n${lines.slice(-40).join("\n")}`;
      await reader?.stop(5_000);
      await controller?.stop(5_000);
      // Cold again, so that the next case's controller retires what this one kept warm rather than keep it.
      await setWarm(ns, null).catch(() => undefined);
      // A controller without lease rights cannot give leadership back: do it for the next one.
      await cluster.coordination.deleteNamespacedLease({ name: LEADER_LEASE, namespace: CONTROLLER_NAMESPACE }).catch(() => undefined);
    }
  }

  /** Sets the pool's warm-min, or (null) makes it cold again. */
  const setWarm = (ns: string, min: string | null) =>
    cluster.custom.patchNamespacedCustomObject(
      { ...POOLS, namespace: ns, name: "builders", body: { metadata: { annotations: { [WARM]: min } } } },
      mergePatch,
    );

  beforeAll(async () => {
    h = await openHarness("rbac");
    ({ env, cluster } = h);
    rbac = loadKubeconfig(env.adminKubeconfig).makeApiClient(RbacAuthorizationV1Api);
    // The role as the file says now (the testenv applied it when it came up, perhaps from an older file).
    await setRole(rules, undefined, true);
    await createContextRepo(h.repos, "quick", { Dockerfile: `FROM ${env.baseImage}\nRUN true\n` });
    await createContextRepo(h.repos, "slow", { Dockerfile: `FROM ${env.baseImage}\nRUN sleep 60\n` });
  });

  afterAll(async () => {
    if (rbac) {
      await setLeaderRole(leader.rules, leaderGrants[0], true);
      await setRole(rules, grants[0], true);
    }
    // Whatever a crippled controller left behind, the full one finishes and scratches.
    if (env && namespaces.length > 0) {
      const controller = await startController(env, { name: "rbac", extraEnv: FAST });
      try {
        for (const ns of namespaces) {
          await setWarm(ns, null);
          for (const run of ["built", "cancelled"]) await cluster.deleteRun(ns, run).catch(() => undefined);
          // A crippled controller may have let a run end with its VM still up: stop those as an admin would.
          for (const vm of await cluster.vms(ns)) {
            const name = vm.metadata?.name ?? "";
            await cluster.custom.patchNamespacedCustomObject({ ...VMS, namespace: ns, name, body: { spec: { runStrategy: "Halted" } } }, mergePatch);
          }
          await h.everyVMScratched(ns);
        }
      } finally {
        await controller.stop();
      }
    }
    console.log(`RBAC findings (${findings.length}):\n${findings.join("\n")}`);
    await h?.close();
  });

  it("grants no wildcard, reads Secrets only by name, and each grant is one verb the test can remove", () => {
    for (const rule of [...rules, ...leader.rules]) {
      for (const field of [rule.apiGroups, rule.resources, rule.verbs, rule.resourceNames, rule.nonResourceURLs]) {
        expect(field ?? []).not.toContain("*");
      }
    }
    const secretVerbs = grants.filter((g) => g.group === "" && g.resource === "secrets").map((g) => g.verb);
    expect(secretVerbs).toEqual(["get"]);
    expect(new Set(grants.map(label)).size).toBe(grants.length);
    expect(new Set(leaderGrants.map(label)).size).toBe(leaderGrants.length);
    // The Role is about Leases only, and the ClusterRole can stand in for it only through its per-VM Lease rule.
    expect(leaderGrants.every((g) => g.group === "coordination.k8s.io" && g.resource === "leases")).toBe(true);
    expect(grantsOf(withoutLeaderOverlap).filter((g) => g.resource === "leases").map((g) => g.verb)).toEqual(
      grants.filter((g) => g.resource === "leases" && !leaderGrants.some((l) => l.verb === g.verb)).map((g) => g.verb),
    );
  });

  it("with the full role, the whole scenario works and no request is forbidden", async () => {
    const failure = await scenario(undefined);
    findings.push(`full role: ${failure ?? "all steps pass"}`);
    // Should this ever fail on a slower machine, say what the controller did in that namespace.
    expect(failure, failure && lastScenarioLog).toBeUndefined();
  });

  it.each(grants.map((g) => [label(g), g] as const))("without %s, the controller visibly fails", async (name, grant) => {
    await setRole(without(rules, grant), grant, false);
    try {
      const failure = await scenario(grant);
      findings.push(`${name}: ${failure ?? "SUPERFLUOUS (everything worked)"}`);
      console.log(findings.at(-1));
      expect(failure, `${name} looks superfluous: the scenario passed without it`).toBeDefined();
    } finally {
      await setRole(rules, grant, true);
    }
  });

  describe("leader election, by the Role in vmbuild-system", () => {
    const overlap = leaderGrants[0];
    beforeAll(async () => {
      if (overlap) await setRole(withoutLeaderOverlap, overlap, false);
    });
    afterAll(async () => {
      await setLeaderRole(leader.rules, leaderGrants[0], true);
      await setRole(rules, overlap, true);
    });

    it("with the Role whole (and no Lease rule of the ClusterRole to lean on), the controller leads", async () => {
      const outcome = await leaderScenario();
      findings.push(`Role whole: ${JSON.stringify(outcome)}`);
      expect(outcome).toEqual({ led: true, lost: false, denied: [] });
    });

    it.each(leaderGrants.map((g) => [label(g), g] as const))("without %s in the Role, it cannot lead", async (name, grant) => {
      await setLeaderRole(without(leader.rules, grant), grant, false);
      try {
        const outcome = await leaderScenario();
        findings.push(`Role without ${name}: ${JSON.stringify(outcome)}`);
        console.log(findings.at(-1));
        expect(outcome.denied, `${name} looks superfluous: no 403 for it`).toContain(grant.verb);
        expect(outcome.led && !outcome.lost, `${name} looks superfluous: it led throughout`).toBe(false);
      } finally {
        await setLeaderRole(leader.rules, grant, true);
      }
    });
  });
});
