import { describe, expect, it } from "vitest";
import {
  formatImageReference,
  InvalidImageReferenceError,
  parseImageReference,
  registryApiHost,
  type ImageReference,
} from "../../../src/api/image-reference.js";

const DIGEST = `sha256:${"a".repeat(64)}`;

describe("parseImageReference", () => {
  const cases: [string, ImageReference][] = [
    ["ubuntu", { registry: "docker.io", repository: "library/ubuntu", tag: undefined, digest: undefined }],
    ["ubuntu:22.04", { registry: "docker.io", repository: "library/ubuntu", tag: "22.04", digest: undefined }],
    ["bitnami/redis:7", { registry: "docker.io", repository: "bitnami/redis", tag: "7", digest: undefined }],
    ["docker.io/ubuntu", { registry: "docker.io", repository: "library/ubuntu", tag: undefined, digest: undefined }],
    ["index.docker.io/library/ubuntu:x", { registry: "docker.io", repository: "library/ubuntu", tag: "x", digest: undefined }],
    ["quay.io/org/app:v1", { registry: "quay.io", repository: "org/app", tag: "v1", digest: undefined }],
    ["127.0.0.3:5000/demo/app:v1", { registry: "127.0.0.3:5000", repository: "demo/app", tag: "v1", digest: undefined }],
    ["localhost/app", { registry: "localhost", repository: "app", tag: undefined, digest: undefined }],
    ["localhost:5000/a/b/c", { registry: "localhost:5000", repository: "a/b/c", tag: undefined, digest: undefined }],
    [`ghcr.io/o/app@${DIGEST}`, { registry: "ghcr.io", repository: "o/app", tag: undefined, digest: DIGEST }],
    [`ghcr.io/o/app:v1@${DIGEST}`, { registry: "ghcr.io", repository: "o/app", tag: "v1", digest: DIGEST }],
    ["Registry.Example.COM/app", { registry: "registry.example.com", repository: "app", tag: undefined, digest: undefined }],
    ["[::1]:5000/app:v", { registry: "[::1]:5000", repository: "app", tag: "v", digest: undefined }],
    ["a.io/my_app__x/sub-name.x:t_1", { registry: "a.io", repository: "my_app__x/sub-name.x", tag: "t_1", digest: undefined }],
  ];
  it.each(cases)("%s", (input, want) => {
    expect(parseImageReference(input)).toEqual(want);
  });

  const invalid = ["", "UPPER/case", "quay.io/org/App", "app:", "app:-bad", "app@sha256:abc", `app@sha256:${"A".repeat(64)}`, "a//b", "bad_host:5000x/app/"];
  it.each(invalid)("rejects %j", (input) => {
    expect(() => parseImageReference(input)).toThrow(InvalidImageReferenceError);
  });

  it("formats fully qualified and finds Docker Hub's API host", () => {
    expect(formatImageReference(parseImageReference("ubuntu:22.04"))).toBe("docker.io/library/ubuntu:22.04");
    expect(formatImageReference(parseImageReference(`q.io/a@${DIGEST}`))).toBe(`q.io/a@${DIGEST}`);
    expect(registryApiHost("docker.io")).toBe("registry-1.docker.io");
    expect(registryApiHost("quay.io")).toBe("quay.io");
  });
});
