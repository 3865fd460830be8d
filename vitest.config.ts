import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "vitest/config";

// Node's on-disk compile cache (V8 code cache, keyed by each file's content) for the workers and every
// process the suites spawn (`mandate dev`, the CLI): a CLI start takes ~0.8 s instead of ~1.6 s once
// the cache is warm. It changes no behaviour; a stale or damaged entry is recompiled.
process.env.NODE_COMPILE_CACHE ??= join(tmpdir(), "mandate-node-compile-cache");

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
