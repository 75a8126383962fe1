import { readFile } from "node:fs/promises";
import type { KubernetesObject } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Testenv } from "../../hack/testenv/index.js";
import { vmbuildLogName } from "../../src/api/vmbuild-log.js";
import { Cluster, succeeded } from "../support/cluster.js";
import { createContextRepo } from "../support/context-repo.js";
import { startController, type ControllerProcess } from "../support/controller.js";
import type { GitHttpServer } from "../support/git-http-server.js";
import { openHarness, type Harness } from "../support/harness.js";
import { waitUntil } from "../support/processes.js";

// Issue #14 item 5, logs survive their pod. Two replicas, each with a log directory of its own; whichever executes
// a run (its owner), the other serves the same LOG_URLs from the runs' VMBuildLogs: the partial log while the
// build runs, the whole log once it is done, and after the builder is SIGKILLed (its disk gone with it, as an
// emptyDir goes with its pod) the same bytes it served. Secrets are masked in the stored copy, a log over VMBUILD_LOG_STORED_MAX_BYTES keeps its head and tail
// around a marker, and every copy is owned by its CustomRun. The sync interval is the default (10 s): the slow
// build sleeps past it so that B has a partial copy to serve, the loud one is over within it.

const STORED_MAX = 16 * 1024;
const LOUD_LINES = 3000;
const LEADER_LEASE = "vmbuild-controller-leader";
const FIRST = /^survive-first-3$/m;
const LAST = /^survive-last-42$/m;
const LOGS = { group: "vmbuild.dev", version: "v1alpha1", plural: "vmbuildlogs" };

interface StoredCopy extends KubernetesObject {
  runName: string;
  attempt: number;
  replica: string;
  complete: boolean;
  bytes: number;
  cut: boolean;
  text: string;
}

/** What A logged when it stored a run's copy for the last time: its cost. */
interface Cost {
  requests: number;
  writes: number;
  sentBytes: number;
  bytes: number;
}

