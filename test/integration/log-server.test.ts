import {
  AuthorizationV1Api,
  CoreV1Api,
  KubeConfig,
  RbacAuthorizationV1Api,
} from "@kubernetes/client-node";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTestenv, type Testenv } from "../../hack/testenv/index.js";
import { LogStore } from "../../src/jobs/log-store.js";
import { createAuthorizer, kubeAccessReviewer } from "../../src/server/auth.js";
import { logRoutes } from "../../src/server/logs.js";
import { waitUntil } from "../support/processes.js";
import { makeTempDir } from "../support/temp-dir.js";
import { logURL } from "../../src/api/log-url.js";

// The build-log endpoint against the real apiserver: the authorizer runs as the controller (so deploy/rbac.yaml
// must allow its TokenReviews and SubjectAccessReviews), callers are real identities with real RBAC.

const suffix = Math.random().toString(36).slice(2, 8);
const ns = `logs-${suffix}`;
const otherNs = `logs-other-${suffix}`;
const run = { namespace: ns, name: "build-1", uid: "5d0b7d5e-7a43-4c6e-8a1e-0c5b0d7f1a11" };

function kubeconfig(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

/** Reads a fetch body as text, chunk by chunk, so a test can wait for text while the response is still open. */
function reader(body: ReadableStream<Uint8Array>): { text(): string; until(needle: string): Promise<void>; done: Promise<void> } {
  const stream = body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const waiters: { needle: string; resolve: () => void }[] = [];
  const done = (async () => {
    for (;;) {
      const { value, done: end } = await stream.read();
      if (end) return;
      text += decoder.decode(value, { stream: true });
      for (const w of waiters.filter((x) => text.includes(x.needle))) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  })();
  return {
    text: () => text,
    done,
    until: (needle) =>
      text.includes(needle) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ needle, resolve })),
  };
}

