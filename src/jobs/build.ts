import { mkdtemp, readdir, rm } from "node:fs/promises";
import type { Logger } from "pino";
import { join, posix } from "node:path";
import type { RunResult } from "../tekton/customrun.js";
import type { BuildSettings } from "../api/settings.js";
import { createPodmanClient, type PodmanClient } from "../podman/client.js";
import type { PodmanConnection } from "../podman/connection.js";
import { buildFailureMessage, withoutAutomaticArgs } from "../podman/build-events.js";
import { fetchSource, type GitFetchAuth } from "../source/git.js";
import { packContext } from "../source/context-tar.js";
import { getManifest, inspectManifest, putManifest, resolveDigest, type ServedManifest } from "../registry/client.js";
import { parseImageReference, withDigest } from "../api/image-reference.js";
import { z } from "zod";
import { credentialsFor } from "../credentials/docker-config.js";
import type { RegistryLogins } from "../credentials/tekton.js";
import { buildRequest, pushRequest } from "./build-requests.js";
import type { JobHandle, JobView } from "./jobs.js";
import type { BuildLog } from "./log.js";
import { untilPodmanAnswers, untilReady } from "./podman-ready.js";
import { StageError } from "./stage-error.js";
import { withoutCredentials } from "../api/git-url.js";

// One build, start to end: the source fetched while the VMs boot, podman answering, the context streamed into a
// multi-platform build, the manifest list pushed and its digest confirmed with the registry. With several VMs
// (fan-out) each builds and pushes its platforms under a tag of their own, then the index is assembled from what
// they pushed. The VMs are the caller's to scratch.

/** One VM of the build and the platforms it builds. */
export interface BuildVM {
  vm: string;
  vmNamespace: string;
  platforms: string[];
}

/** podman's endpoint on a VM, e.g. tcp://10.0.0.5:8888, or a prepared (ssh) connection. */
export type Endpoint = string | PodmanConnection;

/** Thrown by BuildInput.connect when a VM cannot be reached (its pool's transport settings, say). */
export class VMConnectionError extends Error {}

export interface BuildInput {
  run: { namespace: string; name: string; uid: string };
  attempt: number;
  /** The controller's log, for operators (the build log is `log`). */
  logger: Logger;
  vms: BuildVM[];
  /**
   * Waits until every VM is up, then opens each one's podman endpoint, in the order of vms. The source is fetched
   * meanwhile: the fetch overlaps the boot.
   */
  connect(signal: AbortSignal): Promise<Endpoint[]>;
  settings: BuildSettings;
  /** The build request carries the pull logins; the pushes and the registry calls the push ones. */
  credentials: RegistryLogins;
  workDir: string;
  maxContextBytes: number;
  log: BuildLog;
  /** Credentials for the git fetch; they never reach the VM. */
  gitAuth?: GitFetchAuth;
  /** Where users read the full log. */
  logURL: string;
}

type Final = JobView & { state: "succeeded" | "failed" };

const CHECKOUT_PREFIX = "src-";

interface Target extends BuildVM {
  endpoint: Endpoint;
}

/** What the registry serves of a manifest a run pushed, and where its tag points now if another push moved it. */
interface Pushed {
  served: ServedManifest;
  tagMovedTo?: string;
}

interface Built {
  target: Target;
  pushed: Pushed;
  pushedTo: string;
}

