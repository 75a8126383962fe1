import type { FailureReason } from "../tekton/reasons.js";
import type { JobStage } from "./jobs.js";

/** A build step that failed: the stage it failed in and the reason the run reports. */
export class StageError extends Error {
  constructor(
    readonly stage: JobStage,
    readonly reason: FailureReason,
    message: string,
  ) {
    super(message);
  }
}
