import { describe, expect, it } from "vitest";
import {
  CredentialsParseError,
  credentialsFor,
  normalizeCredentialKey,
  parseDockerConfig,
} from "../../../src/credentials/docker-config.js";

const b64 = (text: string): string => Buffer.from(text).toString("base64");

describe("parseDockerConfig", () => {
  it("reads .dockerconfigjson with username/password and auth entries", () => {
    const content = JSON.stringify({
      auths: {
        "https://index.docker.io/v1/": { auth: b64("hubuser:hub:pass:with:colons") },
        "quay.io": { username: "robot+ci", password: "q", email: "x@y" },
        "https://registry.example:5000/v2/": { auth: b64("u:p") },
        "ghcr.io/org": { username: "o", password: "p" },
        "token-only.io": { identitytoken: "abc" },
      },
      credsStore: "desktop",
    });
    expect(parseDockerConfig(content)).toEqual({
      "docker.io": { username: "hubuser", password: "hub:pass:with:colons" },
      "quay.io": { username: "robot+ci", password: "q" },
      "registry.example:5000": { username: "u", password: "p" },
      "ghcr.io/org": { username: "o", password: "p" },
    });
  });

  it("reads a legacy .dockercfg", () => {
    const content = JSON.stringify({ "https://index.docker.io/v1/": { auth: b64("a:b"), email: "e" } });
    expect(parseDockerConfig(content)).toEqual({ "docker.io": { username: "a", password: "b" } });
  });

  it.each([
    ["not JSON", "{nope"],
    ["an array", "[]"],
    ["auths of the wrong shape", JSON.stringify({ auths: { "h.io": { username: 3 } } })],
    ["a legacy entry of the wrong shape", JSON.stringify({ "h.io": "x" })],
  ])("rejects %s without quoting the content", (_name, content) => {
    try {
      parseDockerConfig(content);
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(CredentialsParseError);
      expect((error as Error).message).not.toContain(content);
    }
  });
});

describe("credentialsFor", () => {
  const creds = {
    "docker.io": { username: "hub", password: "1" },
    "ghcr.io": { username: "gh", password: "2" },
    "ghcr.io/special": { username: "special", password: "3" },
    "127.0.0.3:5000": { username: "local", password: "4" },
    "https://legacy.example/v1/": { username: "legacy", password: "5" },
  };

  it.each([
    ["ubuntu", "docker.io", "hub"],
    ["docker.io/library/ubuntu:22.04", "docker.io", "hub"],
    ["index.docker.io/org/app", "docker.io", "hub"],
    ["ghcr.io/other/app:v1", "ghcr.io", "gh"],
    ["ghcr.io/special/app:v1", "ghcr.io", "special"],
    ["ghcr.io/special", "ghcr.io", "special"],
    ["ghcr.io/specialist/app", "ghcr.io", "gh"],
    ["127.0.0.3:5000/demo/app:v1", "127.0.0.3:5000", "local"],
    ["legacy.example/app", "legacy.example", "legacy"],
  ])("%s → %s as %s", (image, host, username) => {
    expect(credentialsFor(creds, image)).toEqual({ host, credentials: expect.objectContaining({ username }) });
  });

  it("returns undefined for a registry without a login (or another port)", () => {
    expect(credentialsFor(creds, "quay.io/org/app")).toBeUndefined();
    expect(credentialsFor(creds, "127.0.0.3:5001/demo/app")).toBeUndefined();
  });
});

describe("normalizeCredentialKey", () => {
  it.each([
    ["https://index.docker.io/v1/", "docker.io"],
    ["registry-1.docker.io", "docker.io"],
    ["http://Registry.Example:5000/v2/", "registry.example:5000"],
    ["quay.io/org/", "quay.io/org"],
    [" ghcr.io ", "ghcr.io"],
  ])("%s → %s", (key, want) => {
    expect(normalizeCredentialKey(key)).toBe(want);
  });
});
