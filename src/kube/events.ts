import type { CoreV1Api } from "@kubernetes/client-node";

export interface EventTarget {
  apiVersion: string;
  kind: string;
  namespace: string;
  name: string;
  uid: string;
}

const COMPONENT = "vmbuild-controller";
// The API server limits an Event's message; keep it well under that.
const MAX_MESSAGE = 1024;

export async function recordEvent(
  core: CoreV1Api,
  target: EventTarget,
  type: "Normal" | "Warning",
  reason: string,
  message: string,
  now: Date,
): Promise<void> {
  const time = now.toISOString();
  await core.createNamespacedEvent({
    namespace: target.namespace,
    body: {
      metadata: { generateName: `${target.name}.`, namespace: target.namespace },
      involvedObject: {
        apiVersion: target.apiVersion,
        kind: target.kind,
        namespace: target.namespace,
        name: target.name,
        uid: target.uid,
      },
      type,
      reason,
      message: message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 3)}...` : message,
      source: { component: COMPONENT },
      reportingComponent: COMPONENT,
      reportingInstance: process.env.HOSTNAME ?? COMPONENT,
      firstTimestamp: now,
      lastTimestamp: now,
      eventTime: undefined,
      count: 1,
      action: reason,
    } as Parameters<CoreV1Api["createNamespacedEvent"]>[0]["body"],
  }).then(() => undefined, (err: unknown) => {
    throw new Error(`recording event ${reason} at ${time}: ${String(err)}`);
  });
}
