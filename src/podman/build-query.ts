/** What to build: the part of a build request that becomes the query string. */
export interface BuildQuery {
  /** Path of the Dockerfile inside the context tar. */
  dockerfile: string;
  /** `os/arch[/variant]`, one per platform. */
  platforms: readonly string[];
  /** Local manifest list the per-platform images are added to. */
  manifest: string;
  buildArgs?: Readonly<Record<string, string>> | undefined;
  labels?: Readonly<Record<string, string>> | undefined;
  /** Pull base images even when present (libpod reads `pullpolicy`, not `pull`). */
  pull?: boolean | undefined;
  /** Verify TLS when pulling base images; unset leaves it to the VM's registries.conf. */
  tlsVerify?: boolean | undefined;
}

const PLATFORM = /^[a-z0-9]+\/[a-z0-9_]+(?:\/[a-z0-9]+)?$/;

/**
 * Query string for `POST /libpod/build`. Platforms are repeated parameters: podman 4.3 misparses a comma list
 * into one platform. `isolation` is never sent, so the VM's own containers.conf decides.
 */
export function buildQueryString(query: BuildQuery): string {
  if (query.platforms.length === 0) throw new RangeError("build needs at least one platform");
  const params = new URLSearchParams();
  params.set("dockerfile", query.dockerfile);
  params.set("manifest", query.manifest);
  for (const platform of query.platforms) {
    if (!PLATFORM.test(platform)) throw new RangeError(`invalid platform ${JSON.stringify(platform)}`);
    params.append("platform", platform);
  }
  // podman's default (jobs=1) builds the platforms one after another; one job each builds them side by side, so
  // a VM's cores are all used and the build takes the longest platform's time, not the sum.
  params.set("jobs", String(query.platforms.length));
  if (query.buildArgs !== undefined && Object.keys(query.buildArgs).length > 0) {
    params.set("buildargs", JSON.stringify(query.buildArgs));
  }
  if (query.labels !== undefined && Object.keys(query.labels).length > 0) {
    params.set("labels", JSON.stringify(query.labels));
  }
  if (query.pull === true) params.set("pullpolicy", "always");
  // Podman applies tlsVerify only when the parameter is present.
  if (query.tlsVerify !== undefined) params.set("tlsVerify", String(query.tlsVerify));
  return params.toString();
}