export async function runBuild(input: BuildInput, job: JobHandle): Promise<Final> {
  const checkout = await mkdtemp(join(input.workDir, CHECKOUT_PREFIX));
  let clients: PodmanClient[] = [];
  const { settings } = input;
  const vms = input.vms.map((t) => t.vm).join(", ");
  // What the run reports however it ends; a failed build reports what was known when it failed.
  const known: RunResult[] = [
    { name: "BUILD_VM", value: input.vms.map((t) => `${t.vmNamespace}/${t.vm}`).join(",") },
    { name: "LOG_URL", value: input.logURL },
  ];
  try {
    job.progress("fetching", `Fetching ${withoutCredentials(settings.gitUrl)} ${settings.gitRevision || "(default branch)"}`);
    const commit = await fetchStage(input, checkout, job.signal);
    known.unshift({ name: "CHAINS-GIT_URL", value: withoutCredentials(settings.gitUrl) }, { name: "CHAINS-GIT_COMMIT", value: commit });
    input.log.line(`source ${withoutCredentials(settings.gitUrl)} at ${commit}`);
    job.progress("connecting", `Waiting for VM ${vms}`);
    let endpoints = await connectStage(input, job.signal);
    clients = endpoints.map((endpoint) => createPodmanClient(endpoint));
    if (await untilReady(clients, job)) {
      await Promise.all(clients.splice(0).map((c) => c.close()));
      endpoints = await connectStage(input, job.signal);
      clients = endpoints.map((endpoint) => createPodmanClient(endpoint));
    }
    await untilPodmanAnswers(clients, job.signal);
    const targets: Target[] = input.vms.map((vm, i) => ({ ...vm, endpoint: endpoints[i] as Endpoint }));
    const buildStart = Date.now();
    const fanout = targets.length > 1;
    let pushStart: number | undefined;
    // One failing VM stops the others: the run fails at once, naming the platform.
    const abort = new AbortController();
    const signal = AbortSignal.any([job.signal, abort.signal]);
    const built = await Promise.all(
      targets.map(async (target, i): Promise<Built> => {
        try {
          const podman = clients[i] as PodmanClient;
          const manifest = `vmbuild-${input.run.uid}-${input.attempt}`;
          await buildStage(input, target, podman, checkout, manifest, { ...job, signal });
          job.progress("pushing", `Pushing ${settings.image} (${target.platforms.join(", ")})`);
          pushStart ??= Date.now();
          const pushedTo = fanout ? platformTag(settings.image, target.platforms) : settings.image;
          return { target, pushedTo, pushed: await pushStage(input, podman, manifest, pushedTo, signal) };
        } catch (err) {
          abort.abort();
          throw err instanceof StageError && fanout && !job.signal.aborted
            ? new StageError(err.stage, err.reason, `${target.platforms.join(", ")} on VM ${target.vm}: ${err.message}`)
            : err;
        }
      }),
    );
    const { served, tagMovedTo } = fanout ? await assembleIndex(input, built, job.signal) : (built[0] as Built).pushed;
    const pushedFrom = pushStart ?? Date.now();
    const durations = { buildMs: pushedFrom - buildStart, pushMs: Date.now() - pushedFrom };
    const digest = served.digest;
    const results: RunResult[] = [
      { name: "IMAGE_URL", value: settings.image },
      { name: "IMAGE_DIGEST", value: digest },
      { name: "PLATFORM_DIGESTS", value: platformDigests(served, settings.platforms) },
      ...known,
    ];
    input.log.line(`pushed ${settings.image}@${digest}`);
    return {
      state: "succeeded",
      results,
      summary:
        `Built ${settings.platforms.join(", ")} from commit ${commit.slice(0, 12)} on ${fanout ? "VMs" : "VM"} ${vms} and pushed ${settings.image}@${digest}.` +
        (tagMovedTo ? ` The tag has since moved on to ${tagMovedTo} (another push of the same tag).` : ""),
      durations,
    };
  } catch (err) {
    const failure =
      err instanceof StageError ? err : new StageError("building", "BuildFailed", `internal error: ${String(err)}`);
    input.log.line(`error: ${failure.message}`);
    const message = `${failure.message}\nFull log: ${input.logURL}`;
    return { state: "failed", stage: failure.stage, reason: failure.reason, message, results: known };
  } finally {
    await Promise.all([rm(checkout, { recursive: true, force: true }), ...clients.map((c) => c.close()), input.log.close()]);
  }
}

/** Where a fan-out VM pushes its platform before the index exists: `app:1.2` → `app:1.2-linux-arm64`. */
export function platformTag(image: string, platforms: readonly string[]): string {
  const ref = parseImageReference(image);
  const name = image.slice(0, image.length - (ref.tag !== undefined ? ref.tag.length + 1 : 0));
  const suffix = platforms.map((p) => p.replaceAll("/", "-")).join("-");
  return `${name}:${`${ref.tag ?? "latest"}-${suffix}`.slice(0, 128)}`;
}

