// OPA's case format judged as OPA's own runner does (v1/topdown's testRun and testAssertResultSet):
// the query is compiled with the case's modules (Rego v1), evaluated with built-in errors strict only
// when `strict_error` says so, and its solutions, each the object of the query's variables with sets
// as arrays, compared with `want_result` as a set (each binding sorted first under `sort_bindings`).
// An expected error must come with OPA's code, compile-time (rego_*) or at evaluation (eval_*), and
// its message must contain `want_error` where one is given (less OPA's location, for errors raised
// in Wasm, which has none). A compile-time refusal naming an
// unsupported construct is "unsupported"; every other difference is a failure.
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import type { Module } from "../ast.ts";
import { RegoCompileErrors } from "../check.ts";
import { compileModules } from "../compile.ts";
import { hostBuiltins, lenientHostBuiltins } from "../host-builtins.ts";
import { RegoError } from "../lexer.ts";
import { parseModule } from "../parser.ts";
import { QUERY_ENTRYPOINT, queryModule } from "../query.ts";
import { type CaseResult, type ConformanceCase, compareRego, type OpaExpectation, type RunOptions } from "./cases.ts";

type Verdict = Omit<CaseResult, "file" | "note">;

/** The first OPA error code in a message (`rego_type_error`, `eval_conflict_error`, …). */
export function errorCodeOf(message: string): string | undefined {
  return /\b((?:rego|eval)_[a-z_]+_error)\b/.exec(message)?.[1];
}

const messageOf = (error: unknown): string =>
  typeof error === "string" ? error : error instanceof Error ? error.message : JSON.stringify(error);

export async function runOpaCase(
  c: ConformanceCase & { opa: OpaExpectation },
  options: RunOptions = {},
): Promise<Verdict> {
  let wasm: Uint8Array;
  try {
    const modules = c.modules.map((source, i) => parseModule(source, { file: `test-${i}.rego` }));
    modules.push(queryModule(c.query));
    const optimize = options.optimize ?? true;
    wasm = compileModules(modules, [QUERY_ENTRYPOINT], { strictBuiltinErrors: c.strict, optimize }).wasm;
  } catch (error) {
    return compileErrorVerdict(c.opa, error);
  }
  let solutions: unknown[];
  try {
    const input = c.opa.inputTerm === undefined ? c.inputs?.[0] : await inputOfTerm(c.opa.inputTerm);
    const policy = await loadPolicy(wasm, undefined, c.strict ? hostBuiltins : lenientHostBuiltins);
    policy.setData(c.data as object);
    const rows = policy.evaluate(input, QUERY_ENTRYPOINT) as Array<{ result: unknown }>;
    solutions = (rows[0]?.result ?? []) as unknown[];
  } catch (error) {
    return errorVerdict(c.opa, messageOf(error), "evaluation");
  }
  return judgeSolutions(c.opa, solutions);
}

function compileErrorVerdict(opa: OpaExpectation, error: unknown): Verdict {
  const message = messageOf(error);
  if (!(error instanceof RegoCompileErrors) && !(error instanceof RegoError)) {
    return { outcome: "fail", detail: `compiler crashed: ${message}` };
  }
  if (/unsupported: /.test(message)) return { outcome: "unsupported", detail: message };
  return errorVerdict(opa, message, "compile");
}

/** The case met an error: right when OPA expects one with this code (and text). */
function errorVerdict(opa: OpaExpectation, message: string, stage: "compile" | "evaluation"): Verdict {
  if (opa.errorCode === undefined && opa.errorText === undefined) {
    return { outcome: "fail", detail: `${stage} error: ${message}${expectedText(opa)}` };
  }
  const code = errorCodeOf(message);
  if (opa.errorCode !== undefined && code !== opa.errorCode) {
    return { outcome: "fail", detail: `want error ${opa.errorCode}, got ${stage} error: ${message}` };
  }
  if (opa.errorText !== undefined && !containsErrorText(message, opa.errorText)) {
    return { outcome: "fail", detail: `want error containing "${opa.errorText}", got ${stage} error: ${message}` };
  }
  return { outcome: "pass", detail: message };
}

/**
 * OPA's runner checks that the message contains `want_error`. Modules are named test-0.rego… as in
 * OPA's runner, so compile errors carry the same locations; an error raised in Wasm carries none (as
 * with OPA's own Wasm target), so there the text after OPA's `file:row: ` prefix must match.
 */
function containsErrorText(message: string, want: string): boolean {
  if (message.includes(want)) return true;
  const located = /^[\w.-]+\.rego:\d+: (.*)$/s.exec(want);
  return located !== null && !/\.rego:\d+:/.test(message) && message.includes(located[1] as string);
}

const expectedText = (opa: OpaExpectation): string =>
  opa.bindings !== undefined ? ` (want ${JSON.stringify(opa.bindings)})` : "";

function judgeSolutions(opa: OpaExpectation, solutions: unknown[]): Verdict {
  if (opa.errorCode !== undefined || opa.errorText !== undefined) {
    const want = opa.errorCode ?? `"${opa.errorText}"`;
    return { outcome: "fail", detail: `want error ${want}, got ${JSON.stringify(solutions)}` };
  }
  if (opa.defined !== undefined) {
    const defined = solutions.length > 0;
    return defined === opa.defined
      ? { outcome: "pass" }
      : { outcome: "fail", detail: `want ${opa.defined ? "defined" : "undefined"}, got ${JSON.stringify(solutions)}` };
  }
  if (opa.bindings === undefined) return { outcome: "fail", detail: "the case expects no result, value or error" };
  const got = resultSet(solutions.map((s) => bindingsOf(s, opa)));
  const want = resultSet(opa.bindings.map((b) => ({ ...b })));
  if (JSON.stringify(got) === JSON.stringify(want)) return { outcome: "pass" };
  return { outcome: "fail", detail: `want ${JSON.stringify(want)}, got ${JSON.stringify(got)}` };
}

/**
 * A solution as OPA's bindings: the object of the query's variables; a query without variables has
 * the empty binding for each solution. Under `sort_bindings` each array binding is sorted.
 */
function bindingsOf(solution: unknown, opa: OpaExpectation): Record<string, unknown> {
  const wantsVariables = (opa.bindings ?? []).some((b) => Object.keys(b).length > 0);
  if (!wantsVariables || solution === null || typeof solution !== "object" || Array.isArray(solution)) return {};
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(solution)) {
    if (opa.ignoreGeneratedVars && k.startsWith("__localq")) continue;
    out[k] = opa.sortBindings && Array.isArray(v) ? [...v].sort(compareRego) : v;
  }
  return out;
}

/** Solutions as a set: each in canonical JSON (keys sorted), sorted, without duplicates. */
function resultSet(solutions: Array<Record<string, unknown>>): string[] {
  return [...new Set(solutions.map((s) => JSON.stringify(canonical(s))))].sort();
}

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/** `input_term` (Rego term text): JSON as is, anything else evaluated by the compiler, sets as arrays. */
async function inputOfTerm(term: string): Promise<unknown> {
  try {
    return JSON.parse(term);
  } catch {
    const module: Module = parseModule(`package __input__\n\nvalue := ${term}\n`, { file: "input.rego" });
    const { wasm } = compileModules([module], ["__input__/value"], { strictBuiltinErrors: true });
    const policy = await loadPolicy(wasm);
    const rows = policy.evaluate(undefined, "__input__/value") as Array<{ result: unknown }>;
    return rows[0]?.result;
  }
}
