import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { SettingsSchema } from "../../../src/api/settings.js";
import { buildRequest, pushRequest } from "../../../src/jobs/build-requests.js";

const settings = SettingsSchema.parse({
  pool: "builders",
  image: "quay.example.com/team/app:1",
  gitUrl: "https://git.example.com/app.git",
  buildArgs: { VERSION: "1.2" },
  tlsVerify: false,
});
const PUSH = { username: "robot", password: "push-s3cret" };
const PULL = { username: "reader", password: "pull-s3cret" };
const what = { context: Readable.from([]), dockerfile: "Dockerfile", platforms: ["linux/arm64"], manifest: "vmbuild-uid-1" };

describe("buildRequest", () => {
  it("carries the pull logins alone, never a push login", () => {
    const request = buildRequest(settings, { pull: { "docker.io": PULL }, push: { "quay.example.com": PUSH } }, what);
    expect(request).toEqual({ ...what, buildArgs: { VERSION: "1.2" }, registryConfig: { "docker.io": PULL } });
  });

  it("carries no login without a pullSecret, even for the registry pushed to", () => {
    const request = buildRequest(settings, { pull: {}, push: { "quay.example.com": PUSH, "docker.io": PUSH } }, what);
    expect(request.registryConfig).toEqual({});
  });
});

describe("pushRequest", () => {
  it("carries the push login for the destination's registry, not a pull login", () => {
    const logins = { pull: { "quay.example.com": PULL }, push: { "quay.example.com": PUSH } };
    expect(pushRequest(settings, logins, "quay.example.com/team/app:1-linux-arm64")).toEqual({
      all: true,
      tlsVerify: false,
      auth: { ...PUSH, serveraddress: "quay.example.com" },
    });
  });

  it("carries no login when no push login is for that registry", () => {
    const logins = { pull: { "quay.example.com": PULL }, push: { "ghcr.io": PUSH } };
    expect(pushRequest(settings, logins, "quay.example.com/team/app:1")).toEqual({ all: true, tlsVerify: false });
  });
});
