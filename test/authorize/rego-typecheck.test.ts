// The type checker (typecheck.ts, OPA's v1/ast/check.go): each error kind OPA raises at compile
// time is raised here too, in OPA's words (the `have:`/`want:` lines of a call, `left`/`right` of a
// unification, the caret under a reference); its close relatives that OPA accepts still compile;
// and no policy that OPA accepts is refused: the corpus cases expected to evaluate, and the
// policies Mandate ships.
import { globSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { describe, expect, it } from "vitest";
import type { Module } from "../../services/authorize/rego/ast.ts";
import {
  BUILTIN_SIGNATURES,
  builtinSignature,
  formatSignature,
  parseSignature,
} from "../../services/authorize/rego/builtin-types.ts";
import { BUILTIN_NAMES } from "../../services/authorize/rego/builtins.ts";
import { checkModules, RegoCompileErrors } from "../../services/authorize/rego/check.ts";
import { checkRego } from "../../services/authorize/rego/compile.ts";
import { parseModule } from "../../services/authorize/rego/parser.ts";
import { typeCheck } from "../../services/authorize/rego/typecheck.ts";
import { caseModules, corpusCases } from "../helpers/rego-corpus.ts";

/** The errors of one module `package p` holding `rules`, through every compiler stage but Wasm. */
function errorsOf(rules: string): string[] {
  try {
    checkRego({ modules: { "p.rego": `package p\n\n${rules}` } });
    return [];
  } catch (error) {
    if (!(error instanceof RegoCompileErrors)) throw error;
    return error.errors.map((e) => e.message);
  }
}

describe("built-in calls are checked against OPA's declared signatures", () => {
  it("an operator's operands, with the output OPA's rewriting gives it (???)", () => {
    // OPA: `x := 1 + "a"` is `plus(1, "a", __local0__)` when types are checked.
    expect(errorsOf('allow if {\n\tx := 1 + "a"\n}')).toEqual([
      "p.rego:4: rego_type_error: plus: invalid argument(s)\n\thave: (number, string, ???)\n\twant: (x: number, y: number, z: number)",
    ]);
    expect(errorsOf('allow if "a" * 2 > 1')).toEqual([
      "p.rego:3: rego_type_error: mul: invalid argument(s)\n\thave: (string, number, ???)\n\twant: (x: number, y: number, z: number)",
    ]);
  });

  it("a call on its own: no output, but the declared result is part of what is wanted", () => {
    expect(errorsOf("allow if startswith(input.name, 5)")).toEqual([
      "p.rego:3: rego_type_error: startswith: invalid argument(s)\n\thave: (any, number)\n\twant: (search: string, base: string, result: boolean)",
    ]);
  });

  it("unions are printed as OPA prints them, members in its order", () => {
    expect(errorsOf("allow if count(1) > 0")).toEqual([
      "p.rego:3: rego_type_error: count: invalid argument(s)\n\thave: (number, ???)\n\twant: (collection: any<string, array[any], object[any: any], set[any]>, n: number)",
    ]);
    expect(errorsOf('allow if concat(",", [1, 2]) == ""')).toEqual([
      "p.rego:3: rego_type_error: concat: invalid argument(s)\n\thave: (string, array<number, number>, ???)\n\twant: (delimiter: string, collection: any<array[string], set[string]>, output: string)",
    ]);
  });

  it("types flow through variables: assignment, destructuring, iteration, comprehensions, references", () => {
    const upperOfNumber =
      "rego_type_error: upper: invalid argument(s)\n\thave: (number, ???)\n\twant: (x: string, y: string)";
    expect(errorsOf('allow if {\n\tx := 1\n\tupper(x) == "1"\n}')).toEqual([`p.rego:5: ${upperOfNumber}`]);
    expect(errorsOf('allow if {\n\t[a, b] := split(input.s, ",")\n\ta + 1 > 0\n}')[0]).toMatch(
      /plus: invalid argument\(s\)\n\thave: \(string, number, \?\?\?\)/,
    );
    expect(errorsOf('allow if {\n\tsome x in [1, 2]\n\tupper(x) == "1"\n}')).toEqual([`p.rego:5: ${upperOfNumber}`]);
    expect(errorsOf('allow if {\n\txs := [x | some x in [1, 2]]\n\tconcat(",", xs) == ""\n}')[0]).toMatch(
      /concat: invalid argument\(s\)\n\thave: \(string, array\[number\], \?\?\?\)/,
    );
    expect(errorsOf('allow if {\n\tx := {"a": 1}\n\tupper(x.a) == "1"\n}')).toEqual([`p.rego:5: ${upperOfNumber}`]);
    expect(errorsOf('allow if {\n\tx := count(input)\n\tupper(x) == "1"\n}')).toEqual([`p.rego:5: ${upperOfNumber}`]);
  });

  it("rule heads and else values are checked with their body's types", () => {
    expect(errorsOf("n := count(1)")[0]).toMatch(/^p.rego:3: rego_type_error: count: invalid argument\(s\)/);
    expect(errorsOf("x := 1 if input.a\nelse := upper(2)")[0]).toMatch(/^p.rego:4: rego_type_error: upper:/);
    // x is typed by the first operand's check (number) before the second fails, as in OPA.
    expect(errorsOf("f(x) := y if y := x * true")[0]).toMatch(
      /mul: invalid argument\(s\)\n\thave: \(number, boolean, \?\?\?\)/,
    );
  });

  it("every error is reported, in position order", () => {
    expect(errorsOf("b if upper(1)\na if lower(2)").map((e) => e.split("\n")[0])).toEqual([
      "p.rego:3: rego_type_error: upper: invalid argument(s)",
      "p.rego:4: rego_type_error: lower: invalid argument(s)",
    ]);
  });
});

describe("rules and functions are typed from their definitions", () => {
  it("a rule's value", () => {
    expect(errorsOf('n := "a"\nallow if n + 1 > 0')).toEqual([
      "p.rego:4: rego_type_error: plus: invalid argument(s)\n\thave: (string, number, ???)\n\twant: (x: number, y: number, z: number)",
    ]);
    expect(errorsOf('s contains x if some x in ["a"]\nallow if s[_] * 2 > 0')[0]).toMatch(
      /mul: invalid argument\(s\)\n\thave: \(string, number, \?\?\?\)/,
    );
  });

  it("a reference into a rule's known keys (as data.pkg.rule)", () => {
    expect(errorsOf('r := {"existing": 1}\nx := r.missing')).toEqual([
      'p.rego:4: rego_type_error: undefined ref: data.p.r.missing\n\tdata.p.r.missing\n\t         ^\n\t         have: "missing"\n\t         want (one of): ["existing"]',
    ]);
  });

  it("a function's arguments, from how its body uses them", () => {
    expect(errorsOf('f(x) := x + 1\nallow if f("a") == 2')).toEqual([
      "p.rego:4: rego_type_error: data.p.f: invalid argument(s)\n\thave: (string, ???)\n\twant: (number, number)",
    ]);
  });

  it("a rule whose body has a type error is any to the rules that read it", () => {
    expect(errorsOf("n := upper(1)\nallow if n + 1 > 0").map((e) => e.split("\n")[0])).toEqual([
      "p.rego:3: rego_type_error: upper: invalid argument(s)",
    ]);
  });
});

describe("unification of values of disjoint types is a match error", () => {
  it("reports both sides' types", () => {
    expect(errorsOf('allow if {\n\tx := 1\n\tx = "a"\n}')).toEqual([
      "p.rego:5: rego_type_error: match error\n\tleft  : number\n\tright : string",
    ]);
    expect(errorsOf("allow if {\n\tx := upper(input.s)\n\tx = 2\n}")[0]).toMatch(
      /match error\n\tleft {2}: string\n\tright : number/,
    );
  });
});

describe("references into values that cannot have them are undefined refs", () => {
  it("a scalar has no elements", () => {
    expect(errorsOf("allow if {\n\tx := 1\n\tx.foo\n}")).toEqual([
      "p.rego:5: rego_type_error: undefined ref: x.foo\n\tx.foo\n\t^\n\thave: number",
    ]);
  });

  it("an object literal has only its keys", () => {
    expect(errorsOf('allow if {\n\tx := {"a": 1}\n\tx.b\n}')).toEqual([
      'p.rego:5: rego_type_error: undefined ref: x.b\n\tx.b\n\t  ^\n\t  have: "b"\n\t  want (one of): ["a"]',
    ]);
  });
});

describe("OPA's own type checker cases (v1/ast/check_test.go) give exactly one type error", () => {
  const p = 'p := "foo"\n';
  it.each([
    // TestCheckMatchErrors
    ["null", "null = true"],
    ["boolean", "true = null"],
    ["number", "1 = null"],
    ["string", '"hello" = null'],
    ["array", "[1, 2, 3] = null"],
    ["array-nested", '[1, 2, 3] = [1, 2, "3"]'],
    ["array-nested-2", "[1, 2] = [1, 2, 3]"],
    ["array-dynamic", '[true | true] = [x | a = [1, "foo"]; x = a[_]]'],
    ["object", '{"a": 1, "b": 2} = null'],
    ["object-nested", '{"a": 1, "b": "2"} = {"a": 1, "b": 2}'],
    ["object-nested-2", '{"a": 1} = {"a": 1, "b": "2"}'],
    ["set", "{1, 2, 3} = null"],
    ["any", 'x = ["str", 1]; x[_] = null'],
    // TestCheckBuiltinErrors
    ["trivial", "plus(true, 1, x)"],
    ["refs", "x = [null]; plus(x[0], 1, y)"],
    ["array comprehensions", "sum([null | true], x)"],
    ["arrays-any", 'sum([1, 2, "3", 4], x)'],
    ["arrays-bad-input", 'contains([1, 2, 3], "x")'],
    ["objects-bad-input", 'sum({"a": 1, "b": 2}, x)'],
    ["sets-any", 'sum({1, 2, "3", 4}, x)'],
    ["virtual-ref", "plus(data.p.p, data.coffee, 0)"],
    // TestCheckRefErrUnsupported
    ["ref into a number", "arr = [[1, 2], [3, 4]]; arr[1][0].deadbeef"],
    // TestCheckRefErrInvalid
    ["bad leaf var", "x = 1; data.p.q[x]"],
  ])("%s", (_, query) => {
    const errors = errorsOf(`${p}q := {"foo": 1, "bar": 2}\nallow if { ${query} }`);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^p.rego:5: rego_type_error: /);
  });

  it("reports a reference into a scalar with a caret under what it cannot select from", () => {
    expect(errorsOf("allow if {\n\tarr = [[1, 2], [3, 4]]\n\tarr[1][0].deadbeef\n}")).toEqual([
      "p.rego:5: rego_type_error: undefined ref: arr[1][0].deadbeef\n\tarr[1][0].deadbeef\n\t^^^^^^^^^\n\thave: number",
    ]);
  });

  it("reports a key of the wrong type with the keys it could be", () => {
    expect(errorsOf('q := {"foo": 1, "bar": 2}\nallow if {\n\tx = 1\n\tdata.p.q[x]\n}')).toEqual([
      'p.rego:6: rego_type_error: undefined ref: data.p.q[x]\n\tdata.p.q[x]\n\t         ^\n\t         have (type): number\n\t         want (one of): ["bar" "foo"]',
    ]);
  });
});

