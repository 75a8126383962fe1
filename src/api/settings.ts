import { z } from "zod";
import { parseDuration } from "../timing/duration.js";
import { GIT_REVISION_FORM, GIT_URL, GIT_URL_FORMS, isGitRevision, parseGitUrl, withoutCredentials } from "./git-url.js";
import { DNS_LABEL, DNS_SUBDOMAIN } from "./names.js";
import { InvalidImageReferenceError, parseImageReference } from "./image-reference.js";

// The build settings of one run: the single source for the VMBuild spec, the CustomRun params, the types the
// controller uses inside, and the parameter reference in the docs. Precedence: params > VMBuild > defaults.

const PLATFORM = /^[A-Za-z0-9]+\/[A-Za-z0-9_]+(\/[A-Za-z0-9]+)?$/;
// Lowercase, and the architecture names uname and Debian use under the ones images and KubeVirt's architecture
// field use (containerd's normalization, as podman applies it): "linux/AArch64" must find an arm64 native pool
// and repeat "linux/arm64".
const ARCH_ALIASES: Record<string, string> = { x86_64: "amd64", aarch64: "arm64", i386: "386", armhf: "arm/v7", armel: "arm/v6" };
const canonicalPlatform = (given: string) => {
  const platform = given.toLowerCase();
  const [os, arch = "", variant] = platform.split("/");
  const alias = ARCH_ALIASES[arch];
  if (alias === undefined) return platform;
  return alias.includes("/") ? `${os}/${alias}` : [os, alias, variant].filter(Boolean).join("/");
};
// Docker's reference grammar, a tag but no digest: we push to it.
const IMAGE =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?$/;
const GIT_REVISION_CHARS = /^[^\s\0~^:?*[\\]*$/;
const BUILD_ARG_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const BUILD_ARGS_MAX = 65_536;

const relativePath = (what: string) =>
  z
    .string()
    .min(1)
    .max(1024)
    .refine((p) => !p.startsWith("/") && !p.split(/[\\/]/).includes(".."), {
      message: `${what} must be a relative path inside the repository, without ".."`,
    })
    .refine((p) => !/[\0\r\n]/.test(p), { message: `${what} must not contain control characters` });

const noRepeats = (what: string) => (items: string[], ctx: z.RefinementCtx) => {
  const twice = items.find((item, i) => items.indexOf(item) !== i);
  if (twice !== undefined) ctx.addIssue({ code: "custom", message: `${what} must not repeat: ${twice} is given twice` });
};

const poolRef = z.string().refine(
  (p) => {
    const parts = p.split("/");
    return parts.length <= 2 && parts.every((s, i) => (i === parts.length - 1 ? DNS_SUBDOMAIN : DNS_LABEL).test(s));
  },
  { message: "expected NAME or NAMESPACE/NAME of a VirtualMachinePool" },
);

// A Secret in the run's namespace holding a .dockerconfigjson or .dockercfg.
const secretName = z.string().regex(DNS_SUBDOMAIN, { message: "expected the name of a Secret" }).optional();

/** A platform or a duration: a few characters, however long a hostile value is. */
const shortString = () => z.string().max(64, { message: "expected at most 64 characters" });

const duration = (fallback: string) =>
  shortString()
    .refine((d) => parseDuration(d) !== undefined, { message: 'expected a duration such as "90s", "10m" or "1h30m"' })
    .default(fallback)
    .transform((d) => parseDuration(d) ?? 0);

/** What the reference grammar says is wrong with an image the pattern refused, as ": why" (or nothing). */
function imageProblem(input: unknown): string {
  if (typeof input !== "string") return "";
  if (input.includes("://")) return ": an image reference has no URL scheme, e.g. quay.example.com/team/app:1.2";
  if (input.includes("@")) return ": a digest names content, so nothing can be pushed to it; name a tag";
  try {
    parseImageReference(input);
  } catch (err) {
    if (err instanceof InvalidImageReferenceError) return `: ${err.why}`;
  }
  return "";
}

/** For a URL the pattern refused: what was likely meant, where that is plain. */
function gitUrlHint(input: unknown): string {
  if (typeof input !== "string") return "";
  if (/^file:|^ext::/i.test(input)) return "; the controller fetches over the network only";
  // "github.com/team/app": a host and a path, the scheme left out.
  if (/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+(:\d+)?\/\S+$/.test(input)) return `, e.g. https://${input}`;
  return "";
}

/** Params are strings; the VMBuild spec is typed YAML. Both forms are accepted for the same field. */
const commaList = (v: unknown) =>
  typeof v === "string"
    ? v
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s.length > 0)
    : v;
