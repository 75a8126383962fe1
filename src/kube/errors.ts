import { ApiException } from "@kubernetes/client-node";

/** HTTP status of an API error, or undefined for anything else (network errors, bugs). */
export function apiStatus(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

export const isNotFound = (err: unknown) => apiStatus(err) === 404;
export const isConflict = (err: unknown) => apiStatus(err) === 409;

/** An API call that may succeed when tried again: no answer at all (connection refused, reset), 429 or a 5xx. */
export function isTransient(err: unknown): boolean {
  const status = apiStatus(err);
  if (status !== undefined) return status === 429 || status >= 500;
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  return err.name === "FetchError" || (typeof code === "string" && SYSTEM_ERROR.test(code));
}

/** Node's socket errors (ECONNREFUSED, ECONNRESET, EAI_AGAIN) and undici's (UND_ERR_SOCKET), not our own codes. */
const SYSTEM_ERROR = /^(?:E[A-Z_]+|UND_ERR_[A-Z_]+)$/;

/** A short description of an API error: status and the server's message, without the response headers. */
export function describeApiError(err: unknown): string {
  if (err instanceof ApiException) {
    const body: unknown = typeof err.body === "string" ? safeJson(err.body) : err.body;
    const message =
      body && typeof body === "object" && "message" in body && typeof body.message === "string" ? body.message : "";
    return `HTTP ${err.code}${message ? `: ${message}` : ""}`;
  }
  return err instanceof Error ? err.message : String(err);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