describe("build logs survive the replica that ran them", () => {
  let h: Harness;
  let env: Testenv;
  let cluster: Cluster;
  let git: GitHttpServer;
  let ns: string;
  let a: ControllerProcess;
  let b: ControllerProcess;
  const uids = new Map<string, string>();
  /** What the builder served of each finished run, to compare with what the other serves once it is gone. */
  const servedByA = new Map<string, string>();
  /** Per run: the replica executing it, and the other one. */
  const roles = new Map<string, [ControllerProcess, ControllerProcess]>();
  const costs: string[] = [];

  /** As the admin by default; "" for no token. */
  const fetchLog = (c: ControllerProcess, path: string, token = env.tokens.admin) =>
    fetch(`${c.url}/logs/${ns}/${path}`, token === "" ? {} : { headers: { authorization: `Bearer ${token}` } });
  const storedCopy = async (run: string) =>
    (await cluster.custom.getNamespacedCustomObject({ ...LOGS, namespace: ns, name: vmbuildLogName(uids.get(run) ?? "", 0) })) as StoredCopy;

  /** Waits until the run is handed to a replica: [its builder, the other]. */
  async function rolesOf(run: string): Promise<[ControllerProcess, ControllerProcess]> {
    let owner = "";
    await waitUntil(
      async () => {
        owner = ((await cluster.getRun(ns, run)).status?.extraFields as { owner?: string } | undefined)?.owner ?? "";
        return owner !== "";
      },
      60_000,
      () => `${run} was never handed to a replica`,
    );
    const found: [ControllerProcess, ControllerProcess] = owner.startsWith(`vmbuild-${a.pid}-`) ? [a, b] : [b, a];
    roles.set(run, found);
    return found;
  }

  /** The builder's "build log stored" line for the run: requests, writes and bytes sent. */
  async function costOf(run: string): Promise<Cost> {
    const uid = uids.get(run) ?? "";
    const [builder] = roles.get(run) ?? [a, b];
    let found: Cost | undefined;
    await waitUntil(
      async () => {
        const lines = (await readFile(builder.outputPath, "utf8")).split("\n").filter((l) => l.includes('"build log stored"') && l.includes(uid));
        found = lines.length === 1 ? (JSON.parse(lines[0] ?? "") as Cost) : undefined;
        return found !== undefined;
      },
      10_000,
      () => `its builder never logged "build log stored" for ${run}`,
    );
    return found as Cost;
  }

  beforeAll(async () => {
    h = await openHarness("log-survives");
    ({ env, cluster, git } = h);
    await createContextRepo(h.repos, "slow", {
      // The password of the run's registry Secret, printed: it must be masked in every copy. The marker lines are
      // computed, so that the step's own line (which quotes the command) does not hold them.
      Dockerfile: `FROM ${env.baseImage}\nRUN echo survive-first-$((1+2)) && echo "pw-${env.registry.password}-end" && sleep 14 && echo survive-last-$((6*7))\n`,
    });
    await createContextRepo(h.repos, "loud", {
      Dockerfile: `FROM ${env.baseImage}\nRUN i=0; while [ $i -lt ${LOUD_LINES} ]; do echo loud-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done\n`,
    });
    ns = await cluster.namespace("log-survives");
    await cluster.pool(ns, "builders", 2);
    // A leads (the Lease free first: a killed controller of an earlier file may hold it); B comes up as its standby.
    await cluster.coordination.deleteNamespacedLease({ name: LEADER_LEASE, namespace: "vmbuild-system" }).catch(() => undefined);
    const extraEnv = { VMBUILD_LOG_STORED_MAX_BYTES: String(STORED_MAX) };
    a = await startController(env, { name: "log-survives-a", extraEnv });
    await waitUntil(async () => (await readFile(a.outputPath, "utf8")).includes('"became leader"'), 20_000, () => "A never led");
    b = await startController(env, { name: "log-survives-b", extraEnv });
    expect(b.logDir).not.toBe(a.logDir);
  });

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await cluster?.coordination.deleteNamespacedLease({ name: LEADER_LEASE, namespace: "vmbuild-system" }).catch(() => undefined);
    console.log(`log-survives, cost of the stored copy per build:\n${costs.join("\n")}`);
    await h?.close();
  });

  const params = (repo: string) => ({
    pool: "builders",
    gitUrl: `${git.url}/${repo}.git`,
    image: `${env.registry.host}/${ns}/${repo}:1`,
    registrySecret: "registry",
    pullSecret: "registry",
    tlsVerify: "false",
  });

  it("while one replica builds, the other serves the partial log from the API, live; once done, the same bytes", async () => {
    const run = await cluster.createRun(ns, "slow", params("slow"));
    uids.set("slow", run.metadata?.uid ?? "");
    const [builder, other] = await rolesOf("slow");

    let partial: Response | undefined;
    let text = "";
    await waitUntil(
      async () => {
        partial = await fetchLog(other, "slow/0");
        text = partial.ok ? await partial.text() : "";
        return FIRST.test(text);
      },
      60_000,
      () => `B never served the first lines: ${partial?.status} ${text}`,
    );
    expect(partial?.headers.get("x-vmbuild-log-source")).toBe("api");
    expect(partial?.headers.get("x-vmbuild-live")).toBe("true");
    expect(partial?.headers.get("x-vmbuild-attempt")).toBe("0");
    expect(partial?.headers.get("x-vmbuild-run-uid")).toBe(uids.get("slow"));
    expect(text).not.toMatch(LAST);
    expect(text).toContain("pw-***-end");
    expect(text).not.toContain(env.registry.password);
    // The builder has it on disk, and follows it there.
    const live = await fetchLog(builder, "slow/0");
    expect(live.headers.get("x-vmbuild-log-source")).toBe("local");
    expect(live.headers.get("x-vmbuild-live")).toBe("true");
    const followedByA = live.text();

    const done = await cluster.waitForRun(ns, "slow", 180_000);
    expect(succeeded(done)?.reason, succeeded(done)?.message).toBe("Succeeded");
    const whole = await followedByA;
    expect(whole).toMatch(/^survive-first-3\npw-\*\*\*-end\nsurvive-last-42\n[\s\S]*^pushed /m);
    servedByA.set("slow", whole);

    let final: Response | undefined;
    await waitUntil(
      async () => {
        final = await fetchLog(other, "slow/0");
        return final.headers.get("x-vmbuild-live") === "false";
      },
      20_000,
      () => `B's copy never became complete: ${final?.status} live=${final?.headers.get("x-vmbuild-live")}`,
    );
    expect(final?.headers.get("x-vmbuild-log-source")).toBe("api");
    expect(await final?.text()).toBe(whole);

    const copy = await storedCopy("slow");
    expect(copy).toMatchObject({ runName: "slow", attempt: 0, complete: true, cut: false, bytes: Buffer.byteLength(whole) });
    expect(copy.replica).toMatch(new RegExp(`^vmbuild-${builder.pid}-[0-9a-f]{6}$`));
    expect(copy.metadata?.labels).toMatchObject({ "app.kubernetes.io/managed-by": "vmbuild", "vmbuild.dev/run-uid": uids.get("slow") });
    expect(copy.metadata?.ownerReferences).toEqual([{ apiVersion: "tekton.dev/v1beta1", kind: "CustomRun", name: "slow", uid: uids.get("slow") }]);
    expect(JSON.stringify(copy)).not.toContain(env.registry.password);

    const cost = await costOf("slow");
    // Without a status subresource every write of the text bumps the generation: the API's own count.
    expect(cost.writes).toBe(copy.metadata?.generation);
    const seconds = (Date.parse(done.status?.completionTime ?? "") - Date.parse(done.status?.startTime ?? "")) / 1000;
    // Open at the lease, a write at most every 10 s while lines come (the first while the build sleeps, which B
    // served above), the last at the close: two when the run is over within 20 s, one more per 10 s it takes longer.
    expect(cost.writes).toBeGreaterThanOrEqual(2);
    expect(cost.writes).toBeLessThanOrEqual(1 + Math.ceil(seconds / 10));
    expect(cost.requests).toBe(cost.writes);
    costs.push(`slow build (${cost.bytes} B of log, run ${seconds} s): ${cost.requests} requests (${cost.writes} writes), ${cost.sentBytes} B sent`);
  });

  it("a log over VMBUILD_LOG_STORED_MAX_BYTES is stored as its head and tail around a marker, within the bound", async () => {
    const run = await cluster.createRun(ns, "loud", params("loud"));
    uids.set("loud", run.metadata?.uid ?? "");
    const [builder, other] = await rolesOf("loud");
    const done = await cluster.waitForRun(ns, "loud", 180_000);
    expect(succeeded(done)?.reason, succeeded(done)?.message).toBe("Succeeded");
    servedByA.set("loud", await (await fetchLog(builder, "loud/0")).text());

    let res: Response | undefined;
    await waitUntil(
      async () => {
        res = await fetchLog(other, "loud/0");
        return res.headers.get("x-vmbuild-live") === "false";
      },
      20_000,
      () => `B's copy of the loud log never became complete: ${res?.status}`,
    );
    const text = (await res?.text()) ?? "";
    expect(text).toMatch(/^loud-0-x+$/m);
    expect(text).toMatch(new RegExp(`^loud-${LOUD_LINES - 1}-x+$`, "m"));
    expect(text).toMatch(/^\.\.\. \[vmbuild: [\d.]+ KiB \([\d,]+ lines\) cut here; the stored copy keeps its first 8 KiB and its last 8 KiB\] \.\.\.$/m);
    expect(text).toMatch(/^pushed /m);
    const copy = await storedCopy("loud");
    expect(copy).toMatchObject({ complete: true, cut: true, bytes: Buffer.byteLength(servedByA.get("loud") ?? "") });
    expect(Buffer.byteLength(JSON.stringify(copy))).toBeLessThanOrEqual(STORED_MAX + 2048);

    const cost = await costOf("loud");
    expect(cost.writes).toBe(copy.metadata?.generation);
    expect(cost.writes).toBeLessThanOrEqual(2);
    costs.push(`loud build (${cost.bytes} B of log, cut to ${Buffer.byteLength(copy.text)} B): ${cost.requests} requests (${cost.writes} writes), ${cost.sentBytes} B sent`);
  });

  it("after the slow run's builder is SIGKILLed, the other serves the same bytes it served, to those who may get the run only", async () => {
    const [builder, other] = roles.get("slow") ?? [a, b];
    process.kill(builder.pid, "SIGKILL");
    await builder.exited;
    for (const [run, text] of servedByA) {
      // The loud log's stored copy is cut (the previous case); the slow one is whole.
      if (run === "loud") continue;
      for (const path of [`${run}/0`, run]) {
        const res = await fetchLog(other, path);
        expect(res.status, path).toBe(200);
        expect(res.headers.get("x-vmbuild-log-source")).toBe("api");
        expect(res.headers.get("x-vmbuild-live")).toBe("false");
        expect(await res.text()).toBe(text);
      }
    }
    const anonymous = await fetchLog(other, "slow/0", "");
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toBe('Bearer realm="vmbuild"');
    const nobody = await fetchLog(other, "slow/0", env.tokens.nobody);
    expect(nobody.status).toBe(403);
    expect(await nobody.text()).not.toMatch(FIRST);
    expect((await fetchLog(other, "slow/1")).status).toBe(404);
    expect((await fetchLog(other, "no-such-run/0")).status).toBe(404);
    // The other replica never had a file of it.
    expect(await readFile(`${other.logDir}/${ns}/slow/${uids.get("slow")}-0.log`).catch(() => undefined)).toBeUndefined();
  });
});
