// The HTTP load harness of the token-endpoint benchmarks (bench/oauth.ts, bench/exchange.ts): one
// autocannon run in its own process against a server process, counting only 2xx responses as
// throughput, with the server's CPU time per request read from /proc. A load that binds tokens to a
// DPoP key (RFC 9449) signs a fresh proof for every request in the load process
// (bench/load-worker.ts), as a real client must: a proof is used once.
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { positiveNumber, round } from "./lib.ts";

const run = promisify(execFile);
const AUTOCANNON = fileURLToPath(new URL("../node_modules/autocannon/autocannon.js", import.meta.url));
const WORKER = fileURLToPath(new URL("./load-worker.ts", import.meta.url));
const PROBE = new URL("./eld-probe.ts", import.meta.url);
/** Where the servers' event-loop probes write (bench/eld-probe.ts), one folder per benchmark run. */
const ELD_DIR = mkdtempSync(join(tmpdir(), "mandate-bench-eld-"));
process.once("exit", () => rmSync(ELD_DIR, { recursive: true, force: true }));

/**
 * Environment for a server under benchmark: preloads the event-loop delay probe, so `cannon` can
 * report the server's event-loop delay during each run.
 */
export function serverEnv(env: Record<string, string | undefined> = process.env): Record<string, string> {
  const options = [env.NODE_OPTIONS, `--import ${pathToFileURL(fileURLToPath(PROBE)).href}`].filter(Boolean);
  return { NODE_OPTIONS: options.join(" "), BENCH_ELD_DIR: ELD_DIR };
}

/** The run settings of the HTTP benchmarks (oauth.ts, exchange.ts), from BENCH_* variables. */
export function httpLoadSettings() {
  return {
    seconds: positiveNumber("BENCH_SECONDS", 8),
    warmupSeconds: positiveNumber("BENCH_WARMUP_SECONDS", 2),
    rounds: positiveNumber("BENCH_ROUNDS", 3),
    connections: positiveNumber("BENCH_CONNECTIONS", 16),
  };
}

/**
 * The load generator runs under `nice -n LOAD_NICENESS` (BENCH_LOAD_NICE): on a machine with fewer
 * cores than servers plus load, the servers get the CPU first and the generator what is left, so
 * the load does not starve what it measures (it can only under-load it, which the ratios share).
 */
const LOAD_NICENESS = String(Math.floor(positiveNumber("BENCH_LOAD_NICE", 10)));

export interface Load {
  /** The server process, whose CPU time is measured. */
  pid: number;
  url: string;
  headers: Record<string, string>;
  body: string;
  /** Sign a DPoP proof for each request with this key (a private JWK, ES256); none: no DPoP header. */
  dpopKey?: Record<string, unknown> | undefined;
}

export interface Sample {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  failures: number;
  /** CPU time the server process (all its threads) spent per successful request, µs. */
  cpuUsPerRequest: number;
  /**
   * The server's event-loop delay during the run (bench/eld-probe.ts), p99 ms: the worst of its
   * processes (a `--workers` primary and its workers); null when the server runs without the probe.
   */
  loopDelayP99Ms: number | null;
}

/**
 * utime + stime of a process and all its threads, in ms (/proc/<pid>/stat fields 14 and 15), with
 * those of its children (a `--workers` primary's workers): fields 16 and 17 count children that
 * exited and were waited for, /proc/<pid>/task/<tid>/children lists those alive.
 */
export function cpuMs(pid: number): number {
  let ms = ownCpuMs(pid);
  for (const child of childrenOf(pid)) ms += ownCpuMs(child);
  return ms;
}

function ownCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
    return (ticks * 1000) / CLOCK_TICKS;
  } catch {
    return 0; // gone meanwhile
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").split(" ").filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}
const CLOCK_TICKS = 100; // USER_HZ on Linux (getconf CLK_TCK)

interface LoopDelay {
  seq: number;
  p99Ms: number;
}

/**
 * Asks the probes of a server's processes for their event-loop delay since the last ask (SIGUSR2)
 * and waits up to a second for each answer.
 */
async function loopDelays(pid: number): Promise<LoopDelay[]> {
  // Only a process started with serverEnv() has a probe listening for SIGUSR2 (one without would
  // die of it): the probe announces itself with a first file as it loads.
  const before = new Map<number, number>();
  for (const p of [pid, ...childrenOf(pid)]) {
    const seq = readLoopDelay(p)?.seq;
    if (seq === undefined) continue;
    before.set(p, seq);
    try {
      process.kill(p, "SIGUSR2");
    } catch {
      before.delete(p); // gone meanwhile
    }
  }
  const deadline = Date.now() + 1000;
  const answers: LoopDelay[] = [];
  for (const [p, seq] of before) {
    let answer = readLoopDelay(p);
    while ((answer?.seq ?? 0) <= seq && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      answer = readLoopDelay(p);
    }
    if (answer && answer.seq > seq) answers.push(answer);
  }
  return answers;
}

function readLoopDelay(pid: number): LoopDelay | undefined {
  try {
    return JSON.parse(readFileSync(join(ELD_DIR, `${pid}.json`), "utf8")) as LoopDelay;
  } catch {
    return undefined;
  }
}

interface CannonResult {
  "2xx": number;
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
  latency: { p50: number; p99: number };
}

/** One autocannon run of `connections` for `seconds` in its own process; only 2xx responses count. */
export async function cannon(load: Load, seconds: number, connections: number): Promise<Sample> {
  const cpuBefore = cpuMs(load.pid);
  await loopDelays(load.pid); // starts each probe's histogram over
  const result = load.dpopKey ? await viaWorker(load, seconds, connections) : await viaCli(load, seconds, connections);
  const cpu = cpuMs(load.pid) - cpuBefore;
  const delays = await loopDelays(load.pid);
  return {
    loopDelayP99Ms: delays.length > 0 ? Math.max(...delays.map((d) => d.p99Ms)) : null,
    cpuUsPerRequest: round((cpu * 1000) / Math.max(1, result["2xx"]), 1),
    rps: round(result["2xx"] / result.duration, 1),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    failures: result.non2xx + result.errors + result.timeouts,
  };
}

async function viaCli(load: Load, seconds: number, connections: number): Promise<CannonResult> {
  const args = [AUTOCANNON, "--json", "-c", String(connections), "-d", String(seconds), "-m", "POST", "-b", load.body];
  for (const [name, value] of Object.entries(load.headers)) args.push("-H", `${name}=${value}`);
  args.push(load.url);
  const { stdout } = await run("nice", ["-n", LOAD_NICENESS, process.execPath, ...args], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(stdout) as CannonResult;
}

async function viaWorker(load: Load, seconds: number, connections: number): Promise<CannonResult> {
  const config = JSON.stringify({ ...load, seconds, connections });
  const { stdout } = await run("nice", ["-n", LOAD_NICENESS, process.execPath, WORKER, config], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(stdout) as CannonResult;
}

/** RFC 6749 §2.3.1 client_secret_basic. */
export function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString("base64")}`;
}
