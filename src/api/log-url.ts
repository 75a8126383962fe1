// LOG_URL: where users read a run attempt's build log, a result of every run however it ends.

/** Where a run's log is served: `<baseURL>/logs/<namespace>/<name>[/<attempt>]`; baseURL may have a path. */
export function logURL(baseURL: string, namespace: string, name: string, attempt?: number): string {
  const base = new URL(baseURL);
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  const parts = ["logs", namespace, name, ...(attempt === undefined ? [] : [String(attempt)])];
  return new URL(parts.map(encodeURIComponent).join("/"), base).toString();
}