describe("close relatives that OPA accepts still compile", () => {
  it.each([
    ["comparison takes any types", 'allow if {\n\tx := 1\n\tx == "a"\n}'],
    ["input and data are any", 'allow if {\n\tx := input.a\n\tupper(x) == "A"\n\tx + 1 > 2\n\tdata.d.n * 2 > 1\n}'],
    ["a union argument fits if one member fits", 'allow if {\n\tsome x in [1, "a"]\n\tstartswith(x, "a")\n}'],
    ["sets and arrays of strings for concat", 'allow if concat(",", {"a", "b"}) == concat(",", ["a", "b"])'],
    ["values of objects by key", 'allow if {\n\tx := {"a": 1, "b": "s"}\n\tx.a + 1 == 2\n\tupper(x.b) == "S"\n}'],
    ["dynamic keys", 'allow if {\n\tx := {k: 1 | some k in ["a"]}\n\tx.z == 1\n}'],
    ["object.get of any key", 'allow if object.get({"a": 1}, ["a", "b"], 0) == 0'],
    ["sprintf takes any values", 'allow if sprintf("%v %d", ["a", 1]) != ""'],
    ["destructuring a built-in's result", "allow if {\n\t[h, p, _] := io.jwt.decode(input.t)\n\th.alg == p.alg\n}"],
    ["time arrays", "allow if time.date(time.now_ns())[0] > 2000"],
    ["set arithmetic", "allow if count({1, 2} - {1}) == 1"],
    ["nested comprehension scopes", 'allow if {\n\tx := "s"\n\tys := [x | x := 1]\n\tcount(ys) == 1\n}'],
    ["functions' arguments", "f(x) := x + 1\nallow if f(1) == 2"],
    ["print takes anything", 'allow if print(1, "a", {}, input)'],
    ["wildcards", 'allow if {\n\t_ = 1\n\t_ = "a"\n}'],
    ["rule values of several types", 'p := 1 if input.a\np := "s" if input.b\nallow if upper(p) == "S"'],
    ["a rule's known keys", 'p := {"a": 1}\nallow if p.a + 1 == 2'],
    ["an object rule's dynamic keys", 'o[k] := 1 if some k in ["a"]\nallow if o.z == 1'],
    ["base documents beside rules", "n := 1\nallow if data.p.other.x == 1"],
    [
      "sets under variable keys (OPA's regression/virtual-cache key scope)",
      'obj.sub[x][x] contains x if some x in ["one"]\nobj[x][x] contains x if x := "w"\nallow if obj.sub[_].one[_] == obj.sub[_][_][_]',
    ],
    ["a function used as its body uses its argument", 'f(x) := upper(x)\nallow if f("a") == "A"'],
    ["every over a typed domain", 'allow if every x in ["a"] { startswith(x, "a") }'],
  ])("%s", (_, rules) => {
    expect(errorsOf(rules)).toEqual([]);
  });
});

