/**
 * Pure parser for podman's build response: JSON lines (`{"stream": ...}`, `{"error": ..., "errorDetail": ...}`)
 * that may arrive split at any byte. The response is HTTP 200 even when the build fails, so an `error` event
 * is the only failure signal.
 */
import { cutMiddle } from "../api/cut-middle.js";

export type BuildEvent =
  | { kind: "step"; platform?: string; step: number; total: number; text: string }
  | { kind: "output"; platform?: string; text: string }
  | { kind: "error"; message: string }
  | { kind: "id"; id: string };

// `[linux/arm64] STEP 2/5: RUN uname -m`; the platform prefix appears only when several platforms are built.
const STEP_LINE = /^STEP (\d+)\/(\d+): (.*)$/;
const PLATFORM_PREFIX = /^\[([a-z0-9]+\/[a-z0-9_]+(?:\/[a-z0-9]+)?)\] (.*)$/;

export class BuildEventParser {
  private readonly decoder = new TextDecoder("utf-8");
  private pending = "";

  /** Feeds one chunk; returns the events of every line it completed. */
  push(chunk: Uint8Array | string): BuildEvent[] {
    this.pending += typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true });
    const events: BuildEvent[] = [];
    let newline = this.pending.indexOf("\n");
    while (newline !== -1) {
      events.push(...parseLine(this.pending.slice(0, newline)));
      this.pending = this.pending.slice(newline + 1);
      newline = this.pending.indexOf("\n");
    }
    return events;
  }

  /** Flushes a last line that had no newline. */
  end(): BuildEvent[] {
    this.pending += this.decoder.decode();
    const rest = this.pending;
    this.pending = "";
    return parseLine(rest);
  }
}

/** Parses a whole response body into events, as they arrive. */
export async function* parseBuildEvents(chunks: AsyncIterable<Uint8Array | string>): AsyncGenerator<BuildEvent> {
  const parser = new BuildEventParser();
  for await (const chunk of chunks) {
    yield* parser.push(chunk);
  }
  yield* parser.end();
}

function parseLine(raw: string): BuildEvent[] {
  const line = raw.trim();
  if (line === "") return [];
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    // Not JSON: keep the text rather than lose what the service said.
    return [{ kind: "output", text: line }];
  }
  if (!isRecord(value)) return [{ kind: "output", text: line }];

  const message = errorMessage(value);
  if (message !== undefined) return [{ kind: "error", message }];

  const events: BuildEvent[] = [];
  if (typeof value.stream === "string") events.push(...streamEvents(value.stream));
  const id = imageId(value);
  if (id !== undefined) events.push({ kind: "id", id });
  return events;
}

function errorMessage(value: Record<string, unknown>): string | undefined {
  const detail = value.errorDetail;
  if (isRecord(detail) && typeof detail.message === "string" && detail.message.trim() !== "") {
    return detail.message.trim();
  }
  if (typeof value.error === "string" && value.error.trim() !== "") return value.error.trim();
  return undefined;
}

function imageId(value: Record<string, unknown>): string | undefined {
  const aux = value.aux;
  if (isRecord(aux) && typeof aux.ID === "string" && aux.ID !== "") return aux.ID;
  if (typeof value.id === "string" && value.id !== "") return value.id;
  return undefined;
}

function streamEvents(stream: string): BuildEvent[] {
  const lines = stream.split("\n");
  // A stream value normally ends with "\n": the empty tail is not a line.
  if (lines.at(-1) === "") lines.pop();
  return lines.map((line) => lineEvent(line.replace(/\r$/, "")));
}

function lineEvent(line: string): BuildEvent {
  const prefixed = PLATFORM_PREFIX.exec(line);
  const platform = prefixed?.[1];
  const text = prefixed?.[2] ?? line;
  const step = STEP_LINE.exec(text);
  if (step?.[1] !== undefined && step[2] !== undefined && step[3] !== undefined) {
    const event: BuildEvent = { kind: "step", step: Number(step[1]), total: Number(step[2]), text: step[3] };
    return platform === undefined ? event : { ...event, platform };
  }
  return platform === undefined ? { kind: "output", text } : { kind: "output", platform, text };
}

/** Build args podman sets itself for every platform it builds; a Containerfile need not declare them. */
const AUTOMATIC_ARGS = new Set(["TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT", "BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT"]);
const UNCONSUMED = /^\[Warning\] one or more build args were not consumed: \[([^\]]*)\]$/;

/**
 * podman's "build args were not consumed" warning without the args podman set itself: otherwise every build that
 * does not declare TARGETARCH warns about it. Undefined when nothing is left to warn about.
 */
export function withoutAutomaticArgs(text: string): string | undefined {
  const listed = UNCONSUMED.exec(text)?.[1];
  if (listed === undefined) return text;
  const own = listed.split(/\s+/).filter((arg) => arg && !AUTOMATIC_ARGS.has(arg));
  return own.length > 0 ? `[Warning] one or more build args were not consumed: [${own.join(" ")}]` : undefined;
}

const MULTI_ERROR = /^\d+ errors occurred:\n((?:\t\* .*(?:\n|$))+)$/;
const EXIT_NOTICE = /^(?:\[[^\]]+\] )?subprocess exited with status \d+$/;
/** Characters kept at each end of a line of a failure message. */
const LINE_KEEP = 200;

/**
 * A failed build's error and the build's last lines, each said once. podman reports one error per platform
 * ("2 errors occurred:" with the same line twice for two platforms), and a failing RUN step's "subprocess exited
 * with status N" restates the error that follows it.
 */
export function buildFailureMessage(error: string, lastLines: readonly string[], keep = 8): string {
  const bullets = MULTI_ERROR.exec(error.trim())?.[1];
  const errors = bullets ? [...new Set(bullets.split("\n").filter(Boolean).map((b) => b.replace(/^\t\* /, "")))] : [error.trim()];
  const lines = lastLines.filter((line, i) => !EXIT_NOTICE.test(line) && line !== lastLines[i - 1]);
  // Each line cut on its own: podman's error quotes the whole failing step, and its verdict is at the end.
  const cut = (line: string) => cutMiddle(line, LINE_KEEP);
  return `${errors.map(cut).join("\n")}\nLast lines of the build:\n${lines.slice(-keep).map(cut).join("\n")}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
