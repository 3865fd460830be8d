// OPA's own evaluation cases (third_party/opa-conformance, from open-policy-agent/opa's
// v1/test/cases/testdata/v1) through Mandate's compiler and @open-policy-agent/opa-wasm, judged as
// OPA's runner judges them (services/authorize/rego/conformance/opa.ts). The test fails on any failure
// (an answer or error that differs from OPA's) that is not listed below with its reason, on any
// unsupported case that is not a clean compile-time refusal, and when fewer cases pass than measured.
// Cases OPA's own Wasm target skips (its e2e runner's exceptions.yaml, vendored as wasm-exceptions.yaml)
// may differ for the reason that file gives. The corpus compiles without binaryen's optimizer: the
// semantics are the same and it runs about 8 times faster; the shared corpus
// (rego-conformance.test.ts) covers the optimized modules.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import type { CaseResult } from "../../services/authorize/rego/conformance/cases.ts";
import { type ConformanceReport, folderTable, runConformance } from "../../services/authorize/rego/conformance/run.ts";

const ROOT = new URL("../../third_party/opa-conformance/", import.meta.url);
const CORPUS = fileURLToPath(new URL("cases", ROOT));

/** OPA's Wasm e2e exclusions, by case note, with OPA's reason. */
const WASM_EXCEPTIONS = parse(readFileSync(new URL("wasm-exceptions.yaml", ROOT), "utf8")) as Record<string, string>;

/** The vendored corpus's size, and the passes measured on the committed tree (raise as fixes land). */
const CASES = 884;
const MIN_PASS = 834;

const CONFLICT_TEXT =
  "OPA's Wasm target raises this eval_conflict_error with its own text (complete rules / functions must not produce multiple outputs); the text checked is topdown's, and OPA's Wasm e2e runner does not compare error text";
const TYPE_ERROR_TEXT =
  "eval_type_error raised as in OPA, with the runtime's generic text (invalid argument type for …) instead of the built-in's operand message";
const UNIFY_SAFETY =
  'the safety check refuses a variable that the unification itself binds from its other side ({"x": x, "y": 2} = {"x": 1, "y": y}: rego_unsafe_var_error); OPA accepts it';
/** Cases where Mandate's answer differs from OPA's topdown, each with the reason. Keyed file|note. */
const KNOWN_DIFFERENCES = new Map<string, string>([
  ...[
    "functions/test-functions-nested-with-early-exit.yaml|functions/nested complete doc with conflict",
    "functions/test-functions-nested-with-early-exit.yaml|functions/nested complete doc with conflict, else",
    "functions/test-functions-nested-with-early-exit.yaml|functions/nested function with conflict",
    "functions/test-functions-nested-with-early-exit.yaml|functions/nested function with conflict, else",
    "functions/test-functions-nested-with-early-exit.yaml|functions/nested function with conflict, else, no extra return",
    "functionerrors/test-conflicts.yaml|functionerrors/conflict: plain false and true result, first round",
    "functionerrors/test-conflicts.yaml|functionerrors/conflict: plain false and true result, second round",
    "functionerrors/test-functionerrors-1012.yaml|functionerrors/function output conflict single",
    "functionerrors/test-functionerrors-1012.yaml|functionerrors/function output conflict, used as boolean",
    "partialobjectdoc/test-wasm-cases.yaml|wasm/conflict error",
    "virtualdocs/test-virtualdocs-0679.yaml|virtualdocs/no suffix: complete incr (error)",
    "completedoc/test-completedoc-0510.yaml|completedoc/vars conflict",
    "disjunction/test-disjunction-0772.yaml|disjunction/complete: error",
  ].map((key) => [key, CONFLICT_TEXT] as const),
  ...[
    "strings/test-anyprefixmatch.yaml|strings/any_prefix_match/type_error_strict",
    "strings/test-anysuffixmatch.yaml|strings/any_suffix_match/type_error_strict",
  ].map((key) => [key, TYPE_ERROR_TEXT] as const),
  [
    "dataderef/test-data-derefs.yaml|data/nested integer",
    'data.nested[2] is undefined where data.nested has the key "2"; OPA converts a number key to its string when indexing base documents (objects; arrays take it as an index)',
  ],
  [
    "dataderef/test-data-derefs.yaml|data/toplevel integer",
    'p := data[2] inside package test is refused as recursive (rego_recursion_error); OPA answers data["2"]',
  ],
  [
    "negation/test-not-body.yaml|negation/not-body: negated call with vars, call evaluates",
    "the parser refuses `import future.keywords.not`, which OPA 1.x accepts",
  ],
  [
    "negation/test-not-body.yaml|negation/not-body: negated call with vars, call fails",
    "the parser refuses `import future.keywords.not`, which OPA 1.x accepts",
  ],
  [
    "negation/test-not-body.yaml|negation/not-body: negated call with vars, undefined operands",
    "the parser refuses `import future.keywords.not`, which OPA 1.x accepts",
  ],
  [
    "comprehensions/test-comprehensions-and-vars.yaml|comprehensions/var bindings have no effect outside",
    "the safety check counts a comprehension's local x against a later `x :=` in the enclosing body (rego_unsafe_var_error); OPA scopes it to the comprehension",
  ],
  ...[
    "inputvalues/test-inputvalues-0980.yaml|inputvalues/missing",
    "eqexpr/test-eqexpr-0587.yaml|eqexpr/pattern: object multiple vars 2",
  ].map((key) => [key, UNIFY_SAFETY] as const),
  [
    "inputvalues/test-inputvalues-0983.yaml|inputvalues/input set",
    "the input term holds a set; the Wasm ABI's input is JSON, where the set becomes an array (as for OPA's Wasm target), so input.foo[{1}] is undefined",
  ],
]);

const key = (c: CaseResult) => `${c.file}|${c.note}`;
const allowed = (c: CaseResult) => KNOWN_DIFFERENCES.has(key(c)) || c.note in WASM_EXCEPTIONS;

let report: ConformanceReport;

beforeAll(async () => {
  report = await runConformance(CORPUS, undefined, { optimize: false });
  const unsupported = report.cases.filter((c) => c.outcome === "unsupported");
  const stale = [...KNOWN_DIFFERENCES.keys()].filter(
    (k) => !report.cases.some((c) => c.outcome === "fail" && key(c) === k),
  );
  console.log(
    [
      "OPA conformance corpus (third_party/opa-conformance):",
      folderTable(report),
      ...unsupported.map((c) => `unsupported ${key(c)}: ${(c.detail ?? "").split("\n")[0]}`),
      ...stale.map((k) => `known difference no longer seen (remove it): ${k}`),
    ].join("\n"),
  );
}, 600_000);

describe("OPA conformance corpus", () => {
  it("runs the whole vendored corpus", () => {
    const { pass, fail, unsupported, skipped } = report.totals;
    expect(pass + fail + unsupported + skipped).toBe(CASES);
  });

  it("passes at least as many cases as measured", () => {
    expect(report.totals.pass).toBeGreaterThanOrEqual(MIN_PASS);
  });

  it("answers as OPA except in the known, explained differences", () => {
    const failures = report.cases.filter((c) => c.outcome === "fail" && !allowed(c));
    expect(failures.map((c) => `${key(c)}: ${c.detail}`)).toEqual([]);
  });

  it("refuses every unsupported case at compile time, naming the construct", () => {
    for (const c of report.cases.filter((x) => x.outcome === "unsupported")) {
      expect(c.detail, key(c)).toMatch(/unsupported: .* is not supported by Mandate's compiler/);
    }
  });
});
