import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import Fastify, { type FastifyInstance } from "fastify";
import { pino } from "pino";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTestenv, type Testenv } from "../../hack/testenv/index.js";
import { LogStore, type BuildLog } from "../../src/jobs/log-store.js";
import { loadKube, mergePatch, type Kube } from "../../src/kube/client.js";
import { startInformer } from "../../src/kube/informers.js";
import { CUSTOM_RUNS, poolResource, VIRTUAL_MACHINES, VMIS, type Resource } from "../../src/kube/resources.js";
import { holderIdentity, leaseName } from "../../src/lease/holder.js";
import { acquireVMLease, LEASE_SELECTOR, releaseVMLease } from "../../src/lease/leases.js";
import { createAuthorizer, kubeAccessReviewer } from "../../src/server/auth.js";
import { logRoutes } from "../../src/server/logs.js";
import { viewRoutes } from "../../src/server/view.js";
import type { ViewCaches, ViewState } from "../../src/server/view-state.js";
import { Cluster } from "../support/cluster.js";
import { waitUntil } from "../support/processes.js";
import { makeTempDir } from "../support/temp-dir.js";

// The web view in a real browser, fed by real informer caches against the testenv and the real authorizer (as
// the controller's identity). No controller runs: the test moves a run through its phases by writing its status
// and the VM's lease itself, as the controller would, and watches the page follow.