/**
 * The index users pull: the entries of every fan-out VM's pushed list, in one list of the same media type, put
 * under the image's tag. Its digest is confirmed with the registry like a single-VM push.
 */
async function assembleIndex(input: BuildInput, built: readonly Built[], signal: AbortSignal): Promise<Pushed> {
  const { settings } = input;
  const login = credentialsFor(input.credentials.push, settings.image);
  const opts = { tlsVerify: settings.tlsVerify, signal };
  try {
    const parts = await Promise.all(built.map((b) => getManifest(b.pushedTo, login?.credentials, opts)));
    const lists = parts.map((raw) => IndexSchema.parse(JSON.parse(raw.bytes.toString("utf8"))));
    const mediaType = parts[0]?.mediaType || lists[0]?.mediaType || OCI_INDEX;
    const index = { schemaVersion: 2, mediaType, manifests: lists.flatMap((l) => l.manifests) };
    const bytes = Buffer.from(JSON.stringify(index));
    const digest = await putManifest(settings.image, { bytes, mediaType }, login?.credentials, opts);
    input.log.line(`assembled index ${digest} from ${built.map((b) => b.pushedTo).join(", ")}`);
    return await confirmPushed(input, settings.image, digest, signal);
  } catch (err) {
    throw new StageError("pushing", "PushFailed", `assembling the index: ${err instanceof Error ? err.message : String(err)}`);
  }
}

const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
// The entries are copied as podman wrote them (digest, size, mediaType, platform): passthrough keeps every field.
const IndexSchema = z.object({
  mediaType: z.string().optional(),
  manifests: z.array(z.object({ digest: z.string() }).passthrough()),
});

async function connectStage(input: BuildInput, signal: AbortSignal): Promise<Endpoint[]> {
  try {
    return await input.connect(signal);
  } catch (err) {
    if (signal.aborted) throw new StageError("connecting", "BuildFailed", "cancelled while waiting for the VMs");
    if (err instanceof VMConnectionError) throw new StageError("connecting", "VMConnectionFailed", err.message);
    throw err;
  }
}

async function fetchStage(input: BuildInput, dir: string, signal: AbortSignal): Promise<string> {
  try {
    const { commit } = await fetchSource({
      url: input.settings.gitUrl,
      revision: input.settings.gitRevision,
      dir,
      signal,
      ...input.gitAuth,
    });
    return commit;
  } catch (err) {
    throw new StageError("fetching", "SourceFailed", err instanceof Error ? err.message : String(err));
  }
}

async function buildStage(
  input: BuildInput,
  target: Target,
  podman: PodmanClient,
  checkout: string,
  manifest: string,
  job: JobHandle,
): Promise<void> {
  const { settings } = input;
  let context;
  try {
    context = await packContext({
      root: checkout,
      contextDir: settings.contextDir,
      dockerfile: posix.join(settings.contextDir, settings.dockerfile),
      maxBytes: input.maxContextBytes,
    });
  } catch (err) {
    throw new StageError("fetching", "SourceFailed", err instanceof Error ? err.message : String(err));
  }
  job.progress("building", `Building ${target.platforms.join(", ")} on VM ${target.vm}`);
  let error: string | undefined;
  try {
    await podman.manifestDelete(manifest, job.signal);
    input.logger.info({ vm: target.vm, platforms: target.platforms }, "build request sent");
    const sending = Date.now();
    // 'end': the HTTP client has read the whole tar, so podman has it but for what sits in socket buffers. The
    // rate of the stream alone, apart from podman's unpacking before its first step.
    context.tar.once("end", () => input.log.line(contextSent(context.bytesRead(), Date.now() - sending, target.vm)));
    const what = { context: context.tar, dockerfile: context.dockerfile, platforms: target.platforms, manifest };
    const events = podman.build(buildRequest(settings, input.credentials, what), job.signal);
    let started = false;
    for await (const event of events) {
      if (event.kind === "step") {
        if (!started) {
          // podman has the context unpacked: how long that took is an operator's question, not in the status.
          started = true;
          input.logger.info({ vm: target.vm }, "first build step");
        }
        const line = `${event.platform ? `[${event.platform}] ` : ""}STEP ${event.step}/${event.total}: ${event.text}`;
        input.log.line(line);
        job.progress("building", line);
      } else if (event.kind === "output") {
        const text = withoutAutomaticArgs(event.text);
        if (text !== undefined) input.log.line(event.platform ? `[${event.platform}] ${text}` : text);
      } else if (event.kind === "error") {
        error = event.message;
      }
    }
  } catch (err) {
    if (job.signal.aborted) throw new StageError("building", "BuildFailed", "cancelled");
    throw new StageError("building", "BuildFailed", err instanceof Error ? err.message : String(err));
  }
  if (error !== undefined) {
    throw new StageError("building", "BuildFailed", buildFailureMessage(error, input.log.tail(24).split("\n")));
  }
}

