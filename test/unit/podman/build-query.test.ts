import { describe, expect, it } from "vitest";
import { buildQueryString } from "../../../src/podman/build-query.js";

describe("buildQueryString", () => {
  it("repeats platform and never sends isolation", () => {
    const query = new URLSearchParams(
      buildQueryString({
        dockerfile: "docker/Dockerfile",
        platforms: ["linux/amd64", "linux/arm64", "linux/arm/v7"],
        manifest: "localhost/vmbuild/run-1:latest",
      }),
    );
    expect(query.getAll("platform")).toEqual(["linux/amd64", "linux/arm64", "linux/arm/v7"]);
    // One build job per platform: they build in parallel.
    expect(query.get("jobs")).toBe("3");
    expect(query.get("dockerfile")).toBe("docker/Dockerfile");
    expect(query.get("manifest")).toBe("localhost/vmbuild/run-1:latest");
    expect(query.has("isolation")).toBe(false);
    expect(query.has("buildargs")).toBe(false);
    expect(query.has("labels")).toBe(false);
    expect(query.has("pullpolicy")).toBe(false);
    expect(query.has("tlsVerify")).toBe(false);
  });

  it("sends tlsVerify only when set", () => {
    const query = new URLSearchParams(
      buildQueryString({ dockerfile: "Dockerfile", platforms: ["linux/amd64"], manifest: "m", tlsVerify: false }),
    );
    expect(query.get("tlsVerify")).toBe("false");
  });

  it("sends build args and labels as JSON, pull as pullpolicy=always", () => {
    const query = new URLSearchParams(
      buildQueryString({
        dockerfile: "Dockerfile",
        platforms: ["linux/amd64"],
        manifest: "m",
        buildArgs: { VERSION: "1.2", "A&B": "x=y" },
        labels: { "org.opencontainers.image.revision": "abc" },
        pull: true,
      }),
    );
    expect(JSON.parse(query.get("buildargs") ?? "")).toEqual({ VERSION: "1.2", "A&B": "x=y" });
    expect(JSON.parse(query.get("labels") ?? "")).toEqual({ "org.opencontainers.image.revision": "abc" });
    expect(query.get("pullpolicy")).toBe("always");
    expect(query.has("pull")).toBe(false);
  });

  it.each([[[]], [["linux/amd64,linux/arm64"]], [["amd64"]], [["linux/amd64 "]]])(
    "rejects platforms %j",
    (platforms) => {
      expect(() => buildQueryString({ dockerfile: "Dockerfile", platforms, manifest: "m" })).toThrow(RangeError);
    },
  );
});