describe("OPA's signatures", () => {
  it("are written in OPA's printed form, union members in its order", () => {
    for (const [name, text] of Object.entries(BUILTIN_SIGNATURES)) {
      expect(formatSignature(parseSignature(text)), name).toBe(text);
    }
  });

  it("cover the catalogue's built-ins (the rest are checked for their arity only)", () => {
    const unsigned = BUILTIN_NAMES.filter((name) => !builtinSignature(name));
    // Built-ins whose declaration (argument names) is not transcribed yet: typed any, never an error.
    const known = ["array.flatten", "strings.split_n", "uri.is_valid", "uri.parse"];
    expect(unsigned.filter((name) => !known.includes(name) && !name.startsWith("internal."))).toEqual([]);
  });
});

// ---- no false positives ----------------------------------------------------------------------------

/**
 * Errors of corpus cases that regorus evaluates but OPA refuses at compile time
 * (rego-conformance.test.ts lists the same cases as known failures).
 */
function opaRefusesToo(testCase: CorpusCase, error: string): boolean {
  const sources = (testCase.modules ?? []).join("\n");
  // regorus's idiom for an undefined operand, `y { false }`, is a boolean rule: OPA's type checker
  // refuses it where a built-in declares a number, string or collection.
  if (/\{\s*false\s*\}/.test(sources) && /invalid argument\(s\)\n\thave: \([^)]*boolean/.test(error)) return true;
  return EXPLAINED.get(testCase.note) !== undefined && error.includes(EXPLAINED.get(testCase.note) as string);
}

