import { CoreV1Api, KubeConfig, type V1Secret } from "@kubernetes/client-node";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTestenv } from "../../hack/testenv/index.js";
import {
  CredentialSourceError,
  gitCredentialFor,
  resolveCredentials,
  type ResolvedCredentials,
} from "../../src/credentials/tekton.js";
import { GitFetchError } from "../../src/source/git-errors.js";
import { fetchSource } from "../../src/source/git.js";
import { createContextRepo } from "../support/context-repo.js";
import { startGitHttpServer, type GitHttpServer } from "../support/git-http-server.js";
import { makeTempDir } from "../support/temp-dir.js";

// The article's ServiceAccount and Secrets, created as admin, resolved as the controller (so deploy/rbac.yaml is
// what allows it), and the resolved git login used by fetchSource against a password-protected repository.

const b64 = (text: string): string => Buffer.from(text).toString("base64");
const QUAY = { username: "quay+robot", password: "quay-s3cret" };
const REDHAT = { username: "rh-user", password: "rh-s3cret" };
const GITHUB = { username: "octocat", password: "ghp-s3cret" };
const OPENSHIFT_REGISTRY = "image-registry.openshift-image-registry.svc:5000";
const LOCAL_GIT = { username: "builder", password: "local-git-s3cret" };

function kubeconfig(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

async function errorOf(promise: Promise<unknown>): Promise<CredentialSourceError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof CredentialSourceError) return err;
    throw err;
  }
  throw new Error("expected a CredentialSourceError");
}

let admin: CoreV1Api;
let controller: CoreV1Api;
let namespace: string;

beforeAll(async () => {
  const env = readTestenv();
  if (!env) throw new Error("no testenv: .testenv/env.json is missing (globalSetup should run `up`)");
  admin = kubeconfig(env.adminKubeconfig).makeApiClient(CoreV1Api);
  controller = kubeconfig(env.controllerKubeconfig).makeApiClient(CoreV1Api);
  // Namespaces cannot be deleted here (no namespace controller): a fresh name each run.
  namespace = `creds-${Math.random().toString(36).slice(2, 8)}`;
  await admin.createNamespace({ body: { metadata: { name: namespace } } });
  await createArticleSetup();
});

const secret = (body: V1Secret) => admin.createNamespacedSecret({ namespace, body });

/** As the article: `oc create secret docker-registry multi-arch` + annotate, the `github` basic-auth, the SA. */
async function createArticleSetup(): Promise<void> {
  const pullSecret = {
    auths: {
      "registry.redhat.io": { auth: b64(`${REDHAT.username}:${REDHAT.password}`), email: "me@example.com" },
      "quay.example.com": { auth: b64(`${QUAY.username}:${QUAY.password}`), email: "me@example.com" },
    },
  };
  await secret({
    metadata: { name: "multi-arch", annotations: { "tekton.dev/docker-0": "https://quay.example.com" } },
    type: "kubernetes.io/dockerconfigjson",
    data: { ".dockerconfigjson": b64(JSON.stringify(pullSecret)) },
  });
  await secret({
    metadata: { name: "github", annotations: { "tekton.dev/git-0": "https://github.com" } },
    type: "kubernetes.io/basic-auth",
    data: { username: b64(GITHUB.username), password: b64(GITHUB.password) },
  });
  // What OpenShift generates for every ServiceAccount: a legacy dockercfg for the internal registry.
  await secret({
    metadata: { name: "pipeline-dockercfg-zl7kq" },
    type: "kubernetes.io/dockercfg",
    data: { ".dockercfg": b64(JSON.stringify({ [OPENSHIFT_REGISTRY]: { auth: b64("serviceaccount:sa-token"), email: "sa@x" } })) },
  });
  await admin.createNamespacedServiceAccount({
    namespace,
    body: {
      metadata: { name: "pipeline" },
      imagePullSecrets: [{ name: "pipeline-dockercfg-zl7kq" }],
      secrets: [{ name: "multi-arch" }, { name: "github" }, { name: "pipeline-dockercfg-zl7kq" }],
    },
  });
}

