// Shared by the benchmarks: settings from the environment, a closed-loop driver, statistics, tables.
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export function positiveNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    process.stderr.write(`error: ${name} must be a positive number, got ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return value;
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** Keeps `concurrency` calls in flight for `ms`, returning latencies (ms) of the successful ones. */
export async function drive(
  call: () => Promise<unknown>,
  concurrency: number,
  ms: number,
): Promise<{ latencies: Float64Array; errors: number; firstError: string | null; elapsedMs: number }> {
  const latencies: number[] = [];
  let errors = 0;
  let firstError: string | null = null;
  const started = performance.now();
  const deadline = started + ms;
  const worker = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        await call();
        latencies.push(performance.now() - t0);
      } catch (error) {
        errors++;
        firstError ??= error instanceof Error ? error.message : String(error);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsedMs = performance.now() - started;
  return { latencies: Float64Array.from(latencies).sort(), errors, firstError, elapsedMs };
}

export interface Stats {
  calls: number;
  errors: number;
  firstError: string | null;
  seconds: number;
  callsPerSecond: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Warms up, then measures `call` at `concurrency` for `seconds`. */
export async function measureCalls(
  call: () => Promise<unknown>,
  concurrency: number,
  settings: { seconds: number; warmupSeconds: number },
): Promise<Stats> {
  await drive(call, concurrency, settings.warmupSeconds * 1000);
  const run = await drive(call, concurrency, settings.seconds * 1000);
  const seconds = run.elapsedMs / 1000;
  return {
    calls: run.latencies.length,
    errors: run.errors,
    firstError: run.firstError,
    seconds: round(seconds, 3),
    callsPerSecond: round(run.latencies.length / seconds, 1),
    p50Ms: round(percentile(run.latencies, 50), 3),
    p90Ms: round(percentile(run.latencies, 90), 3),
    p99Ms: round(percentile(run.latencies, 99), 3),
    maxMs: round(run.latencies.at(-1) ?? Number.NaN, 3),
  };
}

/** A plain-text table: the first column left-aligned, the others right-aligned. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0))).join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** When and on what a report was measured: its first members in bench/results/*.json. */
export function machine() {
  return {
    when: new Date().toISOString(),
    node: process.version,
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? null,
  };
}

/** bench/results/<file>, its folder created. */
export function resultsPath(file: string): string {
  const out = join(dirname(fileURLToPath(import.meta.url)), "results", file);
  mkdirSync(dirname(out), { recursive: true });
  return out;
}

/** Writes a report to bench/results/<name>.json and returns the path. */
export function writeReport(name: string, report: unknown): string {
  const out = resultsPath(`${name}.json`);
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  return out;
}
