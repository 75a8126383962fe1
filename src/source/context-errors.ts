/** Which input named a bad path. */
export type ContextPathField = "contextDir" | "dockerfile" | "ignoreFile";

/** A context directory or Dockerfile that is missing, of the wrong kind, or resolves outside the source root. */
export class ContextPathError extends Error {
  override readonly name = "ContextPathError";
  readonly field: ContextPathField;
  /** The path as given (relative to the source root). */
  readonly path: string;
  readonly problem: "outside-root" | "not-found" | "not-a-directory" | "not-a-file";

  constructor(field: ContextPathField, path: string, problem: ContextPathError["problem"]) {
    super(`${field} ${JSON.stringify(path)}: ${PROBLEM_TEXT[problem]}`);
    this.field = field;
    this.path = path;
    this.problem = problem;
  }
}

const PROBLEM_TEXT: Record<ContextPathError["problem"], string> = {
  "outside-root": "resolves outside the source checkout",
  "not-found": "does not exist in the source checkout",
  "not-a-directory": "is not a directory",
  "not-a-file": "is not a regular file",
};

/** The context holds more file data than allowed; raised by the tar stream before the excess is sent. */
export class ContextTooLargeError extends Error {
  override readonly name = "ContextTooLargeError";
  readonly maxBytes: number;
  /** File bytes counted when the limit was crossed (a lower bound of the context's size). */
  readonly countedBytes: number;

  constructor(maxBytes: number, countedBytes: number) {
    super(`build context exceeds ${maxBytes} bytes of file data (at least ${countedBytes} bytes)`);
    this.maxBytes = maxBytes;
    this.countedBytes = countedBytes;
  }
}