const ROOT = new URL("../..", import.meta.url).pathname;
const CHROMIUM = "/usr/bin/chromium";
const LEASES: Resource = { group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease" };
const TEKTON = { group: "tekton.dev", version: "v1beta1", plural: "customruns" };
const VMS = { group: "kubevirt.io", version: "v1", plural: "virtualmachines" };
const POOL = "builders";

/** What a callback given to evaluateAll sees of an element (the project compiles without the DOM library). */
interface PageElement {
  getAttribute(name: string): string | null;
  textContent: string | null;
}

describe("web view", () => {
  let env: Testenv;
  let cluster: Cluster;
  let kube: Kube;
  let ns: string;
  let dir: { path: string; remove(): Promise<void> };
  let store: LogStore;
  let app: FastifyInstance;
  let base: string;
  let context: BrowserContext;
  const stops: (() => Promise<void>)[] = [];
  const requested: string[] = [];

  beforeAll(async () => {
    const found = readTestenv();
    if (!found) throw new Error("testenv is not up (global setup should have started it)");
    env = found;
    cluster = new Cluster(env);
    ns = await cluster.namespace("view");
    await cluster.pool(ns, POOL, 2);

    kube = loadKube(env.adminKubeconfig);
    const log = pino({ level: "warn" });
    const informer = (resource: Resource, selector?: string) => {
      const started = startInformer(kube.kc, kube.custom, resource, log, selector);
      stops.push(started.stop);
      return started;
    };
    const informers = {
      runs: informer(CUSTOM_RUNS),
      pools: informer(poolResource("v1beta1")),
      vms: informer(VIRTUAL_MACHINES),
      vmis: informer(VMIS),
      leases: informer(LEASES, LEASE_SELECTOR),
    };
    await Promise.all(Object.values(informers).map((i) => i.ready));
    const caches: ViewCaches = {
      runs: informers.runs.cache,
      pools: informers.pools.cache,
      vms: informers.vms.cache,
      vmis: informers.vmis.cache,
      leases: informers.leases.cache,
    };

    dir = await makeTempDir("web-view");
    store = new LogStore({ root: join(dir.path, "logs") });
    const controller = loadKube(env.controllerKubeconfig);
    const authorizer = createAuthorizer(kubeAccessReviewer(controller.kc));
    app = Fastify();
    await app.register(viewRoutes, { caches, authorizer });
    await app.register(logRoutes, { store, authorizer });
    base = await app.listen({ host: "127.0.0.1", port: 0 });

    context = await chromium.launchPersistentContext(join(dir.path, "chromium-profile"), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1400, height: 1000 },
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    context.on("request", (req) => requested.push(req.url()));
  });

  afterAll(async () => {
    await context?.close();
    await app?.close();
    for (const stop of stops) await stop();
    if (ns) {
      await cluster.custom.deleteNamespacedCustomObject({ group: "pool.kubevirt.io", version: "v1beta1", plural: "virtualmachinepools", namespace: ns, name: POOL }).catch(() => undefined);
      for (const name of ["build-1", "build-2"]) await cluster.deleteRun(ns, name).catch(() => undefined);
      // Left behind only if the test failed half-way.
      await cluster.coordination.deleteNamespacedLease({ namespace: ns, name: leaseName(`${POOL}-0`) }).catch(() => undefined);
    }
    await dir?.remove();
  });

  const patchStatus = (name: string, status: object) =>
    cluster.custom.patchNamespacedCustomObjectStatus({ ...TEKTON, namespace: ns, name, body: { status } }, mergePatch);
  const setRunning = (vm: string, running: boolean) =>
    cluster.custom.patchNamespacedCustomObject(
      { ...VMS, namespace: ns, name: vm, body: { spec: { runStrategy: running ? "Always" : "Halted" } } },
      mergePatch,
    );
  const runState = (phase: string, extra: object = {}) => ({
    phase,
    attempt: 0,
    pool: `${ns}/${POOL}`,
    queuedAt: new Date().toISOString(),
    phaseSince: new Date().toISOString(),
    tried: [],
    ...extra,
  });
  const succeededCondition = (status: string, reason: string, message: string) => [
    { type: "Succeeded", status, reason, message, lastTransitionTime: new Date().toISOString() },
  ];

  async function signIn(page: Page, token: string): Promise<void> {
    await page.goto(`${base}/`);
    await page.getByTestId("token-input").fill(token);
    await page.getByTestId("token-submit").click();
  }

  const chips = (page: Page) =>
    page.locator(`[data-testid="pool"][data-pool="${ns}/${POOL}"] [data-testid="vm"]`).evaluateAll((els: PageElement[]) =>
      els.map((e) => {
        const holder = e.getAttribute("data-holder");
        return `${e.getAttribute("data-vm")}=${e.getAttribute("data-state")}${holder ? ` by ${holder}` : ""}`;
      }),
    );
  const queue = (page: Page) =>
    page
      .locator(`[data-testid="pool"][data-pool="${ns}/${POOL}"] [data-testid="queue-entry"]`)
      .evaluateAll((els: PageElement[]) => els.map((e) => `${e.getAttribute("data-position")}:${e.getAttribute("data-run")}`));
  const row = (page: Page, name: string) =>
    page.locator(`[data-testid="run"][data-run="${ns}/${name}"]`).evaluateAll((els: PageElement[]) =>
      els.map((e) => `${e.getAttribute("data-phase")}|${e.getAttribute("data-status")}`),
    );

  /** Waits until `read` returns `expected` (the page polls once a second). */
  async function shows<T>(what: string, read: () => Promise<T>, expected: T, timeoutMs = 20_000): Promise<void> {
    let last: T | undefined;
    await waitUntil(
      async () => {
        last = await read();
        return isDeepStrictEqual(last, expected);
      },
      timeoutMs,
      () => `${what}: expected ${JSON.stringify(expected)}, the page shows ${JSON.stringify(last)}`,
    );
  }

  it("follows a run from Queued to Done, with its VM, the queue and its live log", async () => {
    const page = await context.newPage();
    await signIn(page, env.tokens.admin);
    await shows("the pool's VMs", () => chips(page), [`${POOL}-0=free`, `${POOL}-1=free`]);
    expect(await page.getByTestId("user").textContent()).toBe("signed in as testenv-admin");
    // The testenv keeps every other test's pools and runs: show this namespace only.
    await page.getByTestId("filter").fill(`${ns}/`);
    await shows("the filtered pools", () => page.getByTestId("pool").count(), 1);

    const run = await cluster.createRun(ns, "build-1", { pool: POOL, gitUrl: "https://git.invalid/app.git", image: "127.0.0.1:5000/app:1" });
    const uid = run.metadata?.uid ?? "";
    const holder = holderIdentity({ namespace: ns, name: "build-1", uid }, 0);
    await shows("a new run", () => row(page, "build-1"), ["|Unknown"]);

    const queuedAt = new Date().toISOString();
    await patchStatus("build-1", {
      startTime: queuedAt,
      conditions: succeededCondition("Unknown", "WaitingForVM", "Waiting for a free VM: position 1 in the queue."),
      extraFields: runState("Queued", { queuedAt }),
    });
    await cluster.createRun(ns, "build-2", { pool: POOL, gitUrl: "https://git.invalid/app.git", image: "127.0.0.1:5000/app:2" });
    const laterAt = new Date(Date.now() + 1000).toISOString();
    await patchStatus("build-2", {
      conditions: succeededCondition("Unknown", "WaitingForVM", "Waiting for a free VM: position 2 in the queue."),
      extraFields: runState("Queued", { queuedAt: laterAt }),
    });
    await shows("build-1 queued", () => row(page, "build-1"), ["Queued|Unknown"]);
    await shows("the queue", () => queue(page), [`1:${ns}/build-1`, `2:${ns}/build-2`]);

    // Starting: the lease is taken, then the VM started; its VMI is not ready yet.
    await acquireVMLease(cluster.coordination, { namespace: ns, pool: POOL, vm: `${POOL}-0` }, holder, new Date());
    await patchStatus("build-1", {
      conditions: succeededCondition("Unknown", "StartingVM", `Starting VM ${ns}/${POOL}-0.`),
      extraFields: runState("Starting", { queuedAt, vm: `${POOL}-0`, leasedAt: new Date().toISOString() }),
    });
    await shows("build-1 starting", () => row(page, "build-1"), ["Starting|Unknown"]);
    await shows("a booting VM", () => chips(page), [`${POOL}-0=booting by ${ns}/build-1`, `${POOL}-1=free`]);
    await shows("the queue without build-1", () => queue(page), [`1:${ns}/build-2`]);

    await setRunning(`${POOL}-0`, true);
    await shows("a ready VM", () => chips(page), [`${POOL}-0=leased by ${ns}/build-1`, `${POOL}-1=free`], 60_000);

    // Building, with a message that must stay text.
    await patchStatus("build-1", {
      conditions: succeededCondition("Unknown", "Building", "[linux/arm64] STEP 2/3: RUN echo '<b>not bold</b>'"),
      extraFields: runState("Building", { queuedAt, vm: `${POOL}-0`, leasedAt: new Date().toISOString() }),
    });
    await shows("build-1 building", () => row(page, "build-1"), ["Building|Unknown"]);
    await shows("a building VM", () => chips(page), [`${POOL}-0=building by ${ns}/build-1`, `${POOL}-1=free`]);
    const message = page.locator(`[data-testid="run"][data-run="${ns}/build-1"] td.msg`);
    expect(await message.textContent()).toBe("[linux/arm64] STEP 2/3: RUN echo '<b>not bold</b>'");
    expect(await message.locator("b").count()).toBe(0);

    // The live log: what is written shows while the response is still open.
    const buildLog: BuildLog = store.open({ namespace: ns, name: "build-1", uid }, 0);
    buildLog.line("STEP 1/3: FROM 127.0.0.1:5000/vmbuild/busybox:latest");
    await page.locator(`[data-testid="run"][data-run="${ns}/build-1"]`).click();
    await shows("the log so far", async () => (await page.getByTestId("log").textContent())?.includes("STEP 1/3") ?? false, true);
    expect(await page.getByTestId("log-state").textContent()).toBe("attempt 0 · live");
    buildLog.line("STEP 2/3: RUN uname -m");
    buildLog.line("aarch64");
    await shows("the log as it grows", async () => (await page.getByTestId("log").textContent())?.includes("aarch64") ?? false, true);
    await mkdir(join(ROOT, "test-artifacts"), { recursive: true });
    await page.screenshot({ path: join(ROOT, "test-artifacts", "web-view.png"), fullPage: true });

    // Scratching: stop the VM, its VMI goes, the lease is released.
    await patchStatus("build-1", {
      conditions: succeededCondition("Unknown", "Scratching", "Build succeeded; scratching the VM."),
      extraFields: runState("Scratching", { queuedAt, vm: `${POOL}-0` }),
    });
    await shows("a scratching VM", () => chips(page), [`${POOL}-0=scratching by ${ns}/build-1`, `${POOL}-1=free`]);
    await buildLog.close();
    await shows("the finished log", async () => page.getByTestId("log-state").textContent(), "attempt 0 · complete");
    await setRunning(`${POOL}-0`, false);
    await waitUntil(async () => (await cluster.vmis(ns)).length === 0, 60_000, () => "the VMI was not deleted");
    await releaseVMLease(cluster.coordination, { namespace: ns, vm: `${POOL}-0` }, holder);

    await patchStatus("build-1", {
      completionTime: new Date().toISOString(),
      conditions: succeededCondition("True", "Succeeded", "Pushed 127.0.0.1:5000/app:1."),
      extraFields: runState("Done", { queuedAt, vm: `${POOL}-0` }),
    });
    await shows("build-1 done", () => row(page, "build-1"), ["Done|True"]);
    await shows("the VM free again", () => chips(page), [`${POOL}-0=free`, `${POOL}-1=free`]);
    expect(await page.locator(`[data-testid="run"][data-run="${ns}/build-1"] [data-testid="run-status"]`).textContent()).toBe("Succeeded");
    await page.close();
  });

  it("shows a user without access to the namespace none of its runs or pools", async () => {
    const page = await context.newPage();
    await signIn(page, env.tokens.nobody);
    await shows("the signed-in user", async () => page.getByTestId("user").textContent(), `signed in as ${env.users.nobody}`);
    expect(await page.locator(`[data-testid="run"][data-run^="${ns}/"]`).count()).toBe(0);
    expect(await page.locator(`[data-testid="pool"][data-pool="${ns}/${POOL}"]`).count()).toBe(0);
    await page.close();

    const state = async (token?: string) =>
      fetch(`${base}/api/state`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
    expect((await state()).status).toBe(401);
    expect((await state("not-a-token")).status).toBe(401);
    const nobody = (await (await state(env.tokens.nobody)).json()) as ViewState;
    expect(nobody.runs.filter((r) => r.namespace === ns)).toEqual([]);
    const admin = (await (await state(env.tokens.admin)).json()) as ViewState;
    expect(admin.runs.filter((r) => r.namespace === ns).map((r) => r.name).sort()).toEqual(["build-1", "build-2"]);
  });

  it("asks for the token again when it is not accepted, and keeps it out of URLs", async () => {
    const page = await context.newPage();
    await signIn(page, "not-a-token");
    await shows("the sign-in form again", async () => page.getByTestId("login-error").textContent(), "the token is not valid");
    await page.close();
    expect(requested.length).toBeGreaterThan(0);
    for (const url of requested) {
      expect(url.startsWith(`${base}/`) || url.startsWith("data:")).toBe(true);
      expect(url).not.toContain(env.tokens.admin);
      expect(url).not.toContain(env.tokens.nobody);
    }
  });
});
