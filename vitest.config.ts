import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineConfig } from "vitest/config";

// Node's on-disk compile cache (V8 code cache, keyed by each file's content) for the workers and every
// process the suites spawn (`mandate dev`, the CLI): a CLI start takes ~0.8 s instead of ~1.6 s once
// the cache is warm. It changes no behaviour; a stale or damaged entry is recompiled.
process.env.NODE_COMPILE_CACHE ??= join(tmpdir(), "mandate-node-compile-cache");
// `mandate dev` runs a worker per core by default; the suites' servers run one unless a test asks for
// more (test/runtime/), so a suite costs what it did and two cores are not split further.
process.env.MANDATE_WORKERS ??= "1";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Suites start servers on ephemeral ports and child processes, and many wait on them (token expiry,
    // key rotation, CIBA intervals, browsers): on two cores a third worker fills those waits. Measured
    // on the 37 slowest files: 2 workers 284 s, 3 workers 230 s, 4 workers 249 s.
    maxWorkers: 3,
    reporters: ["default"],
  },
});
