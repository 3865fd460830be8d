// Fuzzing `with` against a reference without it: small generated programs replace input, base
// data, a rule, a function (by a value, a function or a built-in) and built-ins (by a value or a
// function), directly or nested (the inner `with` winning for its targets), the values written
// out or passed through variables. The reference is the same program with every replacement
// applied to its text (the mocked definitions rewritten, the built-in calls renamed to the mock)
// and to the input and data documents; both are compiled into one module, so each run is one
// compile. The mocked evaluation must equal the reference, and the same rule evaluated without
// `with` in the same evaluation must equal the unmocked program (no memo crosses contexts).
// A few dozen runs by default; MANDATE_FUZZ=full for many more.
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RegoCompileErrors } from "../../services/authorize/rego/check.ts";
import { compileRego } from "../../services/authorize/rego/compile.ts";
import { hostBuiltins } from "../../services/authorize/rego/host-builtins.ts";

const RUNS = process.env.MANDATE_FUZZ === "full" ? 400 : 25;

/** What one `with` literal replaces (absent: not replaced). */
interface Mocks {
  inputN?: number;
  inputXs?: number[];
  cfgK?: number;
  rule?: number | boolean;
  f?: number | boolean | "g" | "floor";
  count?: number | "h";
  abs?: number;
}

const value = fc.oneof(fc.integer({ min: -3, max: 9 }), fc.boolean());
const mocksArb: fc.Arbitrary<Mocks> = fc.record(
  {
    inputN: fc.integer({ min: -5, max: 5 }),
    inputXs: fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 3 }),
    cfgK: fc.integer({ min: -5, max: 5 }),
    rule: value,
    f: fc.oneof(value, fc.constantFrom("g" as const, "floor" as const)),
    count: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.constant("h" as const)),
    abs: fc.integer({ min: 0, max: 9 }),
  },
  { requiredKeys: [] },
);

const programArb = fc.record({
  outer: mocksArb,
  inner: fc.option(mocksArb, { nil: undefined }),
  /** Constant values bound to variables first, so they reach the mocks as dynamic values. */
  viaVariables: fc.boolean(),
});

type Program = { outer: Mocks; inner: Mocks | undefined; viaVariables: boolean };

const INPUT = { n: 2, xs: [1, 2, 3] };
const DATA = { cfg: { k: 4 } };

/** The policy's rules; `defs` overrides one by name (the reference's rewritten definitions). */
function rules(pkg: string, defs: Partial<Record<"f" | "r", string>>, rename: Record<string, string>): string {
  const call = (name: string) => `${rename[name] ?? name}(`;
  return [
    `package ${pkg}`,
    defs.f ?? "f(x) := x + 3",
    "g(x) := x * 2",
    "h(_) := 7",
    defs.r ?? `r := ${call("count")}input.xs) + f(data.cfg.k)`,
    `s := ${call("abs")}input.n) + ${call("count")}[1, 2])`,
    `q := [r, f(input.n), ${call("count")}input.xs), data.cfg.k, s]`,
  ].join("\n");
}

const text = (v: unknown) => JSON.stringify(v);

/** The `with` modifiers for some mocks; constants become variables (declared in `vars`) when asked. */
function withClauses(m: Mocks, pkg: string, vars: string[] | undefined): string {
  const val = (v: unknown) => {
    if (!vars || typeof v === "string") return typeof v === "string" ? v : text(v);
    vars.push(`v${vars.length} := ${text(v)}`);
    return `v${vars.length - 1}`;
  };
  const clauses: string[] = [];
  if (m.inputN !== undefined) clauses.push(`with input.n as ${val(m.inputN)}`);
  if (m.inputXs !== undefined) clauses.push(`with input.xs as ${val(m.inputXs)}`);
  if (m.cfgK !== undefined) clauses.push(`with data.cfg.k as ${val(m.cfgK)}`);
  if (m.rule !== undefined) clauses.push(`with data.${pkg}.r as ${val(m.rule)}`);
  if (m.f !== undefined) clauses.push(`with f as ${val(m.f)}`);
  if (m.count !== undefined) clauses.push(`with count as ${val(m.count)}`);
  if (m.abs !== undefined) clauses.push(`with abs as ${val(m.abs)}`);
  return clauses.join(" ");
}

