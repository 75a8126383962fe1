// JSON-lines logger on stdout: testenv captures it into its logs directory.
export type LogFields = Record<string, unknown>;

function write(level: "info" | "warn" | "error", msg: string, fields: LogFields): void {
  process.stdout.write(`${JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields })}\n`);
}

export const log = {
  info: (msg: string, fields: LogFields = {}): void => write("info", msg, fields),
  warn: (msg: string, fields: LogFields = {}): void => write("warn", msg, fields),
  error: (msg: string, fields: LogFields = {}): void => write("error", msg, fields),
};

/** An error's message for log fields, without losing non-Error throwables. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