const boolText = (v: unknown) => (v === "true" ? true : v === "false" ? false : v);
const keyValueList = (v: unknown, ctx: z.RefinementCtx) => {
  if (!Array.isArray(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [i, item] of v.entries()) {
    if (typeof item !== "string" || !item.includes("=")) {
      ctx.addIssue({ code: "custom", message: 'expected "NAME=value"', path: [i], input: item });
      return z.NEVER;
    }
    const at = item.indexOf("=");
    out[item.slice(0, at)] = item.slice(at + 1);
  }
  return out;
};

export const settingsShape = {
  pool: poolRef
    .optional()
    .describe(
      "VirtualMachinePool to lease build VMs from: NAME (in the run's namespace) or NAMESPACE/NAME. Its VMs build any platform, foreign ones under qemu emulation; required unless nativePools cover every platform.",
    ),
  nativePools: z
    .preprocess(
      commaList,
      z
        .array(poolRef)
        .max(16)
        .superRefine(noRepeats("nativePools")),
    )
    .default([])
    .describe(
      "Pools of VMs that build their own architecture natively (read from the pool template's spec.template.spec.architecture): a platform of that architecture is built there instead of on `pool`. One pool per architecture.",
    ),
  strategy: z
    .enum(["single", "fanout"])
    .default("single")
    .describe(
      '"single": one VM builds every platform (the article\'s way). "fanout": one VM per platform in parallel, each pushes its image by digest, then the index is assembled and pushed.',
    ),
  platforms: z
    .preprocess(
      commaList,
      z
        .array(shortString().regex(PLATFORM, { message: "expected OS/ARCH[/VARIANT], e.g. linux/arm64" }).transform(canonicalPlatform))
        .min(1, { message: "at least one platform is required" })
        .max(16)
        .superRefine(noRepeats("platforms")),
    )
    .default(["linux/amd64"])
    .describe('Platforms to build, as a list or a comma-separated string: "linux/amd64,linux/arm64". Case is ignored, and architecture aliases are taken as their image names: x86_64 as amd64, aarch64 as arm64, i386 as 386, armhf as arm/v7, armel as arm/v6.'),
  image: z
    .string()
    .max(512)
    .regex(IMAGE, { error: (issue) => `expected an image reference REGISTRY/REPOSITORY[:TAG] (no digest)${imageProblem(issue.input)}` })
    .describe("Where to push the manifest list, e.g. quay.example.com/team/app:1.2. Defaults to tag latest."),
  gitUrl: z
    .string()
    .max(2048)
    // Only network transports: file:// would read the controller's own disk, ext:: runs commands. The pattern
    // (also the CRD's) lets through what parseGitUrl then judges: exactly the URLs the fetch takes.
    .regex(GIT_URL, { error: (issue) => `expected ${GIT_URL_FORMS}${gitUrlHint(issue.input)}` })
    .superRefine((url, ctx) => {
      const parsed = parseGitUrl(url);
      // The message goes into the run's status.
      const shown = withoutCredentials(url);
      if (!parsed.ok && GIT_URL.test(url)) ctx.addIssue({ code: "custom", message: parsed.message, input: shown });
    })
    .describe("Git repository holding the build context: http(s)://, git://, ssh:// or user@host:path (ssh with a kubernetes.io/ssh-auth Secret linked to the ServiceAccount, known_hosts included)."),
  gitRevision: z
    .string()
    .max(256)
    .regex(GIT_REVISION_CHARS, { message: "expected a branch, tag or commit" })
    .refine((r) => !r.startsWith("-"), { message: "a revision must not start with '-'" })
    // What the fetch takes (the pattern above, also the CRD's, is looser): refused here, not after a VM is leased.
    .refine((r) => r.startsWith("-") || !GIT_REVISION_CHARS.test(r) || isGitRevision(r), {
      message: `expected a branch, tag or commit: ${GIT_REVISION_FORM}`,
    })
    .default("")
    .describe("Branch, tag or commit to build; empty means the repository's default branch. A name that is both a branch and a tag means the branch."),
  contextDir: relativePath("contextDir").default(".").describe("Directory inside the repository to use as build context."),
  dockerfile: relativePath("dockerfile")
    .default("Dockerfile")
    .describe("Containerfile/Dockerfile path, relative to the context directory."),
  buildArgs: z
    .preprocess(
      keyValueList,
      z.record(z.string().regex(BUILD_ARG_KEY), z.string().max(4096), {
        error: (issue) =>
          issue.code === "invalid_type"
            ? 'expected a map, or a list of "NAME=value" strings'
            : issue.code === "invalid_key"
              ? "build arg names are letters, digits and _, and do not start with a digit"
              : undefined,
      }).superRefine((args, ctx) => {
        // Kept in the run's status and sent in podman's query string: far below what etcd and podman take.
        const size = Object.entries(args).reduce((sum, [name, value]) => sum + name.length + value.length, 0);
        if (size > BUILD_ARGS_MAX) {
          ctx.addIssue({ code: "custom", message: `build args hold ${size} characters of names and values; at most ${BUILD_ARGS_MAX}` });
        }
      }),
    )
    .default({})
    .describe('Build arguments: a map, or a list of "NAME=value" strings; 65536 characters of names and values at most.'),
  registrySecret: secretName.describe(
    "Secret (kubernetes.io/dockerconfigjson) in the run's namespace with credentials for the push. They reach the VM only with the push, after the build's RUN steps have ended.",
  ),
  pullSecret: secretName.describe(
    "Secret (kubernetes.io/dockerconfigjson) in the run's namespace with logins for pulling base images during the build; by default the build pulls anonymously. Name the registrySecret here to pull with the push login too (the build's RUN steps then share the VM with that login; see SECURITY.md).",
  ),
  tlsVerify: z
    .preprocess(boolText, z.boolean({ message: 'expected "true" or "false"' }))
    .default(true)
    .describe('Verify the registry\'s TLS certificate. Set "false" only for a registry you trust on an insecure network.'),
  queueTimeout: duration("30m").describe("How long a run may wait for a free VM before it fails."),
  readyTimeout: duration("10m").describe("How long a started VM may take until its podman answers."),
  buildTimeout: duration("0s").describe('Limit on the build and push; "0s" means only the run\'s own timeout applies.'),
};

export const SettingsSchema = z.strictObject(settingsShape);
export type BuildSettings = z.output<typeof SettingsSchema>;
export type SettingName = keyof typeof settingsShape;
export const SETTING_NAMES = Object.keys(settingsShape) as SettingName[];
