import { describe, expect, it } from "vitest";
import { resolveSettings } from "../../../src/api/resolve.js";

const base = { pool: "builders", image: "registry.test/app:1", gitUrl: "https://git.test/app.git" };

describe("resolveSettings: params > VMBuild > defaults", () => {
  it("fills defaults", () => {
    const r = resolveSettings(base, []);
    expect(r).toMatchObject({
      ok: true,
      settings: { platforms: ["linux/amd64"], dockerfile: "Dockerfile", contextDir: ".", tlsVerify: true, queueTimeout: 1_800_000 },
    });
  });

  it("params override the VMBuild, in their string forms", () => {
    const r = resolveSettings({ ...base, platforms: ["linux/amd64"], tlsVerify: true }, [
      { name: "platforms", value: "linux/amd64, linux/arm64" },
      { name: "tlsVerify", value: "false" },
      { name: "buildArgs", value: ["VERSION=1.2", "EXTRA=a=b"] },
      { name: "readyTimeout", value: "90s" },
    ]);
    expect(r).toMatchObject({
      ok: true,
      settings: {
        platforms: ["linux/amd64", "linux/arm64"],
        tlsVerify: false,
        buildArgs: { VERSION: "1.2", EXTRA: "a=b" },
        readyTimeout: 90_000,
      },
    });
  });

  it("takes architecture aliases as the names images and KubeVirt use", () => {
    const r = resolveSettings(base, [{ name: "platforms", value: "linux/x86_64,linux/aarch64/v8,linux/armhf,linux/i386,linux/s390x" }]);
    expect(r).toMatchObject({ ok: true, settings: { platforms: ["linux/amd64", "linux/arm64/v8", "linux/arm/v7", "linux/386", "linux/s390x"] } });
  });

  it("lowercases platforms as podman does: Linux/ARM64 is linux/arm64, and repeats it", () => {
    const r = resolveSettings(base, [{ name: "platforms", value: "Linux/ARM64,LINUX/X86_64,linux/Arm/V7" }]);
    expect(r).toMatchObject({ ok: true, settings: { platforms: ["linux/arm64", "linux/amd64", "linux/arm/v7"] } });
    expect(resolveSettings(base, [{ name: "platforms", value: "linux/arm64,Linux/AArch64" }])).toMatchObject({
      ok: false,
      message: 'param "platforms": platforms must not repeat: linux/arm64 is given twice',
    });
  });

  it("takes a pullSecret apart from the registrySecret; without one, none", () => {
    const none = resolveSettings(base, []);
    expect(none.ok ? none.settings.pullSecret : none.message).toBeUndefined();
    const r = resolveSettings({ ...base, registrySecret: "push-login" }, [{ name: "pullSecret", value: "base-images" }]);
    expect(r).toMatchObject({ ok: true, settings: { registrySecret: "push-login", pullSecret: "base-images" } });
  });

  it.each([
    [[{ name: "colour", value: "blue" }], /unknown param "colour"; allowed: pool, nativePools, strategy, platforms/],
    [[{ name: "platforms", value: "linux/arm 64" }], /param "platforms"\[0\]: expected OS\/ARCH.*got "linux\/arm 64"/],
    [[{ name: "platforms", value: "linux/amd64,linux/amd64" }], /param "platforms": platforms must not repeat: linux\/amd64 is given twice/],
    [[{ name: "platforms", value: "linux/arm64,linux/aarch64" }], /param "platforms": platforms must not repeat: linux\/arm64 is given twice/],
    [[{ name: "buildArgs", value: Array.from({ length: 17 }, (_, i) => `A${i}=${"x".repeat(4000)}`) }], /^param "buildArgs": build args hold 68\d{3} characters of names and values; at most 65536$/],
    [[{ name: "platforms", value: `linux/${"a".repeat(64)}` }], /^param "platforms"\[0\]: expected at most 64 characters \(got "linux\/aaa/],
    [[{ name: "buildTimeout", value: "1".repeat(65) + "s" }], /^param "buildTimeout": expected at most 64 characters \(got "1111/],
    [[{ name: "nativePools", value: "arm-builders,x86,arm-builders" }], /param "nativePools": nativePools must not repeat: arm-builders is given twice/],
    [[{ name: "dockerfile", value: "../../etc/passwd" }], /param "dockerfile": dockerfile must be a relative path/],
    [[{ name: "contextDir", value: "/etc" }], /param "contextDir": contextDir must be a relative path/],
    [[{ name: "image", value: "Registry.test/UPPER:1" }], /param "image": expected an image reference/],
    [[{ name: "image", value: "registry.test/app@sha256:abc" }], /param "image": .*: a digest names content, so nothing can be pushed to it; name a tag/],
    [[{ name: "image", value: "registry.test/Team/App:1" }], /param "image": .*: malformed repository \(lowercase letters, digits, separators\) \(got "registry.test\/Team\/App:1"\)/],
    [[{ name: "image", value: "registry.test/app:1.0+build" }], /param "image": .*: malformed tag/],
    [[{ name: "image", value: "https://registry.test/app" }], /param "image": .*: an image reference has no URL scheme/],
    [[{ name: "gitUrl", value: "file:///etc" }], /param "gitUrl": expected an http.*; the controller fetches over the network only/],
    [[{ name: "gitUrl", value: "git.test/team/app.git" }], /param "gitUrl": expected an http.*, e\.g\. https:\/\/git\.test\/team\/app\.git \(got/],
    [[{ name: "gitUrl", value: "ext::sh -c touch% /tmp/pwned" }], /param "gitUrl"/],
    [[{ name: "gitRevision", value: "--upload-pack=evil" }], /param "gitRevision"/],
    [[{ name: "buildArgs", value: ["A B=1"] }], /param "buildArgs"\["A B"\]: build arg names are letters, digits and _/],
    [[{ name: "buildArgs", value: ["A=1", "B"] }], /param "buildArgs"\[1\]: expected "NAME=value" \(got "B"\)/],
    [[{ name: "buildArgs", value: "A=1" }], /param "buildArgs": expected a map, or a list of "NAME=value" strings/],
    [[{ name: "queueTimeout", value: "ten minutes" }], /param "queueTimeout": expected a duration/],
    [[{ name: "tlsVerify", value: "yes" }], /param "tlsVerify": expected "true" or "false" \(got "yes"\)/],
    [[{ name: "tlsVerify", value: "TRUE" }], /param "tlsVerify": expected "true" or "false" \(got "TRUE"\)/],
    [[{ name: "pool", value: "a/b/c" }], /param "pool": expected NAME or NAMESPACE\/NAME/],
    [[{ name: "pullSecret", value: "Base_Images" }], /param "pullSecret": expected the name of a Secret/],
    [[{ name: "pullSecret", value: "team/base-images" }], /param "pullSecret": expected the name of a Secret/],
    [
      [
        { name: "pool", value: "x" },
        { name: "pool", value: "y" },
      ],
      /param "pool" is given twice/,
    ],
  ])("rejects %j with a message naming the field", (params, message) => {
    const r = resolveSettings(base, params);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason).toBe("InvalidParams");
      expect(r.message).toMatch(message);
    }
  });

  it("never echoes the password of a URL it refuses", () => {
    for (const gitUrl of ["ftp://user:s3cret@git.test/app.git", "https://user:s3cret@git.test/app with space", "https://user:s3cret@git.test", "user:s3cret@git.test:app.git"]) {
      const r = resolveSettings(base, [{ name: "gitUrl", value: gitUrl }]);
      expect(r.ok).toBe(false);
      expect(r.ok || r.message).toMatch(/^param "gitUrl": .*\(got "([a-z]+:\/\/|user@)git\.test/);
      expect(r.ok || r.message).not.toContain("s3cret");
    }
  });

  it("names the VMBuild field when the bad value came from there", () => {
    const r = resolveSettings({ ...base, platforms: "windows" }, []);
    expect(r.ok || r.message).toMatch(/^VMBuild spec.platforms\[0\]/);
  });

  it("names the build arg whose value is not a string, or too long", () => {
    const number = resolveSettings({ ...base, buildArgs: { VERSION: 1.2 } }, []);
    expect(number.ok || number.message).toMatch(/^VMBuild spec.buildArgs\["VERSION"\]: .*expected string, received number/);
    const long = resolveSettings(base, [{ name: "buildArgs", value: { NOTE: "x".repeat(4097) } }]);
    expect(long.ok || long.message).toMatch(/^param "buildArgs"\["NOTE"\]: .*<=4096 characters/);
  });

  it("says which required field is missing", () => {
    const r = resolveSettings({ pool: "builders" }, []);
    expect(r.ok || r.message).toBe('"image" is required: give the param image or VMBuild spec.image; "gitUrl" is required: give the param gitUrl or VMBuild spec.gitUrl');
  });

  it("takes an empty param as not given: the VMBuild's value or the default applies", () => {
    const spec = { ...base, registrySecret: "push-login", platforms: ["linux/arm64"] };
    const empty = ["pool", "platforms", "strategy", "registrySecret", "pullSecret", "tlsVerify", "queueTimeout", "contextDir", "dockerfile", "buildArgs"];
    const r = resolveSettings(spec, empty.map((name) => ({ name, value: "" })));
    expect(r).toMatchObject({
      ok: true,
      settings: {
        pool: "builders",
        platforms: ["linux/arm64"],
        strategy: "single",
        registrySecret: "push-login",
        tlsVerify: true,
        queueTimeout: 1_800_000,
        contextDir: ".",
        dockerfile: "Dockerfile",
        buildArgs: {},
      },
    });
    expect(r.ok && r.settings.pullSecret).toBeUndefined();
  });

  it("says a required field given empty is empty, and where; an unknown one stays unknown", () => {
    const params = resolveSettings({ pool: "builders", gitUrl: "" }, [{ name: "image", value: "" }]);
    expect(params.ok || params.message).toBe('param "image" is empty, and it is required; VMBuild spec.gitUrl is empty, and it is required');
    const nulls = resolveSettings({ ...base, image: null, strategy: null }, []);
    expect(nulls.ok || nulls.message).toBe("VMBuild spec.image is empty, and it is required");
    const unknown = resolveSettings(base, [{ name: "colour", value: "" }]);
    expect(unknown.ok || unknown.message).toMatch(/^unknown param "colour"/);
  });
});
