/** An image reference split into the parts a registry request needs, Docker-normalised. */
export interface ImageReference {
  /** `host[:port]`; `docker.io` for Docker Hub. */
  registry: string;
  /** Path inside the registry; Docker Hub's official images get `library/`. */
  repository: string;
  tag: string | undefined;
  digest: string | undefined;
}

export class InvalidImageReferenceError extends Error {
  override readonly name = "InvalidImageReferenceError";
  readonly reference: string;
  /** What is wrong with it, without the reference. */
  readonly why: string;
  constructor(reference: string, why: string) {
    super(`invalid image reference ${JSON.stringify(reference)}: ${why}`);
    this.reference = reference;
    this.why = why;
  }
}

export const DOCKER_HUB = "docker.io";
const DOCKER_HUB_ALIASES = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);

// The grammar of distribution/reference.
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const SHA256 = /^sha256:[a-f0-9]{64}$/;

/** Parses `[registry/]repo[:tag][@digest]` the way Docker does (`ubuntu` → docker.io/library/ubuntu). */
export function parseImageReference(reference: string): ImageReference {
  const at = reference.indexOf("@");
  const named = at === -1 ? reference : reference.slice(0, at);
  const digest = at === -1 ? undefined : reference.slice(at + 1);
  if (digest !== undefined && (!DIGEST.test(digest) || (digest.startsWith("sha256:") && !SHA256.test(digest)))) {
    throw new InvalidImageReferenceError(reference, "malformed digest");
  }

  const lastSlash = named.lastIndexOf("/");
  const colon = named.lastIndexOf(":");
  const hasTag = colon > lastSlash;
  const name = hasTag ? named.slice(0, colon) : named;
  const tag = hasTag ? named.slice(colon + 1) : undefined;
  if (tag !== undefined && !TAG.test(tag)) throw new InvalidImageReferenceError(reference, "malformed tag");
  if (name === "") throw new InvalidImageReferenceError(reference, "empty name");

  const slash = name.indexOf("/");
  const first = slash === -1 ? "" : name.slice(0, slash);
  const hasDomain = first !== "" && (first.includes(".") || first.includes(":") || first === "localhost");
  let registry = hasDomain ? first.toLowerCase() : DOCKER_HUB;
  let repository = hasDomain ? name.slice(slash + 1) : name;
  if (hasDomain && !DOMAIN.test(first)) throw new InvalidImageReferenceError(reference, "malformed registry host");
  if (DOCKER_HUB_ALIASES.has(registry)) {
    registry = DOCKER_HUB;
    if (!repository.includes("/")) repository = `library/${repository}`;
  }
  if (!repository.split("/").every((component) => PATH_COMPONENT.test(component))) {
    throw new InvalidImageReferenceError(reference, "malformed repository (lowercase letters, digits, separators)");
  }
  return { registry, repository, tag, digest };
}

/** `registry/repository[:tag][@digest]`, fully qualified. */
export function formatImageReference(ref: ImageReference): string {
  const tag = ref.tag === undefined ? "" : `:${ref.tag}`;
  const digest = ref.digest === undefined ? "" : `@${ref.digest}`;
  return `${ref.registry}/${ref.repository}${tag}${digest}`;
}

/** The same repository, pinned to `digest` (any tag dropped): what a digest check reads, whatever the tag does. */
export function withDigest(reference: string, digest: string): string {
  return formatImageReference({ ...parseImageReference(reference), tag: undefined, digest });
}

/** The host serving the registry API: Docker Hub's API lives on registry-1.docker.io. */
export function registryApiHost(registry: string): string {
  return registry === DOCKER_HUB ? "registry-1.docker.io" : registry;
}

/** Maps Docker Hub's historical names to `docker.io`; other hosts are lowercased. */
export function normalizeRegistryHost(host: string): string {
  const lower = host.toLowerCase();
  return DOCKER_HUB_ALIASES.has(lower) ? DOCKER_HUB : lower;
}
