// The conformance runner: compiles each YAML case's modules with Mandate's compiler, evaluates the
// query through @open-policy-agent/opa-wasm, and compares with the expected result or error.
// Outcomes: pass; fail (a wrong answer — a defect); unsupported (a clean compile-time refusal of a
// construct or built-in outside the supported set); skipped (marked skip in the corpus).
import { readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import type { Module } from "../ast.ts";
import { RegoCompileErrors } from "../check.ts";
import { compileModules } from "../compile.ts";
import { hostBuiltins, lenientHostBuiltins } from "../host-builtins.ts";
import { RegoError } from "../lexer.ts";
import { parseModule } from "../parser.ts";
import { QUERY_ENTRYPOINT, queryModule } from "../query.ts";
import { type CaseResult, type ConformanceCase, formatOf, loadCases, type Outcome, type RunOptions } from "./cases.ts";
import { runOpaCase } from "./opa.ts";

export interface ConformanceReport {
  cases: CaseResult[];
  totals: Record<Outcome, number>;
  /** Per folder (relative to the corpus root). */
  folders: Record<string, Record<Outcome, number>>;
}

export function caseFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (name.endsWith(".yaml") || name.endsWith(".yml")) out.push(path);
    }
  };
  walk(dir);
  return out;
}

/** How the cases are compiled: `optimize: false` skips binaryen's optimizer (same semantics, ~8x faster). */

export async function runConformance(
  dir: string,
  onCase?: (result: CaseResult, done: number, total: number) => void,
  options: RunOptions = {},
): Promise<ConformanceReport> {
  const files = caseFiles(dir);
  const format = formatOf(dir);
  const all = files.flatMap((file) => loadCases(file, format));
  const results: CaseResult[] = [];
  for (const c of all) {
    const result = { ...(await runCase(c, options)), file: relative(dir, c.file), note: c.note };
    results.push(result);
    onCase?.(result, results.length, all.length);
  }
  const empty = (): Record<Outcome, number> => ({ pass: 0, fail: 0, unsupported: 0, skipped: 0 });
  const totals = empty();
  const folders: Record<string, Record<Outcome, number>> = {};
  for (const r of results) {
    totals[r.outcome]++;
    const folder = r.file.includes("/") ? r.file.slice(0, r.file.lastIndexOf("/")) : ".";
    folders[folder] ??= empty();
    (folders[folder] as Record<Outcome, number>)[r.outcome]++;
  }
  return { cases: results, totals, folders };
}

/** `data`, `data.a.b` → an entrypoint path; anything else is a query form this runner does not compile. */
function entrypointOf(query: string): string | undefined {
  const q = query.trim();
  if (q === "data") return "";
  const match = /^data((?:\.[A-Za-z_][A-Za-z0-9_]*)+)$/.exec(q);
  return match ? (match[1] as string).slice(1).replaceAll(".", "/") : undefined;
}

function parseCaseModules(c: ConformanceCase): Module[] {
  return c.modules.map((source, i) => {
    const file = `module${i}.rego`;
    // Like regorus, a module is read as Rego v0 (as `opa --v0-compatible`) unless it is written
    // in v1 syntax; `import rego.v1` makes a v0 module follow v1's rules.
    try {
      return parseModule(source, { file, v0: true });
    } catch (error) {
      if (!(error instanceof RegoError)) throw error;
      try {
        return parseModule(source, { file });
      } catch {
        throw error;
      }
    }
  });
}

type Verdict = Omit<CaseResult, "file" | "note">;
type Rows = Array<{ result: unknown }>;

export async function runCase(c: ConformanceCase, options: RunOptions = {}): Promise<Verdict> {
  if (c.opa) return runOpaCase({ ...c, opa: c.opa }, options);
  if (c.skip) return { outcome: "skipped" };
  // A `data.…` reference is an entrypoint; any other query is compiled as a rule of its own.
  const reference = entrypointOf(c.query);
  const compiled = compileCase(c, reference, options);
  if (!(compiled instanceof Uint8Array)) return compiled;
  try {
    return await evaluateCase(c, compiled, reference);
  } catch (error) {
    const message = typeof error === "string" ? error : error instanceof Error ? error.message : JSON.stringify(error);
    if (expectsError(c)) return { outcome: "pass", detail: message };
    return { outcome: "fail", detail: `evaluation error: ${message}` };
  }
}

const expectsError = (c: ConformanceCase) => c.error !== undefined && !c.want;

