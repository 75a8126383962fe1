import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
        },
      },
      {
        test: {
          // The testenv's own tools against real processes (apt, dpkg) and loopback servers: no control plane.
          name: "hack",
          include: ["test/hack/**/*.test.ts"],
          testTimeout: 120_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/integration/global-setup.ts"],
          testTimeout: 180_000,
          hookTimeout: 600_000,
          // One control plane, one registry, real VMs: integration files run one after another.
          fileParallelism: false,
        },
      },
    ],
  },
});
