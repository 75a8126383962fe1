import { describe, expect, it } from "vitest";
import { BuildEventParser, buildFailureMessage, parseBuildEvents, withoutAutomaticArgs, type BuildEvent } from "../../../src/podman/build-events.js";

const line = (value: unknown): string => `${JSON.stringify(value)}\n`;

describe("BuildEventParser: one line each", () => {
  const cases: { name: string; input: string; want: BuildEvent[] }[] = [
    {
      name: "step with platform prefix",
      input: line({ stream: "[linux/arm64] STEP 2/5: RUN uname -m\n" }),
      want: [{ kind: "step", platform: "linux/arm64", step: 2, total: 5, text: "RUN uname -m" }],
    },
    {
      name: "step without prefix",
      input: line({ stream: "STEP 1/2: FROM localhost/busybox:amd64\n" }),
      want: [{ kind: "step", step: 1, total: 2, text: "FROM localhost/busybox:amd64" }],
    },
    {
      name: "step with a variant platform",
      input: line({ stream: "[linux/arm/v7] STEP 3/3: COPY . /src\n" }),
      want: [{ kind: "step", platform: "linux/arm/v7", step: 3, total: 3, text: "COPY . /src" }],
    },
    {
      name: "prefixed non-step line keeps its platform",
      input: line({ stream: "[linux/amd64] COMMIT\n" }),
      want: [{ kind: "output", platform: "linux/amd64", text: "COMMIT" }],
    },
    {
      name: "a bracketed word is no platform",
      input: line({ stream: "[Warning] one or more build args were not consumed: [TARGETOS]\n" }),
      want: [{ kind: "output", text: "[Warning] one or more build args were not consumed: [TARGETOS]" }],
    },
    {
      name: "plain output",
      input: line({ stream: "hi\n" }),
      want: [{ kind: "output", text: "hi" }],
    },
    {
      name: "a stream with two lines gives two events",
      input: line({ stream: "a\nb\n" }),
      want: [
        { kind: "output", text: "a" },
        { kind: "output", text: "b" },
      ],
    },
    {
      name: "error with errorDetail (as podman 4.3 sends it)",
      input: line({
        errorDetail: { message: 'building at STEP "RUN exit 3": exit status 3\n' },
        error: 'building at STEP "RUN exit 3": exit status 3\n',
      }),
      want: [{ kind: "error", message: 'building at STEP "RUN exit 3": exit status 3' }],
    },
    {
      name: "error without errorDetail",
      input: line({ error: "no such file" }),
      want: [{ kind: "error", message: "no such file" }],
    },
    {
      name: "aux ID (compat API)",
      input: line({ aux: { ID: "sha256:abc" } }),
      want: [{ kind: "id", id: "sha256:abc" }],
    },
    {
      name: "top-level id",
      input: line({ id: "sha256:def" }),
      want: [{ kind: "id", id: "sha256:def" }],
    },
    { name: "blank line", input: "\n  \n", want: [] },
    { name: "non-JSON line is kept as output", input: "oops\n", want: [{ kind: "output", text: "oops" }] },
    { name: "JSON that is not an object", input: "42\n", want: [{ kind: "output", text: "42" }] },
  ];

  it.each(cases)("$name", ({ input, want }) => {
    const parser = new BuildEventParser();
    expect([...parser.push(input), ...parser.end()]).toEqual(want);
  });
});

