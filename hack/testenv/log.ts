// Progress lines go to stderr so that stdout stays clean for results (status, env path).
export function progress(message: string): void {
  process.stderr.write(`testenv: ${message}\n`);
}

export function warn(message: string): void {
  process.stderr.write(`testenv: WARNING: ${message}\n`);
}

/** Milliseconds since `start` as "1.2s". */
export function elapsed(start: number): string {
  return `${((Date.now() - start) / 1000).toFixed(1)}s`;
}
