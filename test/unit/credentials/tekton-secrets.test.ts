import { describe, expect, it } from "vitest";
import { CredentialSourceError } from "../../../src/credentials/errors.js";
import {
  secretsToRead,
  tektonCredentials,
  type CredentialInputs,
  type SecretLike,
  type ServiceAccountLike,
} from "../../../src/credentials/tekton-secrets.js";
import type { WorkspaceBinding } from "../../../src/tekton/customrun.js";

const NS = "multi-arch-build";
const b64 = (text: string): string => Buffer.from(text).toString("base64");
const auth = (user: string, pass: string) => ({ auth: b64(`${user}:${pass}`) });

function secret(name: string, type: string, data: Record<string, string>, annotations: Record<string, string> = {}): SecretLike {
  const encoded = Object.fromEntries(Object.entries(data).map(([key, value]) => [key, b64(value)]));
  return { metadata: { name, annotations }, type, data: encoded };
}
const basicAuth = (name: string, annotations: Record<string, string>, username = `${name}-user`, password = `${name}-pw`) =>
  secret(name, "kubernetes.io/basic-auth", { username, password }, annotations);
const dockerJson = (name: string, auths: Record<string, object>, annotations: Record<string, string> = {}) =>
  secret(name, "kubernetes.io/dockerconfigjson", { ".dockerconfigjson": JSON.stringify({ auths }) }, annotations);
const dockerCfg = (name: string, entries: Record<string, object>) =>
  secret(name, "kubernetes.io/dockercfg", { ".dockercfg": JSON.stringify(entries) });
const sa = (secrets: string[], imagePullSecrets: string[] = []): ServiceAccountLike => ({
  metadata: { name: "pipeline" },
  secrets: secrets.map((name) => ({ name })),
  imagePullSecrets: imagePullSecrets.map((name) => ({ name })),
});
const secretWorkspace = (secretName: string, extra: object = {}): WorkspaceBinding => ({
  name: "dockerconfig",
  secret: { secretName, ...extra },
});

function withDefaults(partial: Partial<CredentialInputs>): CredentialInputs {
  return {
    namespace: NS,
    serviceAccount: {},
    secrets: [],
    workspaces: [],
    registrySecret: undefined,
    pullSecret: undefined,
    ...partial,
  };
}
const resolve = (partial: Partial<CredentialInputs>) => tektonCredentials(withDefaults(partial));
const plan = (partial: Partial<CredentialInputs>) => secretsToRead(withDefaults(partial));

function errorOf(run: () => unknown): CredentialSourceError {
  try {
    run();
  } catch (err) {
    if (err instanceof CredentialSourceError) return err;
    throw err;
  }
  throw new Error("expected a CredentialSourceError");
}

describe("tektonCredentials: the article's ServiceAccount", () => {
  // EXACTLY the article: multi-arch (dockerconfigjson, annotated docker-0), github (basic-auth, git-0), and
  // OpenShift's pipeline-dockercfg-* in both .secrets and imagePullSecrets.
  const secrets = [
    dockerJson(
      "multi-arch",
      { "registry.redhat.io": auth("rh", "rh-pw"), "quay.example.com": { ...auth("quay", "quay-pw"), email: "me@x" } },
      { "tekton.dev/docker-0": "https://quay.example.com" },
    ),
    basicAuth("github", { "tekton.dev/git-0": "https://github.com" }, "octocat", "gh-token"),
    dockerCfg("pipeline-dockercfg-zl7kq", { "image-registry.openshift-image-registry.svc:5000": auth("sa", "sa-token") }),
  ];
  const serviceAccount = sa(["multi-arch", "github", "pipeline-dockercfg-zl7kq"], ["pipeline-dockercfg-zl7kq"]);

  it("uses every entry of the docker config (the annotation does not scope it) and the git login", () => {
    expect(resolve({ serviceAccount, secrets })).toEqual({
      pull: {},
      push: {
        "registry.redhat.io": { username: "rh", password: "rh-pw" },
        "quay.example.com": { username: "quay", password: "quay-pw" },
        "image-registry.openshift-image-registry.svc:5000": { username: "sa", password: "sa-token" },
      },
      git: [{ urlPrefix: "https://github.com", kind: "basic", secretName: "github", username: "octocat", password: "gh-token" }],
    });
  });

  it("reads each Secret once", () => {
    expect(plan({ serviceAccount }).map((s) => [s.name, s.required])).toEqual([
      ["multi-arch", false],
      ["github", false],
      ["pipeline-dockercfg-zl7kq", false],
    ]);
  });
});

