import { describe, expect, it } from "vitest";
import { encodeRegistryAuth, encodeRegistryConfig } from "../../../src/podman/registry-headers.js";

// Podman decodes both headers with Go's base64.URLEncoding: URL alphabet, padding required.
function decodeLikePodman(value: string): unknown {
  expect(value).toMatch(/^[A-Za-z0-9_-]*={0,2}$/);
  expect(value.length % 4).toBe(0);
  return JSON.parse(Buffer.from(value, "base64url").toString("utf8"));
}

describe("registry headers", () => {
  // ">>>?" encodes to bytes that need '+' and '/' in the standard alphabet.
  const password = "p>>>?~~~";

  it("encodes X-Registry-Config as a host map with URL alphabet and padding", () => {
    const encoded = encodeRegistryConfig({ "registry.example:5000": { username: "u", password } });
    expect(Buffer.from(JSON.stringify({ "registry.example:5000": { username: "u", password } })).toString("base64"))
      .toMatch(/[+/]/);
    expect(decodeLikePodman(encoded)).toEqual({ "registry.example:5000": { username: "u", password } });
  });

  it("encodes X-Registry-Auth with serveraddress", () => {
    const encoded = encodeRegistryAuth({ username: "u", password, serveraddress: "registry.example:5000" });
    expect(decodeLikePodman(encoded)).toEqual({ username: "u", password, serveraddress: "registry.example:5000" });
  });
});
