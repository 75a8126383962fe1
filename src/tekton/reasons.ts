// Every condition reason a user can see, in one place: the controller, the docs' troubleshooting table and the
// tests all read this registry.

export interface ReasonInfo {
  status: "Unknown" | "True" | "False";
  meaning: string;
  action: string;
  /**
   * The Event entering this reason records, if any. Every ending records one; of the reasons under way only those
   * a reader of `kubectl describe` needs: which VM the run got, and an attempt that runs again. The other phases
   * are in the condition and the web view, not worth a request per run each.
   */
  event?: "Normal" | "Warning";
}

export const REASONS = {
  Started: { status: "Unknown", meaning: "The controller accepted the run.", action: "Nothing: it moves on at once." },
  WaitingForVM: {
    status: "Unknown",
    meaning: "Every VM of the pool is leased; `kubectl vmbuild describe` and the web view show the run's place in the queue.",
    action: "Wait, or add replicas to the pool. queueTimeout bounds the wait.",
  },
  StartingVM: {
    status: "Unknown",
    meaning: "A VM is leased and starting while the source is fetched; the message names it and its pool.",
    action: "Wait. readyTimeout bounds it; a VM that never gets ready is scratched and one other is tried.",
    event: "Normal",
  },
  Building: {
    status: "Unknown",
    meaning: "podman builds on the VM; the message shows the current step per platform (refreshed at most every 10 s; every step is in the build log).",
    action: "Follow the build log at the log URL.",
  },
  Pushing: { status: "Unknown", meaning: "The manifest list and its images are being pushed.", action: "Wait." },
  Scratching: {
    status: "Unknown",
    meaning: "The VM is being stopped so its disk is thrown away; the outcome follows.",
    action: "Wait: the final condition is written once the VM is gone.",
  },
  Retrying: {
    status: "Unknown",
    meaning: "An attempt failed and spec.retries allows another; earlier attempts are in status.retriesStatus.",
    action: "Look at retriesStatus for why the last attempt failed.",
    event: "Warning",
  },
  Recovering: {
    status: "Unknown",
    meaning:
      "The controller replica executing the run was lost (killed, its node gone, or its drain deadline passed): its VM is scratched and the attempt runs again on a fresh VM, at most twice per run, without using spec.retries.",
    action: "Nothing: status.extraFields.recoveries counts these re-runs; the Event names the lost replica.",
    event: "Warning",
  },
  Succeeded: { status: "True", meaning: "The image is built, pushed and the VM scratched.", action: "Use the IMAGE_DIGEST result." },
  InvalidParams: {
    status: "False",
    meaning: "A param, a VMBuild field or a field of the CustomRun's spec (timeout, workspaces) is unknown or invalid; the message names it and what is allowed.",
    action: "Fix the named field in the Pipeline task, the VMBuild or the CustomRun.",
  },
  VMBuildNotFound: {
    status: "False",
    meaning: "customRef.name names a VMBuild that does not exist in the run's namespace.",
    action: "Create the VMBuild or fix the taskRef name.",
  },
  PoolNotFound: {
    status: "False",
    meaning: "The VirtualMachinePool named by pool does not exist.",
    action: "Create the pool or fix the pool param.",
  },
  PoolNotAllowed: {
    status: "False",
    meaning: "The pool is in another namespace that does not list the run's namespace in vmbuild.dev/allowed-namespaces.",
    action: "Annotate the pool with the namespaces allowed to use it.",
  },
  PoolMisconfigured: {
    status: "False",
    meaning: "The pool's annotations that say how podman is reached are missing or invalid (by default ssh, which needs vmbuild.dev/ssh-secret); found before any VM is leased.",
    action: "Fix the pool annotation the message names (SECURITY.md, Transport).",
  },
  QueueTimeout: {
    status: "False",
    meaning: "No VM of the pool became free within queueTimeout.",
    action: "Add replicas to the pool or raise queueTimeout.",
  },
  VMNotReady: {
    status: "False",
    meaning: "Two VMs in a row did not get ready (podman answering) within readyTimeout; both were scratched.",
    action: "Check the pool's template, its readiness probe and the podman service on the VM.",
  },
  VMConnectionFailed: {
    status: "False",
    meaning:
      "The VM's podman could not be reached the way its pool says: the pool's ssh annotations or Secret are invalid, the VM's host key does not match the Secret's known_hosts, or the VM refused the Secret's key; the message says which. The VM was scratched.",
    action: "Fix the pool's vmbuild.dev/* transport annotations or its ssh Secret (SECURITY.md, Transport).",
  },
  InvalidSecret: {
    status: "False",
    meaning:
      "The run's credentials could not be read: its ServiceAccount, the registrySecret, the pullSecret, or the dockerconfig workspace's Secret is missing or malformed; the message names it.",
    action: "Create or fix the named object in the run's namespace (Secrets as Tekton expects them).",
  },
  SourceFailed: {
    status: "False",
    meaning: "The git source could not be fetched, or the context could not be sent.",
    action: "Check gitUrl, gitRevision, contextDir and the repository's credentials.",
  },
  BuildFailed: {
    status: "False",
    meaning: "podman reported an error building the image; the message holds the last lines of the build.",
    action: "Fix the Containerfile or the build (a base image from a private registry needs pullSecret); the full log is at the log URL.",
  },
  PushFailed: {
    status: "False",
    meaning: "The image was built but the registry refused or could not take the push.",
    action: "Check the registry credentials (registrySecret), the image name and tlsVerify.",
  },
  BuildTimedOut: {
    status: "False",
    meaning: "The build and push took longer than buildTimeout.",
    action: "Raise buildTimeout or make the build faster.",
  },
  ControllerRestarted: {
    status: "False",
    meaning:
      "The controller replica executing the build was lost a third time (two transparent re-runs were spent, see Recovering) and no retries were left.",
    action: "Look at the controller's pods (crash loop, evictions); re-run the pipeline, or set retries on the task.",
  },
  CustomRunTimedOut: {
    status: "False",
    meaning: "The run took longer than its spec.timeout; the VM was scratched.",
    action: "Raise the task's timeout in the Pipeline.",
  },
  CustomRunCancelled: {
    status: "False",
    meaning: "The run was cancelled (or the PipelineRun timed out); the message is Tekton's statusMessage.",
    action: "Nothing: the VM was scratched.",
  },
} as const satisfies Record<string, ReasonInfo>;

export type Reason = keyof typeof REASONS;

/** The Event type entering `reason` records, if it records one: Warning for failures and re-runs. */
export function eventType(reason: string, status: ReasonInfo["status"]): "Normal" | "Warning" | undefined {
  const info: ReasonInfo | undefined = (REASONS as Record<string, ReasonInfo>)[reason];
  if (status !== "Unknown") return status === "False" ? "Warning" : "Normal";
  return info?.event;
}
export type FailureReason = { [K in Reason]: (typeof REASONS)[K]["status"] extends "False" ? K : never }[Reason];
export type ProgressReason = { [K in Reason]: (typeof REASONS)[K]["status"] extends "Unknown" ? K : never }[Reason];