describe("tektonCredentials: each Secret kind and annotation", () => {
  it.each<[string, SecretLike, Partial<ReturnType<typeof resolve>>]>([
    [
      "basic-auth + tekton.dev/git-N → basic git credential",
      basicAuth("s", { "tekton.dev/git-0": "https://github.com" }),
      { push: {}, git: [{ urlPrefix: "https://github.com", kind: "basic", secretName: "s", username: "s-user", password: "s-pw" }] },
    ],
    [
      "basic-auth + tekton.dev/docker-N → registry login under the normalised host",
      basicAuth("s", { "tekton.dev/docker-0": "https://quay.example.com/" }),
      { push: { "quay.example.com": { username: "s-user", password: "s-pw" } }, git: [] },
    ],
    [
      "basic-auth with both kinds of annotation → both",
      basicAuth("s", { "tekton.dev/git-0": "github.com", "tekton.dev/docker-0": "ghcr.io" }),
      {
        push: { "ghcr.io": { username: "s-user", password: "s-pw" } },
        git: [{ urlPrefix: "github.com", kind: "basic", secretName: "s", username: "s-user", password: "s-pw" }],
      },
    ],
    [
      "basic-auth with several git annotations → one credential each, by value",
      basicAuth("s", { "tekton.dev/git-1": "https://gitlab.com", "tekton.dev/git-0": "https://github.com" }),
      {
        git: [
          { urlPrefix: "https://github.com", kind: "basic", secretName: "s", username: "s-user", password: "s-pw" },
          { urlPrefix: "https://gitlab.com", kind: "basic", secretName: "s", username: "s-user", password: "s-pw" },
        ],
      },
    ],
    [
      "ssh-auth + tekton.dev/git-N with known_hosts",
      secret("k", "kubernetes.io/ssh-auth", { "ssh-privatekey": "PRIVATE", known_hosts: "github.com ssh-ed25519 AAAA" }, {
        "tekton.dev/git-0": "github.com",
      }),
      { git: [{ urlPrefix: "github.com", kind: "ssh", secretName: "k", privateKey: "PRIVATE", knownHosts: "github.com ssh-ed25519 AAAA" }] },
    ],
    [
      "ssh-auth without known_hosts",
      secret("k", "kubernetes.io/ssh-auth", { "ssh-privatekey": "PRIVATE" }, { "tekton.dev/git-0": "example.com:2222" }),
      { git: [{ urlPrefix: "example.com:2222", kind: "ssh", secretName: "k", privateKey: "PRIVATE" }] },
    ],
    [
      "ssh-auth + tekton.dev/docker-N → ignored (docker has no ssh)",
      secret("k", "kubernetes.io/ssh-auth", { "ssh-privatekey": "PRIVATE" }, { "tekton.dev/docker-0": "quay.io" }),
      { push: {}, git: [] },
    ],
    [
      "dockerconfigjson without annotation → used (Tekton's creds-init does)",
      dockerJson("d", { "quay.io": { username: "q", password: "qp" } }),
      { push: { "quay.io": { username: "q", password: "qp" } }, git: [] },
    ],
    [
      "dockerconfigjson + tekton.dev/git-N → no git credential",
      dockerJson("d", {}, { "tekton.dev/git-0": "https://github.com" }),
      { push: {}, git: [] },
    ],
    [
      "dockercfg → registry logins",
      dockerCfg("c", { "https://index.docker.io/v1/": auth("hub", "hp") }),
      { push: { "docker.io": { username: "hub", password: "hp" } }, git: [] },
    ],
    [
      "basic-auth without annotation → ignored, not even validated",
      secret("s", "kubernetes.io/basic-auth", { username: "only-user" }),
      { push: {}, git: [] },
    ],
    [
      "Opaque with annotations → ignored",
      secret("o", "Opaque", { username: "u", password: "p" }, { "tekton.dev/git-0": "https://github.com" }),
      { push: {}, git: [] },
    ],
  ])("%s", (_name, linked, expected) => {
    const name = linked.metadata?.name ?? "";
    expect(resolve({ serviceAccount: sa([name]), secrets: [linked] })).toMatchObject(expected);
  });

  it("uses imagePullSecrets for push logins only, never for pulls or git", () => {
    const pull = [
      dockerJson("pull", { "quay.io": auth("pull", "pp") }),
      basicAuth("git-in-pull", { "tekton.dev/git-0": "https://github.com", "tekton.dev/docker-0": "ghcr.io" }),
    ];
    expect(resolve({ serviceAccount: sa([], ["pull", "git-in-pull"]), secrets: pull })).toEqual({
      pull: {},
      push: { "quay.io": { username: "pull", password: "pp" } },
      git: [],
    });
  });

  it("skips ServiceAccount-linked Secrets that do not exist, as Tekton does", () => {
    const gh = basicAuth("github", { "tekton.dev/git-0": "https://github.com" });
    const result = resolve({ serviceAccount: sa(["gone", "github"], ["gone-too"]), secrets: [gh] });
    expect(result.git.map((g) => g.secretName)).toEqual(["github"]);
  });
});

