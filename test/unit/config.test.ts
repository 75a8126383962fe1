import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";

describe("loadConfig", () => {
  it("takes the defaults", () => {
    const config = loadConfig({});
    expect(config.VMBUILD_HTTP_PORT).toBe(8080);
    expect(config.VMBUILD_METRICS_PORT).toBe(9090);
    expect(config.VMBUILD_LOG_STORED_MAX_BYTES).toBe(512 * 1024);
    expect(config.VMBUILD_LOG_SYNC_SECONDS).toBe(10);
  });

  it.each([
    [{ VMBUILD_METRICS_PORT: "8080" }, /VMBUILD_METRICS_PORT: must differ from VMBUILD_HTTP_PORT \(both 8080\)/],
    [{ VMBUILD_LOG_MAX_BYTES: "1048576", VMBUILD_LOG_MAX_BYTES_PER_BUILD: "2097152" }, /VMBUILD_LOG_MAX_BYTES_PER_BUILD: must not exceed/],
    [{ VMBUILD_HTTP_PORT: "http" }, /^invalid configuration: VMBUILD_HTTP_PORT: /],
    [{ VMBUILD_LOG_STORED_MAX_BYTES: String(1024 ** 2 + 1) }, /VMBUILD_LOG_STORED_MAX_BYTES: at most 1048576 \(1 MiB\): the object must stay under etcd's 1.5 MiB/],
    [{ VMBUILD_LOG_STORED_MAX_BYTES: "1000" }, /VMBUILD_LOG_STORED_MAX_BYTES: /],
    [{ VMBUILD_LOG_SYNC_SECONDS: "0" }, /VMBUILD_LOG_SYNC_SECONDS: /],
  ])("refuses %j, naming the setting", (env, message) => {
    expect(() => loadConfig(env)).toThrow(message);
  });

  it("lets both ports be chosen by the OS (0)", () => {
    expect(loadConfig({ VMBUILD_HTTP_PORT: "0", VMBUILD_METRICS_PORT: "0" }).VMBUILD_METRICS_PORT).toBe(0);
  });
});

describe("loadConfig: the per-build log cap", () => {
  it("gives way to a smaller total cap when left at its default", () => {
    expect(loadConfig({ VMBUILD_LOG_MAX_BYTES: String(4 * 1024 ** 2) }).VMBUILD_LOG_MAX_BYTES_PER_BUILD).toBe(4 * 1024 ** 2);
    expect(loadConfig({}).VMBUILD_LOG_MAX_BYTES_PER_BUILD).toBe(16 * 1024 ** 2);
  });
});
