// Where a token request's CPU goes: runs a Mandate target under `node --cpu-prof`, drives the token
// endpoint (or introspection) with the benchmark's load for a fixed time, stops the server so V8
// writes its profile, and reports only the samples taken while the load ran:
//   bench/results/profile-<scenario>.svg      a flame graph (open it in a browser: hover for shares)
//   bench/results/profile-<scenario>.folded   the stacks folded, for any flame-graph tool
//   bench/results/profile-<scenario>.json     self time per function and per area of the code
// and prints the top of both. A `serve --workers` target profiles every worker and folds them together.
//
//   npm run bench:profile                                     tokens, `mandate dev` (SQLite, software keys)
//   BENCH_PROFILE=introspect npm run bench:profile            introspection
//   BENCH_PROFILE_TARGET=dev-workers npm run bench:profile    tokens, `mandate dev` with a worker per core
//   BENCH_PROFILE_TARGET=serve-postgres npm run bench:profile tokens, `mandate serve`, 1 worker, PostgreSQL
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { startOAuthServer } from "../test/helpers/oauth-server.ts";
import {
  type CpuProfile,
  type FoldedStack,
  flameGraphSvg,
  foldedText,
  foldStacks,
  type SelfTime,
  selfTimeByArea,
  selfTimes,
} from "./flame.ts";
import { cannon, httpLoadSettings, type Load } from "./http-load.ts";
import { machine, positiveNumber, resultsPath, round, table } from "./lib.ts";
import { asServer, introspectionLoad, type MandateServer, mandateTokenLoad, startWorkers } from "./oauth-targets.ts";

const SCENARIOS = ["tokens", "introspect"] as const;
const TARGETS = ["dev", "dev-workers", "serve-postgres", "serve-sqlite"] as const;
const scenario = pick("BENCH_PROFILE", SCENARIOS);
const target = pick("BENCH_PROFILE_TARGET", TARGETS);
const seconds = positiveNumber("BENCH_SECONDS", 8);
/** Workers of the dev-workers target (BENCH_WORKERS; default: the machine's available parallelism). */
const workers = Math.floor(positiveNumber("BENCH_WORKERS", availableParallelism()));
const { connections, warmupSeconds } = httpLoadSettings();
const say = (line: string) => process.stderr.write(`${line}\n`);

function pick<T extends string>(name: string, choices: readonly T[]): T {
  const value = process.env[name] || choices[0];
  if (!choices.includes(value as T)) {
    say(`error: ${name} must be one of ${choices.join(", ")}, got ${JSON.stringify(value)}`);
    process.exit(2);
  }
  return value as T;
}

async function start(profileDir: string): Promise<MandateServer> {
  const env = { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}` };
  if (target === "dev") return asServer(await startOAuthServer(env));
  if (target === "dev-workers") return asServer(await startOAuthServer({ ...env, MANDATE_WORKERS: String(workers) }));
  return startWorkers(1, target === "serve-postgres" ? "postgres" : "sqlite", env);
}

/** µs on the clock V8's profiles use (uv_hrtime: CLOCK_MONOTONIC, like process.hrtime). */
const nowUs = () => Number(process.hrtime.bigint() / 1000n);

async function main() {
  const profileDir = mkdtempSync(join(tmpdir(), "mandate-profile-"));
  try {
    say(`profiling ${scenario} against ${target}: ${warmupSeconds} s warm-up, ${seconds} s profiled`);
    const server = await start(profileDir);
    let window: { fromUs: number; toUs: number };
    let requests: number;
    try {
      const tokens = await mandateTokenLoad(server);
      const load: Load =
        scenario === "tokens" ? tokens : await introspectionLoad(tokens, `${server.issuer}/oauth2/introspect`);
      await cannon(load, warmupSeconds, connections);
      const fromUs = nowUs();
      const sample = await cannon(load, seconds, connections);
      window = { fromUs, toUs: nowUs() };
      requests = Math.round(sample.rps * seconds);
      say(`  ${sample.rps} req/s, p99 ${sample.p99Ms} ms, ${sample.cpuUsPerRequest} µs CPU per request`);
    } finally {
      await server.stop(); // SIGTERM: V8 writes each process's profile as it exits
    }
    const profiles = readdirSync(profileDir).filter((f) => f.endsWith(".cpuprofile"));
    if (profiles.length === 0) throw new Error(`no CPU profile was written to ${profileDir}`);
    const stacks: FoldedStack[] = [];
    const areas = new Map<string, number>();
    for (const file of profiles) {
      const profile = JSON.parse(readFileSync(join(profileDir, file), "utf8")) as CpuProfile;
      stacks.push(...foldStacks(profile, window));
      for (const row of selfTimeByArea(profile, window))
        areas.set(row.frame, (areas.get(row.frame) ?? 0) + row.samples);
    }
    report(stacks, areas, requests);
  } finally {
    rmSync(profileDir, { recursive: true, force: true });
  }
}

function report(stacks: FoldedStack[], areaSamples: Map<string, number>, requests: number) {
  const name = `profile-${scenario}${target === "dev" ? "" : `-${target}`}`;
  const title = `${scenario} against ${target}: ${seconds} s at ${connections} connections (npm run bench:profile)`;
  const svg = resultsPath(`${name}.svg`);
  writeFileSync(svg, flameGraphSvg(title, stacks));
  writeFileSync(resultsPath(`${name}.folded`), foldedText(stacks));
  const functions = selfTimes(stacks);
  const busy = [...areaSamples.values()].reduce((a, b) => a + b, 0) || 1;
  const areas: SelfTime[] = [...areaSamples]
    .map(([frame, samples]) => ({ frame, samples, share: samples / busy }))
    .sort((a, b) => b.samples - a.samples);
  const json = resultsPath(`${name}.json`);
  writeFileSync(
    json,
    `${JSON.stringify({ ...machine(), scenario, target, seconds, connections, requests, areas, functions: functions.slice(0, 200) }, null, 2)}\n`,
  );
  const rows = (list: SelfTime[], count: number) =>
    list.slice(0, count).map((r) => [r.frame, `${round(r.share * 100, 1)} %`, String(r.samples)]);
  process.stdout.write(
    `\n${table(["area (self time, idle excluded)", "share", "samples"], rows(areas, 16))}\n\n` +
      `${table(["function (self time)", "share", "samples"], rows(functions, 30))}\n\n` +
      `flame graph: ${svg}\nfolded stacks and JSON beside it\n`,
  );
}

await main();