describe("tektonCredentials: push login precedence", () => {
  const key = "quay.example.com";
  const login = (who: string) => ({ [key]: { username: who, password: `${who}-pw` } });
  const layers = {
    param: dockerJson("param", login("param")),
    workspace: dockerJson("ws", login("workspace")),
    saBasic: basicAuth("sa-basic", { "tekton.dev/docker-0": `https://${key}` }, "saBasic", "saBasic-pw"),
    saJson: dockerJson("sa-json", login("saJson")),
    saCfg: dockerCfg("sa-cfg", login("saCfg")),
    pull: dockerJson("pull", login("pull")),
  };
  type Layer = keyof typeof layers;
  const inputs = (present: Layer[]): Partial<CredentialInputs> => ({
    secrets: present.map((layer) => layers[layer]),
    registrySecret: present.includes("param") ? "param" : undefined,
    workspaces: present.includes("workspace") ? [secretWorkspace("ws")] : [],
    serviceAccount: sa(
      (["saBasic", "saJson", "saCfg"] as const).filter((l) => present.includes(l)).map((l) => layers[l].metadata?.name ?? ""),
      present.includes("pull") ? ["pull"] : [],
    ),
  });

  it.each<[Layer[], string]>([
    [["param", "workspace", "saBasic", "saJson", "saCfg", "pull"], "param"],
    [["workspace", "saBasic", "saJson", "saCfg", "pull"], "workspace"],
    [["saBasic", "saJson", "saCfg", "pull"], "saBasic"],
    [["saJson", "saCfg", "pull"], "saJson"],
    [["saCfg", "pull"], "saCfg"],
    [["pull"], "pull"],
    [["param", "pull"], "param"],
    [["workspace", "saCfg"], "workspace"],
  ])("%j → %s", (present, winner) => {
    expect(resolve(inputs(present)).push[key]?.username).toBe(winner);
  });

  it("merges per registry: keys a higher layer lacks come from lower ones", () => {
    const result = resolve({
      registrySecret: "param",
      secrets: [dockerJson("param", { "quay.io": auth("param", "x") }), dockerJson("sa", { "ghcr.io": auth("sa", "y") })],
      serviceAccount: sa(["sa"]),
    });
    expect(Object.keys(result.push).sort()).toEqual(["ghcr.io", "quay.io"]);
  });

  it("among ServiceAccount docker configs the later Secret wins, as Tekton writes them in order", () => {
    const result = resolve({
      secrets: [dockerJson("first", login("first")), dockerJson("second", login("second"))],
      serviceAccount: sa(["first", "second"]),
    });
    expect(result.push[key]?.username).toBe("second");
  });

  it("normalises keys before comparing layers", () => {
    const result = resolve({
      registrySecret: "param",
      secrets: [dockerJson("param", { "https://quay.io/v2/": auth("param", "x") }), dockerJson("sa", { "quay.io": auth("sa", "y") })],
      serviceAccount: sa(["sa"]),
    });
    expect(result.push).toEqual({ "quay.io": { username: "param", password: "x" } });
  });
});

