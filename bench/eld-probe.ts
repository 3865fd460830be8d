// Preloaded into a server under benchmark (NODE_OPTIONS="--import <this file>", with BENCH_ELD_DIR
// set; bench/http-load.ts does both): the process's event-loop delay, from perf_hooks' histogram.
// On SIGUSR2 it writes the delay since the previous signal to <BENCH_ELD_DIR>/<pid>.json (whole,
// by rename) and starts over, so the load harness reads one figure per run, per process — workers
// of a `--workers` primary included, as they inherit NODE_OPTIONS.
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";

/** How often the histogram's timer looks at the loop, ms: finer than the stalls worth reporting. */
const RESOLUTION_MS = 5;

const dir = process.env.BENCH_ELD_DIR;
if (dir) {
  const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  histogram.enable();
  let seq = 0;
  const target = join(dir, `${process.pid}.json`);
  const write = (report: object) => {
    writeFileSync(`${target}.tmp`, JSON.stringify(report));
    renameSync(`${target}.tmp`, target);
  };
  write({ seq }); // announces the probe: the harness signals only processes that have one
  process.on("SIGUSR2", () => {
    seq++;
    const ms = (ns: number) => Math.round(ns / 1e4) / 100;
    // The histogram counts the timer's lateness plus its own period: subtract the period.
    const late = (ns: number) => Math.max(0, ms(ns) - RESOLUTION_MS);
    const report = {
      seq,
      samples: histogram.count,
      p50Ms: late(histogram.percentile(50)),
      p99Ms: late(histogram.percentile(99)),
      maxMs: late(histogram.max),
    };
    write(report);
    histogram.reset();
  });
}
