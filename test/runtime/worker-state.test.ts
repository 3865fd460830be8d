// The dev workers' state channel (runtime/worker-state.ts) over a real node:cluster IPC channel: what
// a worker asks in one turn of its event loop leaves as one message and comes back as one, and the
// primary's memory answers each call in order (the second sighting of a key is a replay, a bucket of
// five allows five). The end-to-end behaviour through `mandate dev --workers 2` is dev-workers.test.ts.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { expect, it } from "vitest";

const FIXTURE = new URL("./fixtures/worker-state-burst.ts", import.meta.url).pathname;

it("coalesces a burst of replay checks and rate-limit takes, and answers checks of full buckets locally", async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [FIXTURE], { timeout: 30_000 });
  const report = JSON.parse(stdout) as {
    burst: { sent: number; received: number };
    replay: string;
    firstUses: boolean[];
    allowed: boolean[];
    checks: { untouched: boolean; messages: number; drawn: boolean };
  };
  expect(report.replay).toBe("primary");
  // The burst's calls in one message and their answers in one; plus, before the answers, the
  // primary's notice that the bucket was drawn from, and the worker's receipt of it.
  expect(report.burst).toEqual({ sent: 2, received: 2 });
  // 39 distinct keys, then key-0 again: a replay, though asked in the same message.
  expect(report.firstUses).toEqual([...Array<boolean>(39).fill(true), false]);
  expect(report.allowed).toEqual([...Array<boolean>(5).fill(true), ...Array<boolean>(5).fill(false)]);
  // A check of a full bucket is answered by the worker alone; of a drawn one, by the primary.
  expect(report.checks).toEqual({ untouched: true, messages: 0, drawn: false });
});