describe("BuildEventParser: chunking", () => {
  const body =
    line({ stream: "[linux/arm64] STEP 1/2: FROM base\n" }) +
    line({ stream: "héllo wörld ✓\n" }) +
    line({ errorDetail: { message: "boom" }, error: "boom" });
  const want: BuildEvent[] = [
    { kind: "step", platform: "linux/arm64", step: 1, total: 2, text: "FROM base" },
    { kind: "output", text: "héllo wörld ✓" },
    { kind: "error", message: "boom" },
  ];
  const bytes = Buffer.from(body, "utf8");

  const splits: { name: string; sizes: number }[] = [
    { name: "one byte at a time (splits UTF-8 sequences)", sizes: 1 },
    { name: "7-byte chunks", sizes: 7 },
    { name: "whole body", sizes: bytes.length },
  ];

  it.each(splits)("$name", ({ sizes }) => {
    const parser = new BuildEventParser();
    const events: BuildEvent[] = [];
    for (let offset = 0; offset < bytes.length; offset += sizes) {
      events.push(...parser.push(bytes.subarray(offset, offset + sizes)));
    }
    events.push(...parser.end());
    expect(events).toEqual(want);
  });

  it("flushes a last line without newline at end", () => {
    const parser = new BuildEventParser();
    expect(parser.push('{"stream":"tail"}')).toEqual([]);
    expect(parser.end()).toEqual([{ kind: "output", text: "tail" }]);
  });

  it("parseBuildEvents reads an async stream of string and byte chunks", async () => {
    async function* chunks(): AsyncGenerator<Uint8Array | string> {
      yield body.slice(0, 10);
      yield Buffer.from(body.slice(10, 40), "utf8");
      yield body.slice(40);
    }
    const events: BuildEvent[] = [];
    for await (const event of parseBuildEvents(chunks())) events.push(event);
    expect(events).toEqual(want);
  });
});

describe("withoutAutomaticArgs", () => {
  it.each([
    ["[Warning] one or more build args were not consumed: [TARGETARCH TARGETOS TARGETPLATFORM]", undefined],
    ["[Warning] one or more build args were not consumed: [GREETING TARGETARCH]", "[Warning] one or more build args were not consumed: [GREETING]"],
    ["[Warning] one or more build args were not consumed: [GREETING]", "[Warning] one or more build args were not consumed: [GREETING]"],
    ["STEP 1/2: FROM busybox", "STEP 1/2: FROM busybox"],
  ])("%s", (text, want) => expect(withoutAutomaticArgs(text)).toBe(want));
});

describe("buildFailureMessage", () => {
  it("says podman's per-platform error once and leaves out the exit notices that restate it", () => {
    const error = '2 errors occurred:\n\t* building at STEP "RUN exit 3": exit status 3\n\t* building at STEP "RUN exit 3": exit status 3\n';
    const last = [
      "[linux/arm64] STEP 2/2: RUN exit 3",
      "[linux/amd64] STEP 2/2: RUN exit 3",
      "about to fail",
      "subprocess exited with status 3",
      "subprocess exited with status 3",
      "about to fail",
      "[linux/arm64] subprocess exited with status 3",
    ];
    expect(buildFailureMessage(error, last)).toBe(
      'building at STEP "RUN exit 3": exit status 3\nLast lines of the build:\n' +
        "[linux/arm64] STEP 2/2: RUN exit 3\n[linux/amd64] STEP 2/2: RUN exit 3\nabout to fail\nabout to fail",
    );
  });

  it("keeps different errors and the last lines, up to `keep`", () => {
    const error = "2 errors occurred:\n\t* a failed\n\t* b failed";
    expect(buildFailureMessage(error, ["1", "2", "3"], 2)).toBe("a failed\nb failed\nLast lines of the build:\n2\n3");
    expect(buildFailureMessage("plain error", ["x"])).toBe("plain error\nLast lines of the build:\nx");
  });

  it("cuts the middle of each long line, keeping a quoted step's start and podman's verdict at its end", () => {
    const step = `RUN echo ${"x".repeat(60_000)} && exit 3`;
    const message = buildFailureMessage(`building at STEP "${step}": exit status 3`, [`STEP 2/2: ${step}`, "done"]);
    expect(message.length).toBeLessThan(1_000);
    const [error, heading, stepLine, last] = message.split("\n");
    expect(error).toMatch(/^building at STEP "RUN echo x+ \.\.\. \[\d+ characters cut\] \.\.\. x+ && exit 3": exit status 3$/);
    expect(heading).toBe("Last lines of the build:");
    expect(stepLine).toMatch(/^STEP 2\/2: RUN echo x+ \.\.\. \[\d+ characters cut\] \.\.\. x+ && exit 3$/);
    expect(last).toBe("done");
  });
});
