import { defineConfig } from "vitest/config";

// `npm run test:faults`: the whole fault matrix, the 200-run failover and the rolling restart with 20 builds in
// flight (with SIGKILL of a run's replica in each phase), against the same testenv as the integration tests
// (npm test runs a subset of the first two from test/integration/faults.test.ts, and all of the last).
export default defineConfig({
  test: {
    include: ["test/faults/**/*.test.ts", "test/integration/replicas.test.ts"],
    globalSetup: ["test/integration/global-setup.ts"],
    testTimeout: 3_600_000,
    hookTimeout: 600_000,
    fileParallelism: false,
  },
});
