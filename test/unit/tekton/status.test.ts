import { describe, expect, it } from "vitest";
import { boundedMessage, condition, failure } from "../../../src/tekton/status.js";

describe("boundedMessage (cutMiddle): a condition message stays readable whatever a build's error quotes", () => {
  const longStep = `podman POST /build: building at STEP "RUN echo ${"x".repeat(60_000)} && exit 3": exit status 3\nFull log: http://c/logs/ns/run/0`;

  it("keeps a message of ordinary length as it is", () => {
    const message = "a".repeat(4_064);
    expect(boundedMessage(message)).toBe(message);
  });

  it("cuts the middle of a long one, keeping its start and its end (what failed, and the log's URL)", () => {
    const bounded = boundedMessage(longStep);
    expect(bounded.length).toBeLessThanOrEqual(4_096);
    expect(bounded.startsWith('podman POST /build: building at STEP "RUN echo xxx')).toBe(true);
    expect(bounded.endsWith('&& exit 3": exit status 3\nFull log: http://c/logs/ns/run/0')).toBe(true);
    expect(bounded).toMatch(/ \.\.\. \[\d+ characters cut\] \.\.\. /);
    const cut = Number(/\[(\d+) characters cut\]/.exec(bounded)?.[1]);
    expect(bounded.length - ` ... [${cut} characters cut] ... `.length + cut).toBe(longStep.length);
  });

  it("never leaves half a surrogate pair at the cut", () => {
    const emoji = "🙂".repeat(3_000);
    const bounded = boundedMessage(emoji);
    expect(bounded).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/);
  });

  it("bounds every condition the controller writes", () => {
    expect(failure("BuildFailed", longStep).condition.message?.length).toBeLessThanOrEqual(4_096);
    const at = { base: {}, nowIso: "2026-01-01T00:00:00Z" };
    expect(condition(at, "Unknown", "Building", longStep).message?.length).toBeLessThanOrEqual(4_096);
  });
});
