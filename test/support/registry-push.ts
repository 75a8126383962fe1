import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { parseWwwAuthenticate } from "../../src/registry/www-authenticate.js";

/** What was pushed: the per-arch manifests and the index listing them. */
export interface PushedImage {
  manifests: { arch: string; digest: string }[];
  indexDigest: string;
}

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";

/**
 * Pushes a tiny two-arch image (one empty layer, OCI index on `tag`, each arch manifest also on
 * `tag-<arch>`) straight through the registry API, with whatever auth the registry challenges for.
 */
export async function pushTestImage(
  registryHost: string,
  repository: string,
  tag: string,
  login: { username: string; password: string },
): Promise<PushedImage> {
  const client = new ApiClient(`http://${registryHost}`, repository, login);
  // An empty tar: 1024 zero bytes.
  const layer = gzipSync(Buffer.alloc(1024));
  const diffId = sha256(Buffer.alloc(1024));
  await client.blob(layer);
  const manifests: (PushedImage["manifests"][number] & { size: number })[] = [];
  for (const arch of ["amd64", "arm64"]) {
    const config = Buffer.from(
      JSON.stringify({ architecture: arch, os: "linux", rootfs: { type: "layers", diff_ids: [diffId] }, config: {} }),
    );
    await client.blob(config);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: sha256(config), size: config.length },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha256(layer), size: layer.length }],
      }),
    );
    await client.manifest(`${tag}-${arch}`, manifest, OCI_MANIFEST);
    manifests.push({ arch, digest: sha256(manifest), size: manifest.length });
  }
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: manifests.map((entry) => ({
        mediaType: OCI_MANIFEST,
        digest: entry.digest,
        size: entry.size,
        platform: { os: "linux", architecture: entry.arch },
      })),
    }),
  );
  await client.manifest(tag, index, OCI_INDEX);
  return { manifests: manifests.map(({ arch, digest }) => ({ arch, digest })), indexDigest: sha256(index) };
}

function sha256(data: Buffer): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** Minimal registry API client for seeding: Basic or Bearer, whatever the registry asks for. */
class ApiClient {
  private authorization: string | undefined;

  constructor(
    private readonly base: string,
    private readonly repository: string,
    private readonly login: { username: string; password: string },
  ) {}

  async blob(data: Buffer): Promise<void> {
    const start = await this.send("POST", `/v2/${this.repository}/blobs/uploads/`, undefined, {});
    if (start.status !== 202) throw new Error(`blob upload start: HTTP ${start.status}`);
    const location = new URL(start.headers.get("location") ?? "", this.base);
    location.searchParams.set("digest", sha256(data));
    const put = await this.send("PUT", `${location.pathname}${location.search}`, data, {
      "content-type": "application/octet-stream",
    });
    if (put.status !== 201) throw new Error(`blob upload: HTTP ${put.status} ${await put.text()}`);
  }

  async manifest(reference: string, body: Buffer, mediaType: string): Promise<void> {
    const res = await this.send("PUT", `/v2/${this.repository}/manifests/${reference}`, body, { "content-type": mediaType });
    if (res.status !== 201) throw new Error(`manifest ${reference}: HTTP ${res.status} ${await res.text()}`);
  }

  private async send(method: string, path: string, body: Buffer | undefined, headers: Record<string, string>): Promise<Response> {
    const attempt = (): Promise<Response> =>
      fetch(`${this.base}${path}`, {
        method,
        body,
        headers: this.authorization === undefined ? headers : { ...headers, authorization: this.authorization },
      });
    const res = await attempt();
    if (res.status !== 401 || this.authorization !== undefined) return res;
    await res.arrayBuffer();
    const basic = `Basic ${Buffer.from(`${this.login.username}:${this.login.password}`).toString("base64")}`;
    const challenge = parseWwwAuthenticate(res.headers.get("www-authenticate") ?? "")[0];
    if (challenge?.scheme === "bearer" && challenge.params.realm !== undefined) {
      const url = new URL(challenge.params.realm);
      url.searchParams.set("service", challenge.params.service ?? "");
      url.searchParams.set("scope", `repository:${this.repository}:pull,push`);
      const token = (await (await fetch(url, { headers: { authorization: basic } })).json()) as { token: string };
      this.authorization = `Bearer ${token.token}`;
    } else {
      this.authorization = basic;
    }
    return attempt();
  }
}