/** The case's Wasm module, or the verdict on its compile error. */
function compileCase(c: ConformanceCase, reference: string | undefined, options: RunOptions): Uint8Array | Verdict {
  try {
    const modules = parseCaseModules(c);
    if (reference === undefined) modules.push(queryModule(c.query));
    return compileModules(modules, [reference ?? QUERY_ENTRYPOINT], {
      strictBuiltinErrors: c.strict,
      optimize: options.optimize ?? true,
    }).wasm;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (!(error instanceof RegoCompileErrors) && !(error instanceof RegoError)) {
      return { outcome: "fail", detail: `compiler crashed: ${message}` };
    }
    if (expectsError(c)) return { outcome: "pass", detail: message };
    if (message.includes("unsupported:")) return { outcome: "unsupported", detail: message };
    return { outcome: "fail", detail: `compile error: ${message}` };
  }
}

/** Evaluates the case for each of its inputs; the first input judged wrong decides. */
async function evaluateCase(c: ConformanceCase, wasm: Uint8Array, reference: string | undefined): Promise<Verdict> {
  const policy = await loadPolicy(wasm, undefined, c.strict ? hostBuiltins : lenientHostBuiltins);
  policy.setData(c.data as object);
  const inputs = c.inputs ?? [undefined];
  for (let i = 0; i < inputs.length; i++) {
    const rows = policy.evaluate(inputs[i], reference ?? QUERY_ENTRYPOINT) as Rows;
    const verdict = judge(c, rows, i, reference === undefined);
    if (verdict) return verdict;
  }
  return { outcome: "pass" };
}

/** One input's rows against the case's expectation: a verdict, or undefined to go on with the next input. */
function judge(c: ConformanceCase, rows: Rows, input: number, isQuery: boolean): Verdict | undefined {
  if (expectsError(c)) {
    // Errors that only regorus's compiler raises: an interpreter's success is accepted.
    if (c.allowSuccess) return { outcome: "pass", detail: `accepted success: ${JSON.stringify(rows)}` };
    return { outcome: "fail", detail: `expected error "${c.error}", got ${JSON.stringify(rows)}` };
  }
  if (c.noResult || !c.want) {
    const none = isQuery ? ((rows[0]?.result ?? []) as unknown[]).length === 0 : rows.length === 0;
    return none ? undefined : { outcome: "fail", detail: `expected no result, got ${JSON.stringify(rows)}` };
  }
  const want = c.want.results[Math.min(input, c.want.results.length - 1)];
  return isQuery ? judgeSolutions(c.want, rows, want) : judgeValue(rows, want);
}

/** A query's solutions: one expected result, or (many!) one per solution, which settles the case. */
function judgeSolutions(want: { results: unknown[]; many: boolean }, rows: Rows, one: unknown): Verdict | undefined {
  const solutions = (rows[0]?.result ?? []) as unknown[];
  const expected = want.many ? want.results : [one];
  if (!sameJson(solutions, expected)) {
    return { outcome: "fail", detail: `want ${JSON.stringify(expected)}, got ${JSON.stringify(solutions)}` };
  }
  return want.many ? { outcome: "pass" } : undefined;
}

function judgeValue(rows: Rows, want: unknown): Verdict | undefined {
  if (rows.length === 1 && sameJson(rows[0]?.result, want)) return undefined;
  return { outcome: "fail", detail: `want ${JSON.stringify(want)}, got ${JSON.stringify(rows)}` };
}

/** Equal as JSON (object keys in any order; sets are arrays in Rego order on both sides). */
function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(normalise(a)) === JSON.stringify(normalise(b));
}

function normalise(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normalise);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, normalise((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/** The per-folder table: pass, fail (wrong answer), unsupported and skipped cases, then the totals. */
export function folderTable(report: ConformanceReport): string {
  const row = (name: string, t: Record<Outcome, number>) =>
    `${name.padEnd(48)} ${String(t.pass).padStart(5)} ${String(t.fail).padStart(5)} ${String(t.unsupported).padStart(6)} ${String(t.skipped).padStart(5)}`;
  const { totals } = report;
  const all = totals.pass + totals.fail + totals.unsupported + totals.skipped;
  const pct = all === 0 ? "0.0" : ((100 * totals.pass) / all).toFixed(1);
  return [
    `${"folder".padEnd(48)} ${"pass".padStart(5)} ${"fail".padStart(5)} ${"unsup".padStart(6)} ${"skip".padStart(5)}`,
    ...Object.entries(report.folders)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([folder, t]) => row(folder, t)),
    "-".repeat(72),
    row("total", totals),
    `pass ${pct}% of ${all} cases`,
  ].join("\n");
}