async function pushStage(
  input: BuildInput,
  podman: PodmanClient,
  manifest: string,
  destination: string,
  signal: AbortSignal,
): Promise<Pushed> {
  let pushed: string;
  try {
    const request = pushRequest(input.settings, input.credentials, destination);
    pushed = await podman.manifestPush(manifest, destination, request, signal);
  } catch (err) {
    throw new StageError("pushing", "PushFailed", err instanceof Error ? err.message : String(err));
  }
  return confirmPushed(input, destination, pushed, signal);
}

/**
 * What the registry serves of the manifest this run pushed, read by its digest: another run pushing the same tag
 * meanwhile (a shared `:latest`) moves the tag, not what this run pushed. A tag that moved on is noted, not failed.
 */
async function confirmPushed(input: BuildInput, destination: string, pushed: string, signal: AbortSignal): Promise<Pushed> {
  const login = credentialsFor(input.credentials.push, destination)?.credentials;
  const opts = { tlsVerify: input.settings.tlsVerify, signal };
  let served: ServedManifest;
  let tagged: string;
  try {
    served = await inspectManifest(withDigest(destination, pushed), login, opts);
    tagged = await resolveDigest(destination, login, opts);
  } catch (err) {
    throw new StageError("pushing", "PushFailed", `pushed ${pushed}, but the registry does not serve it: ${String(err)}`);
  }
  if (served.digest !== pushed) {
    throw new StageError("pushing", "PushFailed", `podman pushed ${pushed} but the registry serves ${served.digest} for it`);
  }
  if (tagged === pushed) return { served };
  input.log.line(`note: ${destination} has moved on to ${tagged} (another push of the same tag); this run pushed ${pushed}`);
  return { served, tagMovedTo: tagged };
}

/** `context: 1.0 GiB sent to VM vm-1 in 5.1 s (201 MiB/s)` */
export function contextSent(bytes: number, ms: number, vm: string): string {
  const units = [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]] as const;
  const [unit, size] = units.find(([, s]) => bytes >= s) ?? units[2];
  const duration = ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
  const rate = Math.round(bytes / 2 ** 20 / (Math.max(ms, 1) / 1000));
  return `context: ${(bytes / size).toFixed(1)} ${unit} sent to VM ${vm} in ${duration} (${rate} MiB/s)`;
}

/** `linux/amd64=sha256:…,linux/arm64=sha256:…`, in the order the platforms were asked for. */
function platformDigests(served: ServedManifest, platforms: readonly string[]): string {
  const rank = (p: string) => (platforms.includes(p) ? platforms.indexOf(p) : platforms.length);
  return [...served.platforms]
    .sort((a, b) => rank(a.platform) - rank(b.platform))
    .map((p) => `${p.platform}=${p.digest}`)
    .join(",");
}

/** Source checkouts left by a previous process (killed mid-build): no job of this one uses them. */
export async function removeStaleCheckouts(workDir: string): Promise<void> {
  const entries = await readdir(workDir).catch(() => []);
  await Promise.all(
    entries.filter((e) => e.startsWith(CHECKOUT_PREFIX)).map((e) => rm(join(workDir, e), { recursive: true, force: true })),
  );
}
