import { createHash, createHmac } from "node:crypto";
import { utils } from "ssh2";
import { describe, expect, it } from "vitest";
import {
  checkHostKey,
  fingerprint,
  hostKeyAlgorithms,
  KnownHostsError,
  parseKnownHosts,
} from "../../../src/podman/known-hosts.js";

// Keys generated in memory: "TYPE BASE64" as a known_hosts line carries them, and the wire-format blob a
// server presents.
function key(type: "ed25519" | "ecdsa" | "rsa"): { line: string; blob: Buffer } {
  const pair = utils.generateKeyPairSync(type, type === "rsa" ? { bits: 2048 } : type === "ecdsa" ? { bits: 256 } : {});
  const [keyType = "", base64 = ""] = pair.public.split(/\s+/);
  return { line: `${keyType} ${base64}`, blob: Buffer.from(base64, "base64") };
}

const vmKey = key("ed25519");
const otherKey = key("ed25519");
const ecdsaKey = key("ecdsa");

/** What `ssh-keygen -H` writes for `name`, with a fixed salt. */
function hashed(name: string): string {
  const salt = createHash("sha1").update("salt").digest();
  return `|1|${salt.toString("base64")}|${createHmac("sha1", salt).update(name).digest("base64")}`;
}

describe("parseKnownHosts", () => {
  it("reads plain, hashed, marked and commented lines", () => {
    const entries = parseKnownHosts(
      ["# the pool's image", `10.0.0.5,vm.example ${vmKey.line} comment`, "", `@revoked * ${otherKey.line}`, `${hashed("10.0.0.6")} ${ecdsaKey.line}`].join("\n"),
    );
    expect(entries.map((e) => [e.hosts, e.keyType, e.revoked])).toEqual([
      ["10.0.0.5,vm.example", "ssh-ed25519", false],
      ["*", "ssh-ed25519", true],
      [hashed("10.0.0.6"), "ecdsa-sha2-nistp256", false],
    ]);
    expect(entries[0]?.key.equals(vmKey.blob)).toBe(true);
  });

  it.each([
    ["", /holds no host key/],
    ["# only a comment\n", /holds no host key/],
    ["10.0.0.5 ssh-ed25519", /line 1: expected "HOSTS KEYTYPE BASE64KEY"/],
    [`@cert-authority * ${vmKey.line}`, /line 1: marker @cert-authority is not supported/],
    ["10.0.0.5 ssh-ed25519 not*base64", /line 1: the key is not base64/],
    [`\n10.0.0.5 ssh-rsa ${vmKey.line.split(" ")[1]}`, /line 2: the key is not a ssh-rsa key/],
  ])("refuses %j", (text, message) => {
    expect(() => parseKnownHosts(text)).toThrow(KnownHostsError);
    expect(() => parseKnownHosts(text)).toThrow(message);
  });
});

describe("checkHostKey", () => {
  it("accepts the listed key for a listed host, on port 22 and as [host]:port elsewhere", () => {
    const entries = parseKnownHosts(`10.0.0.5 ${vmKey.line}\n[10.0.0.5]:2222 ${vmKey.line}`);
    expect(checkHostKey(entries, "10.0.0.5", 22, vmKey.blob)).toEqual({ ok: true });
    expect(checkHostKey(entries, "10.0.0.5", 2222, vmKey.blob)).toEqual({ ok: true });
    expect(checkHostKey(entries, "10.0.0.5", 2200, vmKey.blob)).toMatchObject({ ok: false, problem: "unknown" });
  });

  it("names both fingerprints when the key does not match", () => {
    const verdict = checkHostKey(parseKnownHosts(`10.0.0.5 ${vmKey.line}`), "10.0.0.5", 22, otherKey.blob);
    expect(verdict).toEqual({
      ok: false,
      problem: "mismatch",
      message: `host key of 10.0.0.5 does not match known_hosts: it presented ssh-ed25519 ${fingerprint(otherKey.blob)}, known_hosts lists ssh-ed25519 ${fingerprint(vmKey.blob)}`,
    });
  });

  it("matches wildcards and honours negation", () => {
    const entries = parseKnownHosts(`10.0.0.*,!10.0.0.9 ${vmKey.line}`);
    expect(checkHostKey(entries, "10.0.0.5", 22, vmKey.blob)).toEqual({ ok: true });
    expect(checkHostKey(entries, "10.0.0.9", 22, vmKey.blob)).toMatchObject({ ok: false, problem: "unknown" });
    expect(checkHostKey(entries, "10.0.1.5", 22, vmKey.blob)).toMatchObject({ ok: false, problem: "unknown" });
    expect(checkHostKey(parseKnownHosts(`* ${vmKey.line}`), "10.1.2.3", 2222, vmKey.blob)).toEqual({ ok: true });
    expect(checkHostKey(parseKnownHosts(`10.0.0.? ${vmKey.line}`), "10.0.0.55", 22, vmKey.blob)).toMatchObject({ ok: false });
  });

  it("matches hashed host names, with the port when it is not 22", () => {
    const entries = parseKnownHosts(`${hashed("10.0.0.5")} ${vmKey.line}\n${hashed("[10.0.0.6]:2222")} ${vmKey.line}`);
    expect(checkHostKey(entries, "10.0.0.5", 22, vmKey.blob)).toEqual({ ok: true });
    expect(checkHostKey(entries, "10.0.0.6", 2222, vmKey.blob)).toEqual({ ok: true });
    expect(checkHostKey(entries, "10.0.0.6", 22, vmKey.blob)).toMatchObject({ ok: false, problem: "unknown" });
  });

  it("refuses a key marked @revoked even when another line lists it", () => {
    const entries = parseKnownHosts(`* ${vmKey.line}\n@revoked 10.0.0.5 ${vmKey.line}`);
    expect(checkHostKey(entries, "10.0.0.5", 22, vmKey.blob)).toMatchObject({ ok: false, problem: "revoked" });
    expect(checkHostKey(entries, "10.0.0.6", 22, vmKey.blob)).toEqual({ ok: true });
  });
});

describe("hostKeyAlgorithms", () => {
  it("offers the host's key types in known_hosts order, RSA as its SHA-2 signatures first", () => {
    const rsa = key("rsa");
    const entries = parseKnownHosts(`* ${ecdsaKey.line}\n10.0.0.5 ${rsa.line}\n10.0.0.6 ${vmKey.line}\n@revoked * ${otherKey.line}`);
    expect(hostKeyAlgorithms(entries, "10.0.0.5", 22)).toEqual(["ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]);
    expect(hostKeyAlgorithms(entries, "10.0.0.7", 22)).toEqual(["ecdsa-sha2-nistp256"]);
  });
});

describe("fingerprint", () => {
  it("is OpenSSH's SHA256 form", () => {
    expect(fingerprint(Buffer.from("abc"))).toBe(`SHA256:${createHash("sha256").update("abc").digest("base64").replace(/=+$/, "")}`);
  });
});