describe("tektonCredentials: the dockerconfig workspace", () => {
  const config = (who: string) => JSON.stringify({ auths: { "quay.io": auth(who, "pw") } });
  const userOf = (ws: WorkspaceBinding, data: Record<string, string>) =>
    resolve({ workspaces: [ws], secrets: [secret("dc", "Opaque", data)] }).push["quay.io"]?.username;

  it("prefers config.json, as the article's Task does", () => {
    expect(userOf(secretWorkspace("dc"), { "config.json": config("cfg"), ".dockerconfigjson": config("dcj") })).toBe("cfg");
  });

  it("falls back to .dockerconfigjson", () => {
    expect(userOf(secretWorkspace("dc"), { ".dockerconfigjson": config("dcj") })).toBe("dcj");
  });

  it("follows items, which rename keys to file names in the workspace", () => {
    const ws = secretWorkspace("dc", { items: [{ key: "auth", path: "config.json" }] });
    expect(userOf(ws, { auth: config("renamed"), "config.json": config("hidden") })).toBe("renamed");
  });

  it("ignores other workspaces", () => {
    expect(resolve({ workspaces: [{ name: "source", persistentVolumeClaim: { claimName: "x" } }] }).push).toEqual({});
  });
});

describe("tektonCredentials: pull logins", () => {
  const login = (who: string) => ({ username: who, password: `${who}-pw` });
  // A push login for the registry of every source, and base images on docker.io behind the pullSecret.
  const everySource: Partial<CredentialInputs> = {
    registrySecret: "push",
    workspaces: [secretWorkspace("ws")],
    serviceAccount: sa(["sa-json", "sa-basic"], ["sa-pull"]),
    secrets: [
      dockerJson("push", { "quay.example.com": login("param") }),
      dockerJson("ws", { "ghcr.io": login("workspace") }),
      dockerJson("sa-json", { "registry.example.com": login("saJson") }),
      basicAuth("sa-basic", { "tekton.dev/docker-0": "registry.redhat.io" }, "saBasic", "saBasic-pw"),
      dockerJson("sa-pull", { "image-registry.example.com:5000": login("saPull") }),
      dockerCfg("base", { "https://index.docker.io/v1/": login("hub") }),
    ],
  };

  it("are the pullSecret's alone; the push logins keep every other source, and not the pullSecret's", () => {
    const result = resolve({ ...everySource, pullSecret: "base" });
    expect(result.pull).toEqual({ "docker.io": login("hub") });
    expect(result.push).toEqual({
      "quay.example.com": login("param"),
      "ghcr.io": login("workspace"),
      "registry.example.com": login("saJson"),
      "registry.redhat.io": login("saBasic"),
      "image-registry.example.com:5000": login("saPull"),
    });
  });

  it("are none without a pullSecret, whatever the push sources hold", () => {
    expect(resolve(everySource).pull).toEqual({});
  });

  it("are the push login's when the pullSecret names the registrySecret", () => {
    const result = resolve({ ...everySource, pullSecret: "push" });
    expect(result.pull).toEqual({ "quay.example.com": login("param") });
    expect(result.push["quay.example.com"]).toEqual(login("param"));
  });

  it("come from a pullSecret the ServiceAccount links too, which is then required", () => {
    expect(resolve({ ...everySource, pullSecret: "sa-pull" }).pull).toEqual({ "image-registry.example.com:5000": login("saPull") });
    const error = errorOf(() => resolve({ serviceAccount: sa([], ["gone"]), pullSecret: "gone" }));
    expect(error.message).toBe("Secret multi-arch-build/gone (named by pullSecret param) not found");
  });
});

