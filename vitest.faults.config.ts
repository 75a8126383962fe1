import { defineConfig } from "vitest/config";

// `npm run test:faults`: the whole fault matrix and the 200-run failover, against the same testenv as the
// integration tests (npm test runs a subset of both from test/integration/faults.test.ts).
export default defineConfig({
  test: {
    include: ["test/faults/**/*.test.ts"],
    globalSetup: ["test/integration/global-setup.ts"],
    testTimeout: 3_600_000,
    hookTimeout: 600_000,
    fileParallelism: false,
  },
});