/** The program under test: `p` is [q under the withs, q without]. */
function programWithWith({ outer, inner, viaVariables }: Program): string {
  const vars: string[] = [];
  const innerClauses = inner ? withClauses(inner, "w", undefined) : "";
  const lines = [rules("w", {}, {})];
  if (innerClauses) lines.push(`q2 := x if x := q ${innerClauses}`);
  const outerClauses = withClauses(outer, "w", viaVariables ? vars : undefined);
  lines.push(`p := [a, b] if {`, ...vars, `  a := ${innerClauses ? "q2" : "q"} ${outerClauses}`, "  b := q", "}");
  return lines.join("\n");
}

/** The reference: every replacement applied to the text and documents (the inner `with` wins). */
function reference({ outer, inner }: Program): { source: string; input: object; data: object } {
  const m: Mocks = { ...outer, ...inner };
  const defs: Partial<Record<"f" | "r", string>> = {};
  const rename: Record<string, string> = {};
  const extra: string[] = [];
  if (m.rule !== undefined) defs.r = `r := ${text(m.rule)}`;
  if (m.f === "g" || m.f === "floor") defs.f = `f(x) := ${m.f}(x)`;
  else if (m.f !== undefined) defs.f = `f(_) := ${text(m.f)}`;
  if (m.count === "h") rename.count = "h";
  else if (m.count !== undefined) {
    rename.count = "count_mock";
    extra.push(`count_mock(_) := ${m.count}`);
  }
  if (m.abs !== undefined) {
    rename.abs = "abs_mock";
    extra.push(`abs_mock(_) := ${m.abs}`);
  }
  return {
    source: [rules("m", defs, rename), ...extra].join("\n"),
    input: { n: m.inputN ?? INPUT.n, xs: m.inputXs ?? INPUT.xs },
    data: { cfg: { k: m.cfgK ?? DATA.cfg.k } },
  };
}

type Outcome = { value: unknown } | { error: string };

/**
 * The program and its reference in one module. A mock's value written into the reference's text
 * can be a type error the type checker sees (`false + 1`); with `with` it is not checked (as in
 * OPA), so then the program is compiled alone and evaluating it must fail instead.
 */
function compileBoth(program: Program, ref: ReturnType<typeof reference>): { wasm: Uint8Array; refused: boolean } {
  const modules = { "w.rego": programWithWith(program) };
  try {
    const both = { ...modules, "m.rego": ref.source };
    return {
      wasm: compileRego({ modules: both, entrypoints: ["w/p", "w/q", "m/q"], optimize: false }).wasm,
      refused: false,
    };
  } catch (error) {
    if (!(error instanceof RegoCompileErrors) || !/^m\.rego:\d+: rego_type_error/.test(error.message)) throw error;
    return { wasm: compileRego({ modules, entrypoints: ["w/p"], optimize: false }).wasm, refused: true };
  }
}

describe("with, fuzzed against the program with the replacements written in", () => {
  it("mocked evaluation equals the reference; the unmocked one equals the program", async () => {
    await fc.assert(
      fc.asyncProperty(programArb, async (program) => {
        const ref = reference(program);
        const { wasm, refused } = compileBoth(program, ref);
        const policy = await loadPolicy(wasm, undefined, hostBuiltins);
        const run = (entry: string, input: object, data: object): Outcome => {
          policy.setData(data);
          try {
            return { value: (policy.evaluate(input, entry) as Array<{ result: unknown }>)[0]?.result };
          } catch (error) {
            return { error: String(error).replace(/^Error: /, "") };
          }
        };
        const both = run("w/p", INPUT, DATA);
        if (refused) {
          expect(both).toHaveProperty("error", expect.stringMatching(/^eval_type_error/));
          return;
        }
        const mocked = run("m/q", ref.input, ref.data);
        const plain = run("w/q", INPUT, DATA);
        expect(plain).toHaveProperty("value");
        if ("error" in mocked) {
          // The reference's error is the mocked evaluation's.
          expect(both).toEqual(mocked);
        } else if (mocked.value === undefined) {
          expect(both).toEqual({ value: undefined });
        } else {
          expect(both).toEqual({ value: [mocked.value, (plain as { value: unknown }).value] });
        }
      }),
      { numRuns: RUNS },
    );
  }, 120_000);
});