describe("tektonCredentials: unusable sources", () => {
  const SECRET_VALUES = ["s3cret-Pa55", "PRIVATE-KEY-BODY", "czNjcmV0LVBhNTU="];
  const gitBasic = { "tekton.dev/git-0": "https://github.com" };

  it.each<[string, Partial<CredentialInputs>, string, string, RegExp]>([
    [
      "registrySecret missing",
      { registrySecret: "multi-arch" },
      "SecretNotFound",
      "multi-arch",
      /^Secret multi-arch-build\/multi-arch \(named by registrySecret param\) not found$/,
    ],
    [
      "registrySecret without a docker config key",
      { registrySecret: "reg", secrets: [secret("reg", "Opaque", { token: "s3cret-Pa55" })] },
      "MalformedSecret",
      "reg",
      /has neither \.dockerconfigjson nor \.dockercfg/,
    ],
    [
      "registrySecret that is not JSON",
      { registrySecret: "reg", secrets: [secret("reg", "kubernetes.io/dockerconfigjson", { ".dockerconfigjson": "{s3cret-Pa55" })] },
      "MalformedSecret",
      "reg",
      /key \.dockerconfigjson: registry credentials are not JSON/,
    ],
    [
      "pullSecret missing",
      { pullSecret: "base-images" },
      "SecretNotFound",
      "base-images",
      /^Secret multi-arch-build\/base-images \(named by pullSecret param\) not found$/,
    ],
    [
      "pullSecret without a docker config key",
      { registrySecret: "reg", pullSecret: "pull", secrets: [dockerJson("reg", {}), secret("pull", "Opaque", { token: "s3cret-Pa55" })] },
      "MalformedSecret",
      "pull",
      /named by pullSecret param\) has neither \.dockerconfigjson nor \.dockercfg/,
    ],
    [
      "pullSecret that is not JSON",
      { pullSecret: "pull", secrets: [secret("pull", "kubernetes.io/dockercfg", { ".dockercfg": "{s3cret-Pa55" })] },
      "MalformedSecret",
      "pull",
      /named by pullSecret param\) key \.dockercfg: registry credentials are not JSON/,
    ],
    [
      "dockerconfig workspace Secret missing",
      { workspaces: [secretWorkspace("ws")] },
      "SecretNotFound",
      "ws",
      /named by workspace dockerconfig\) not found/,
    ],
    [
      "dockerconfig workspace without config.json or .dockerconfigjson",
      { workspaces: [secretWorkspace("ws")], secrets: [secret("ws", "Opaque", { other: "s3cret-Pa55" })] },
      "MalformedSecret",
      "ws",
      /shows neither config\.json nor \.dockerconfigjson/,
    ],
    [
      "dockerconfig workspace bound to a claim",
      { workspaces: [{ name: "dockerconfig", persistentVolumeClaim: { claimName: "c" } }] },
      "UnsupportedWorkspace",
      "dockerconfig",
      /bound to persistentVolumeClaim; vmbuild reads it only from a Secret/,
    ],
    [
      "git basic-auth without password",
      { serviceAccount: sa(["gh"]), secrets: [secret("gh", "kubernetes.io/basic-auth", { username: "s3cret-Pa55" }, gitBasic)] },
      "MalformedSecret",
      "gh",
      /named by ServiceAccount pipeline \.secrets\) \(type kubernetes.io\/basic-auth\) has no "password" key/,
    ],
    [
      "docker basic-auth without username",
      {
        serviceAccount: sa(["q"]),
        secrets: [secret("q", "kubernetes.io/basic-auth", { password: "s3cret-Pa55" }, { "tekton.dev/docker-0": "quay.io" })],
      },
      "MalformedSecret",
      "q",
      /has no "username" key/,
    ],
    [
      "ssh-auth without ssh-privatekey",
      { serviceAccount: sa(["k"]), secrets: [secret("k", "kubernetes.io/ssh-auth", { known_hosts: "s3cret-Pa55" }, gitBasic)] },
      "MalformedSecret",
      "k",
      /has no "ssh-privatekey" key/,
    ],
    [
      "linked dockerconfigjson that is not a docker config",
      {
        serviceAccount: sa(["d"]),
        secrets: [secret("d", "kubernetes.io/dockerconfigjson", { ".dockerconfigjson": JSON.stringify({ auths: "s3cret-Pa55" }) })],
      },
      "MalformedSecret",
      "d",
      /neither a \.dockerconfigjson nor a \.dockercfg/,
    ],
    [
      "linked dockercfg without .dockercfg",
      { serviceAccount: sa([], ["c"]), secrets: [secret("c", "kubernetes.io/dockercfg", { ".dockerconfigjson": "s3cret-Pa55" })] },
      "MalformedSecret",
      "c",
      /named by ServiceAccount pipeline \.imagePullSecrets\) .* has no "\.dockercfg" key/,
    ],
    [
      "an empty git annotation",
      { serviceAccount: sa(["gh"]), secrets: [basicAuth("gh", { "tekton.dev/git-3": " " }, "u", "s3cret-Pa55")] },
      "MalformedSecret",
      "gh",
      /has an empty tekton\.dev\/git-3 annotation/,
    ],
    [
      "a git annotation that is no URL",
      { serviceAccount: sa(["gh"]), secrets: [basicAuth("gh", { "tekton.dev/git-0": "https://" }, "u", "s3cret-Pa55")] },
      "MalformedSecret",
      "gh",
      /has a tekton\.dev\/git-0 annotation that is not a URL or host/,
    ],
    [
      "two basic-auth Secrets for one git URL",
      {
        serviceAccount: sa(["a", "b"]),
        secrets: [basicAuth("a", gitBasic, "u", "s3cret-Pa55"), basicAuth("b", gitBasic, "u", "PRIVATE-KEY-BODY")],
      },
      "DuplicateCredential",
      "b",
      /Secret multi-arch-build\/b .* which Secret a already claims/,
    ],
    [
      "two basic-auth Secrets for one registry URL",
      {
        serviceAccount: sa(["a", "b"]),
        secrets: [basicAuth("a", { "tekton.dev/docker-0": "quay.io" }), basicAuth("b", { "tekton.dev/docker-1": "quay.io" })],
      },
      "DuplicateCredential",
      "b",
      /tekton\.dev\/docker-1 annotation, which Secret a already claims/,
    ],
  ])("%s", (_name, input, code, object, message) => {
    const error = errorOf(() => resolve(input));
    expect(error.code).toBe(code);
    expect(error.object).toBe(object);
    expect(error.namespace).toBe(NS);
    expect(error.message).toMatch(message);
    expect(error.message).toContain(object);
    for (const value of SECRET_VALUES) expect(error.message).not.toContain(value);
  });

  it("accepts several ssh keys for one host (Tekton tries each)", () => {
    const key = (name: string) => secret(name, "kubernetes.io/ssh-auth", { "ssh-privatekey": name }, { "tekton.dev/git-0": "github.com" });
    const result = resolve({ serviceAccount: sa(["k1", "k2"]), secrets: [key("k1"), key("k2")] });
    expect(result.git.map((g) => g.secretName)).toEqual(["k1", "k2"]);
  });
});

