export type RegistryFailure = "AuthFailed" | "NotFound" | "Unreachable" | "Failed";

/** A failed registry request. Names the image and registry host; never carries a credential or token. */
export class RegistryError extends Error {
  override readonly name = "RegistryError";
  readonly reason: RegistryFailure;
  readonly image: string;
  /** HTTP status, undefined when no response arrived. */
  readonly status: number | undefined;

  constructor(init: {
    reason: RegistryFailure;
    image: string;
    status?: number | undefined;
    detail: string;
    cause?: unknown;
  }) {
    const status = init.status === undefined ? "" : ` (HTTP ${init.status})`;
    super(`registry ${REASON_TEXT[init.reason]} for ${init.image}${status}: ${init.detail}`, { cause: init.cause });
    this.reason = init.reason;
    this.image = init.image;
    this.status = init.status;
  }
}

const REASON_TEXT: Record<RegistryFailure, string> = {
  AuthFailed: "authentication failed",
  NotFound: "manifest not found",
  Unreachable: "unreachable",
  Failed: "request failed",
};
