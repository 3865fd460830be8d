import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Suites start servers on ephemeral ports and child processes; two cores, so keep it modest.
    maxWorkers: 2,
    reporters: ["default"],
  },
});
