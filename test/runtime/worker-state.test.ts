// The dev workers' state channel (runtime/worker-state.ts) over a real node:cluster IPC channel: what
// a worker asks in one turn of its event loop leaves as one message and comes back as one, and the
// primary's memory answers each call in order (the second sighting of a key is a replay, a bucket of
// five allows five). The end-to-end behaviour through `mandate dev --workers 2` is dev-workers.test.ts.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { expect, it } from "vitest";

const FIXTURE = new URL("./fixtures/worker-state-burst.ts", import.meta.url).pathname;

it("coalesces a burst of replay checks and rate-limit takes into one message each way", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [FIXTURE], { timeout: 30_000 });
  const report = JSON.parse(stdout) as {
    burst: { sent: number; received: number };
    replay: string;
    firstUses: boolean[];
    allowed: boolean[];
  };
  expect(report.replay).toBe("primary");
  expect(report.burst).toEqual({ sent: 1, received: 1 });
  // 39 distinct keys, then key-0 again: a replay, though asked in the same message.
  expect(report.firstUses).toEqual([...Array<boolean>(39).fill(true), false]);
  expect(report.allowed).toEqual([...Array<boolean>(5).fill(true), ...Array<boolean>(5).fill(false)]);
});