const EXPLAINED = new Map([
  // `rand.intn(10, y)`: OPA's seed is a string.
  ["undefined", "rand.intn: invalid argument(s)"],
  // `my_rule.nonexistent_field` where my_rule is {"existing": "value"}.
  ["undefined_field_on_existing_rule", "undefined ref: data.test.my_rule.nonexistent_field"],
  // get_name({"name": name}) called with {"name": …, "age": …}: the keys differ from the pattern's.
  ["object_destructuring_function_param", "data.test.get_name: invalid argument(s)"],
]);

interface CorpusCase {
  note: string;
  modules?: string[];
  error?: unknown;
  want_error?: unknown;
  want_error_code?: unknown;
  skip?: boolean;
}

const expectsError = (c: CorpusCase): boolean =>
  c.error !== undefined || c.want_error !== undefined || c.want_error_code !== undefined;

/** The type errors of modules that pass every earlier check (undefined when an earlier one refuses). */
function typeErrorsOf(modules: Module[]): string[] | undefined {
  try {
    return typeCheck(checkModules(modules)).map((e) => e.message);
  } catch {
    return undefined;
  }
}

describe("no policy OPA accepts is refused", () => {
  it("the corpus cases expected to evaluate type-check", () => {
    const cases = [
      ...corpusCases<CorpusCase>("../../third_party/rego-conformance/cases/**/*.yaml"),
      ...corpusCases<CorpusCase>("../../third_party/opa-conformance/cases/**/*.yaml"),
    ];
    let checked = 0;
    const refused: string[] = [];
    for (const testCase of cases.filter((c) => !expectsError(c) && !c.skip)) {
      const modules = caseModules(testCase);
      const errors = modules && typeErrorsOf(modules);
      if (!errors) continue;
      checked++;
      if (!errors.every((e) => opaRefusesToo(testCase, e))) refused.push(`${testCase.note}: ${errors.join("; ")}`);
    }
    expect(checked).toBeGreaterThan(400);
    expect(refused).toEqual([]);
  });

  it("the policies Mandate ships, and their tests, type-check", () => {
    const files = globSync(new URL("../../policies/**/*.rego", import.meta.url).pathname);
    const byFolder = Map.groupBy(files, (f) => dirname(f));
    expect(byFolder.size).toBeGreaterThan(1);
    for (const [folder, sources] of byFolder) {
      const modules = sources.map((file) => parseModule(readFileSync(file, "utf8"), { file }));
      expect(typeErrorsOf(modules), folder).toEqual([]);
    }
  });
});
