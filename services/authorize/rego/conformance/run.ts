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
import { type ConformanceCase, loadCases } from "./cases.ts";

export type Outcome = "pass" | "fail" | "unsupported" | "skipped";

export interface CaseResult {
  file: string;
  note: string;
  outcome: Outcome;
  /** Why it failed or is unsupported. */
  detail?: string;
}

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

export async function runConformance(
  dir: string,
  onCase?: (result: CaseResult, done: number, total: number) => void,
): Promise<ConformanceReport> {
  const files = caseFiles(dir);
  const all = files.flatMap((file) => loadCases(file));
  const results: CaseResult[] = [];
  for (const c of all) {
    const result = { ...(await runCase(c)), file: relative(dir, c.file), note: c.note };
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

export async function runCase(c: ConformanceCase): Promise<Omit<CaseResult, "file" | "note">> {
  if (c.skip) return { outcome: "skipped" };
  const expectsError = c.error !== undefined && !c.want;
  // A `data.…` reference is an entrypoint; any other query is compiled as a rule of its own.
  const reference = entrypointOf(c.query);
  const entrypoint = reference ?? QUERY_ENTRYPOINT;
  let wasm: Uint8Array;
  try {
    const modules = parseCaseModules(c);
    if (reference === undefined) modules.push(queryModule(c.query, modules));
    wasm = compileModules(modules, [entrypoint], { strictBuiltinErrors: c.strict }).wasm;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (!(error instanceof RegoCompileErrors) && !(error instanceof RegoError)) {
      return { outcome: "fail", detail: `compiler crashed: ${message}` };
    }
    if (expectsError) return { outcome: "pass", detail: message };
    if (message.includes("unsupported:")) return { outcome: "unsupported", detail: message };
    return { outcome: "fail", detail: `compile error: ${message}` };
  }
  try {
    const policy = await loadPolicy(wasm, undefined, c.strict ? hostBuiltins : lenientHostBuiltins);
    policy.setData(c.data as object);
    const inputs = c.inputs ?? [undefined];
    for (let i = 0; i < inputs.length; i++) {
      const rows = policy.evaluate(inputs[i], entrypoint) as Array<{ result: unknown }>;
      if (expectsError) {
        // Errors that only regorus's compiler raises: an interpreter's success is accepted.
        if (c.allowSuccess) return { outcome: "pass", detail: `accepted success: ${JSON.stringify(rows)}` };
        return { outcome: "fail", detail: `expected error "${c.error}", got ${JSON.stringify(rows)}` };
      }
      const want = c.want?.results[Math.min(i, (c.want?.results.length ?? 1) - 1)];
      if (c.noResult || !c.want) {
        const none = reference === undefined ? ((rows[0]?.result ?? []) as unknown[]).length === 0 : rows.length === 0;
        if (!none) return { outcome: "fail", detail: `expected no result, got ${JSON.stringify(rows)}` };
        continue;
      }
      if (reference === undefined) {
        // The query's solutions: one expected result, or (many!) one per solution.
        const solutions = (rows[0]?.result ?? []) as unknown[];
        const expected = c.want?.many ? (c.want.results as unknown[]) : [want];
        if (!sameJson(solutions, expected)) {
          return { outcome: "fail", detail: `want ${JSON.stringify(expected)}, got ${JSON.stringify(solutions)}` };
        }
        if (c.want?.many) break;
        continue;
      }
      const got = rows[0]?.result;
      if (rows.length !== 1 || !sameJson(got, want)) {
        return { outcome: "fail", detail: `want ${JSON.stringify(want)}, got ${JSON.stringify(rows)}` };
      }
    }
    return { outcome: "pass" };
  } catch (error) {
    const message = typeof error === "string" ? error : error instanceof Error ? error.message : JSON.stringify(error);
    if (expectsError) return { outcome: "pass", detail: message };
    return { outcome: "fail", detail: `evaluation error: ${message}` };
  }
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