describe("secretsToRead", () => {
  it("lists the run's own Secrets as required, first, and each name once", () => {
    const serviceAccount = sa(["shared", "linked"], ["shared", "base", "pull"]);
    const wanted = plan({ serviceAccount, workspaces: [secretWorkspace("ws")], registrySecret: "shared", pullSecret: "base" });
    expect(wanted).toEqual([
      { name: "shared", required: true, source: { kind: "registrySecret" } },
      { name: "base", required: true, source: { kind: "pullSecret" } },
      { name: "ws", required: true, source: { kind: "workspace", workspace: "dockerconfig" } },
      { name: "linked", required: false, source: { kind: "serviceAccount", serviceAccount: "pipeline", field: "secrets" } },
      { name: "pull", required: false, source: { kind: "serviceAccount", serviceAccount: "pipeline", field: "imagePullSecrets" } },
    ]);
  });

  it("reads a pullSecret that is the registrySecret once", () => {
    expect(plan({ registrySecret: "registry", pullSecret: "registry" })).toEqual([
      { name: "registry", required: true, source: { kind: "registrySecret" } },
    ]);
  });

  it("needs nothing for a bare ServiceAccount", () => {
    expect(plan({ serviceAccount: { metadata: { name: "default" } } })).toEqual([]);
  });
});
