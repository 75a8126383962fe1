import type { PodmanClient } from "../podman/client.js";
import { permanentTransportError } from "../podman/errors.js";
import { backoffMs, type Backoff } from "../timing/backoff.js";
import type { JobHandle } from "./jobs.js";
import { StageError } from "./stage-error.js";

const PODMAN_BACKOFF = { baseMs: 100, maxMs: 2_000, maxExponent: 5 };
// A refused connect to a guest still booting costs ~0.2 ms of CPU: every 0.5 s at most, the session opens well
// within a readiness probe's period (the example pool's: 5 s) after sshd starts, and a long boot stays cheap.
const WARM_BACKOFF = { baseMs: 20, maxMs: 500, maxExponent: 5 };

/**
 * Waits until every VM is Ready. Each has its address before (the guest still boots): the transports' sessions (the
 * ssh handshakes) open meanwhile, so the build does not wait for them after. True when an address changed meanwhile:
 * the clients must be made again.
 */
export async function untilReady(clients: readonly PodmanClient[], job: JobHandle): Promise<boolean> {
  let ready = false;
  for (const podman of clients) void warm(podman, () => ready, job.signal);
  try {
    return await job.ready();
  } catch {
    throw new StageError("connecting", "BuildFailed", "cancelled while waiting for the VMs");
  } finally {
    ready = true;
  }
}

export async function untilPodmanAnswers(clients: readonly PodmanClient[], signal: AbortSignal): Promise<void> {
  await Promise.all(clients.map((podman) => ping(podman, signal)));
}

/** Tries to open the session until it is open, the VM is Ready or the key is refused; the ping reports failures. */
async function warm(podman: PodmanClient, ready: () => boolean, signal: AbortSignal): Promise<void> {
  for (let attempt = 0; !ready() && !signal.aborted; attempt++) {
    try {
      await podman.warm();
      return;
    } catch (err) {
      if (permanentTransportError(err)) return;
      await pause(attempt, WARM_BACKOFF);
    }
  }
}

/** podman may take a while after the VMI is Ready (without a readiness probe): retry until the caller gives up. */
async function ping(podman: PodmanClient, signal: AbortSignal): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    if (signal.aborted) throw new StageError("connecting", "BuildFailed", "cancelled while waiting for podman");
    try {
      await podman.ping(AbortSignal.any([signal, AbortSignal.timeout(5_000)]));
      return;
    } catch (err) {
      // A host key that does not match, a key the VM refuses: waiting cannot help.
      const fatal = permanentTransportError(err);
      if (fatal) throw new StageError("connecting", "VMConnectionFailed", fatal.message);
      await pause(attempt, PODMAN_BACKOFF);
    }
  }
}

const pause = (attempt: number, backoff: Backoff): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, backoffMs(attempt, backoff)));