describe("resolveCredentials against the real apiserver, as the controller", { timeout: 60_000 }, () => {
  const articleResult: ResolvedCredentials = {
    // Without a pullSecret the build pulls anonymously: the ServiceAccount's logins are for the push only.
    pull: {},
    push: {
      "registry.redhat.io": REDHAT,
      "quay.example.com": QUAY,
      [OPENSHIFT_REGISTRY]: { username: "serviceaccount", password: "sa-token" },
    },
    git: [{ urlPrefix: "https://github.com", kind: "basic", secretName: "github", ...GITHUB }],
    missingSecrets: [],
  };

  it("resolves the article's pipeline ServiceAccount", async () => {
    const resolved = await resolveCredentials(controller, namespace, { serviceAccountName: "pipeline" });
    expect(resolved).toEqual(articleResult);
    expect(gitCredentialFor(resolved, "https://github.com/team/mockbin.git")?.secretName).toBe("github");
  });

  it("gives the registrySecret param and the dockerconfig workspace precedence, per registry", async () => {
    const config = { auths: { "quay.example.com": { username: "from-workspace", password: "ws-s3cret" } } };
    await secret({ metadata: { name: "ws-config" }, type: "Opaque", data: { "config.json": b64(JSON.stringify(config)) } });
    const resolved = await resolveCredentials(controller, namespace, {
      serviceAccountName: "pipeline",
      workspaces: [{ name: "dockerconfig", secret: { secretName: "ws-config" } }],
      registrySecret: "multi-arch",
    });
    // registrySecret (multi-arch) beats the workspace for quay.example.com; the SA's dockercfg still fills in.
    expect(resolved.push).toEqual(articleResult.push);
    const withoutParam = await resolveCredentials(controller, namespace, {
      serviceAccountName: "pipeline",
      workspaces: [{ name: "dockerconfig", secret: { secretName: "ws-config" } }],
    });
    expect(withoutParam.push["quay.example.com"]).toEqual({ username: "from-workspace", password: "ws-s3cret" });
    expect(withoutParam.push["registry.redhat.io"]).toEqual(REDHAT);
  });

  it("fails on a missing registrySecret, naming it", async () => {
    const error = await errorOf(
      resolveCredentials(controller, namespace, { serviceAccountName: "pipeline", registrySecret: "no-such-secret" }),
    );
    expect(error.code).toBe("SecretNotFound");
    expect(error.message).toBe(`Secret ${namespace}/no-such-secret (named by registrySecret param) not found`);
  });

  it("reads the pullSecret by name, its logins apart from the push logins", async () => {
    const resolved = await resolveCredentials(controller, namespace, { serviceAccountName: "pipeline", pullSecret: "multi-arch" });
    expect(resolved.pull).toEqual({ "registry.redhat.io": REDHAT, "quay.example.com": QUAY });
    expect(resolved.push).toEqual(articleResult.push);
    const error = await errorOf(
      resolveCredentials(controller, namespace, { serviceAccountName: "pipeline", pullSecret: "no-such-secret" }),
    );
    expect(error.code).toBe("SecretNotFound");
    expect(error.message).toBe(`Secret ${namespace}/no-such-secret (named by pullSecret param) not found`);
  });

  it("fails on a missing ServiceAccount, naming it", async () => {
    const error = await errorOf(resolveCredentials(controller, namespace, { serviceAccountName: "no-such-sa" }));
    expect(error.code).toBe("ServiceAccountNotFound");
    expect(error.message).toBe(`ServiceAccount ${namespace}/no-such-sa (spec.serviceAccountName) not found`);
  });

  it("skips a linked Secret that is gone, as Tekton does, and reports it", async () => {
    await admin.createNamespacedServiceAccount({
      namespace,
      body: { metadata: { name: "stale" }, secrets: [{ name: "deleted-long-ago" }, { name: "github" }] },
    });
    const resolved = await resolveCredentials(controller, namespace, { serviceAccountName: "stale" });
    expect(resolved.missingSecrets).toEqual(["deleted-long-ago"]);
    expect(resolved.git.map((g) => g.secretName)).toEqual(["github"]);
  });

  it("reports a malformed linked Secret by name, without its content", async () => {
    await secret({
      metadata: { name: "half-login", annotations: { "tekton.dev/git-0": "https://git.example.com" } },
      type: "kubernetes.io/basic-auth",
      data: { password: b64("half-s3cret") },
    });
    await admin.createNamespacedServiceAccount({ namespace, body: { metadata: { name: "half" }, secrets: [{ name: "half-login" }] } });
    const error = await errorOf(resolveCredentials(controller, namespace, { serviceAccountName: "half" }));
    expect(error.code).toBe("MalformedSecret");
    expect(error.message).toContain(`Secret ${namespace}/half-login`);
    expect(error.message).toContain('has no "username" key');
    expect(error.message).not.toContain("half-s3cret");
  });
});

describe("the resolved git login reaches fetchSource", { timeout: 60_000 }, () => {
  let temp: { path: string; remove(): Promise<void> };
  let server: GitHttpServer;
  let commit: string;

  beforeAll(async () => {
    temp = await makeTempDir("tekton-creds");
    commit = await createContextRepo(temp.path, "app", { Containerfile: "FROM scratch\n" });
    server = await startGitHttpServer({ projectRoot: temp.path, auth: LOCAL_GIT });
    await secret({
      metadata: { name: "local-git", annotations: { "tekton.dev/git-0": server.url } },
      type: "kubernetes.io/basic-auth",
      data: { username: b64(LOCAL_GIT.username), password: b64(LOCAL_GIT.password) },
    });
    await admin.createNamespacedServiceAccount({
      namespace,
      body: { metadata: { name: "fetcher" }, secrets: [{ name: "github" }, { name: "local-git" }] },
    });
  });

  afterAll(async () => {
    await server?.stop();
    await temp?.remove();
  });

  it("fetches from a password-protected repository with the Secret's login", async () => {
    const url = `${server.url}/app.git`;
    const resolved = await resolveCredentials(controller, namespace, { serviceAccountName: "fetcher" });
    const credential = gitCredentialFor(resolved, url);
    expect(credential?.secretName).toBe("local-git");
    if (credential?.kind !== "basic") throw new Error("expected a basic credential");
    const { username, password } = credential;
    const dir = join(temp.path, "checkout");
    const result = await fetchSource({ url, revision: "main", dir, auth: { username, password }, signal: AbortSignal.timeout(30_000) });
    expect(result.commit).toBe(commit);
  });

  it("is refused without it (the article's github login does not apply to this host)", async () => {
    const url = `${server.url}/app.git`;
    const articleOnly = await resolveCredentials(controller, namespace, { serviceAccountName: "pipeline" });
    expect(gitCredentialFor(articleOnly, url)).toBeUndefined();
    const before = server.unauthorized();
    const error = await fetchSource({ url, revision: "main", dir: join(temp.path, "anonymous"), signal: AbortSignal.timeout(30_000) }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(GitFetchError);
    expect((error as GitFetchError).reason).toBe("AuthFailed");
    expect(server.unauthorized()).toBeGreaterThan(before);
  });
});