function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe("build log server", () => {
  let env: Testenv;
  let dir: { path: string; remove(): Promise<void> };
  let store: LogStore;
  let app: FastifyInstance;
  let base: string;
  let saToken: string;

  const get = (path: string, token?: string) =>
    fetch(`${base}${path}`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    const found = readTestenv();
    if (!found) throw new Error("testenv is not up (global setup should have started it)");
    env = found;
    const admin = kubeconfig(env.adminKubeconfig);
    const core = admin.makeApiClient(CoreV1Api);
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    for (const name of [ns, otherNs]) await core.createNamespace({ body: { metadata: { name } } });

    // A ServiceAccount allowed to get CustomRuns in ns only, with a token from the TokenRequest API.
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: "log-reader" } } });
    await rbac.createNamespacedRole({
      namespace: ns,
      body: {
        metadata: { name: "customrun-reader" },
        rules: [{ apiGroups: ["tekton.dev"], resources: ["customruns"], verbs: ["get"] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: "log-reader" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "customrun-reader" },
        subjects: [{ kind: "ServiceAccount", name: "log-reader", namespace: ns }],
      },
    });
    const request = await core.createNamespacedServiceAccountToken({
      namespace: ns,
      name: "log-reader",
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const token = request.status?.token;
    if (!token) throw new Error(`TokenRequest for ${ns}/log-reader returned no token`);
    saToken = token;
    // The RBAC authorizer learns of new bindings through its informers: wait until it sees this one.
    const authz = admin.makeApiClient(AuthorizationV1Api);
    await waitUntil(
      async () =>
        (
          await authz.createSubjectAccessReview({
            body: {
              spec: {
                user: `system:serviceaccount:${ns}:log-reader`,
                groups: ["system:serviceaccounts", `system:serviceaccounts:${ns}`, "system:authenticated"],
                resourceAttributes: { group: "tekton.dev", resource: "customruns", verb: "get", namespace: ns },
              },
            },
          })
        ).status?.allowed === true,
      10_000,
      () => `RoleBinding ${ns}/log-reader never took effect`,
    );

    dir = await makeTempDir("log-server");
    store = new LogStore({ root: dir.path });
    app = Fastify();
    const authorizer = createAuthorizer(kubeAccessReviewer(kubeconfig(env.controllerKubeconfig)));
    await app.register(logRoutes, { store, authorizer });
    const address = await app.listen({ host: "127.0.0.1", port: 0 });
    base = address;
  });

  afterAll(async () => {
    await app?.close();
    await dir?.remove();
  });

  it("answers 401 without a token or with a token the apiserver does not know", async () => {
    const none = await get(`/logs/${ns}/build-1`);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toBe('Bearer realm="vmbuild"');
    expect((await get(`/logs/${ns}/build-1`, "not-a-real-token")).status).toBe(401);
  });

  it("answers 403 to an authenticated identity without get on customruns there", async () => {
    const nobody = await get(`/logs/${ns}/build-1`, env.tokens.nobody);
    expect(nobody.status).toBe(403);
    expect(await nobody.text()).toMatch(/cannot get customruns\.tekton\.dev "build-1" in namespace/);
    // The ServiceAccount's grant is for its own namespace only.
    expect((await get(`/logs/${otherNs}/build-1`, saToken)).status).toBe(403);
  });

  it("answers 404 for a run without a log, only to those allowed to know", async () => {
    const missing = await get(`/logs/${ns}/no-such-run`, saToken);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toBe(`no build log for ${ns}/no-such-run\n`);
  });

  it("serves a finished log to the admin and to the ServiceAccount with a Role", async () => {
    const log = store.open(run, 0);
    log.line("[linux/amd64] STEP 1/2: FROM busybox\n[linux/arm64] STEP 2/2: RUN uname -m\n[linux/arm64] aarch64");
    await log.close();
    const expected = "[linux/amd64] STEP 1/2: FROM busybox\n[linux/arm64] STEP 2/2: RUN uname -m\n[linux/arm64] aarch64\n";
    for (const token of [env.tokens.admin, saToken]) {
      const res = await get(`/logs/${ns}/build-1/0`, token);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/plain; charset=utf-8");
      expect(await res.text()).toBe(expected);
    }
    const url = logURL(base, ns, "build-1");
    const latest = await fetch(url, { headers: { authorization: `Bearer ${saToken}` } });
    expect(latest.headers.get("x-vmbuild-attempt")).toBe("0");
    expect(await latest.text()).toBe(expected);
  });

  it("streams a live log: lines written after the request arrive before the log closes", async () => {
    const log = store.open(run, 1);
    log.line("[linux/arm64] STEP 1/3: FROM busybox");
    const res = await get(`/logs/${ns}/build-1`, saToken);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-vmbuild-attempt")).toBe("1");
    expect(res.headers.get("x-vmbuild-live")).toBe("true");
    const body = res.body;
    if (!body) throw new Error("response has no body");
    const live = reader(body);
    await within(5_000, "the first line", live.until("STEP 1/3"));
    let ended = false;
    void live.done.then(() => (ended = true));
    log.line("[linux/arm64] STEP 2/3: RUN uname -m");
    await within(5_000, "a line written after the request", live.until("STEP 2/3"));
    log.line("[linux/arm64] aarch64");
    await within(5_000, "another line", live.until("aarch64"));
    expect(ended).toBe(false);
    log.line("[linux/arm64] STEP 3/3: COMMIT");
    await log.close();
    await within(5_000, "the response to end when the log closes", live.done);
    expect(live.text()).toBe(
      "[linux/arm64] STEP 1/3: FROM busybox\n[linux/arm64] STEP 2/3: RUN uname -m\n[linux/arm64] aarch64\n[linux/arm64] STEP 3/3: COMMIT\n",
    );
  });

  it("ends live responses when the server closes instead of waiting for the build", async () => {
    const second = Fastify();
    await second.register(logRoutes, {
      store,
      authorizer: createAuthorizer(kubeAccessReviewer(kubeconfig(env.controllerKubeconfig))),
    });
    const address = await second.listen({ host: "127.0.0.1", port: 0 });
    const log = store.open(run, 2);
    try {
      log.line("still building");
      const res = await fetch(`${address}/logs/${ns}/build-1/2`, { headers: { authorization: `Bearer ${saToken}` } });
      const body = res.body;
      if (!body) throw new Error("response has no body");
      const live = reader(body);
      await within(5_000, "the first line", live.until("still building"));
      await within(5_000, "the server to close", second.close());
      await within(5_000, "the response to end", live.done);
      expect(live.text()).toBe("still building\n");
    } finally {
      await log.close();
    }
  });

  it("needs the controller's RBAC: an identity without create on tokenreviews gets 503, not a verdict", async () => {
    const unprivileged = createAuthorizer(kubeAccessReviewer(kubeconfig(env.nobodyKubeconfig)));
    expect(await unprivileged.authorize(`Bearer ${saToken}`, { namespace: ns, name: "build-1" })).toMatchObject({
      allowed: false,
      status: 503,
    });
  });
});
