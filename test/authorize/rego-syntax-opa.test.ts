// Rego as OPA's parser (v1/ast/parser.go, parser_ext.go, rego_v1.go and its scanner) reads it:
// each case is a construct whose parse (or refusal, with OPA's rego_parse_error message) was looked
// up in OPA's source and parser_test.go, then a few end to end through compileRego and opa-wasm
// with the value OPA computes.
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import { describe, expect, it } from "vitest";
import type { Module, Rule } from "../../services/authorize/rego/ast.ts";
import { compileRego } from "../../services/authorize/rego/compile.ts";
import { hostBuiltins } from "../../services/authorize/rego/host-builtins.ts";
import { RegoError } from "../../services/authorize/rego/lexer.ts";
import { parseModule, parseQuery } from "../../services/authorize/rego/parser.ts";

const strip = (value: unknown): unknown =>
  JSON.parse(JSON.stringify(value, (key, v) => (key === "loc" || key === "nameRef" ? undefined : v)));

/** The one literal of a query, without locations. */
const literal = (query: string): unknown => {
  const body = parseQuery(query);
  expect(body).toHaveLength(1);
  return strip(body[0]);
};

/** The right-hand side of `x := <term>`. */
const term = (source: string): unknown => (literal(`x := ${source}`) as { right: unknown }).right;

const v = (name: string) => ({ kind: "var", name });
const n = (text: string) => ({ kind: "number", text });
const s = (value: string) => ({ kind: "string", value });

function rules(source: string, v0 = false): Rule[] {
  return (strip(parseModule(source, { v0 })) as Module).rules;
}

/** The rego_parse_error a source is refused with, as `row:col: message`. */
function refusal(source: string, options: { v0?: boolean; query?: boolean } = {}): string {
  try {
    if (options.query) parseQuery(source);
    else parseModule(source, { v0: options.v0 });
  } catch (error) {
    if (!(error instanceof RegoError)) throw error;
    return `${error.loc?.row}:${error.loc?.col}: ${error.message.replace(/^.*?rego_[a-z_]+_error: /, "")}`;
  }
  throw new Error(`expected ${JSON.stringify(source)} to be refused`);
}

describe("membership and `in` (OPA's parseTermIn, keyVal only where a whole expression is read)", () => {
  it("separates items with commas in arrays, sets and call arguments", () => {
    expect(term("[1, 2 in xs]")).toEqual({
      kind: "array",
      items: [n("1"), { kind: "membership", value: n("2"), collection: v("xs") }],
    });
    expect(term("{1 in s, 2}")).toMatchObject({ kind: "set", items: [{ kind: "membership" }, n("2")] });
    expect(term("f(a, b in c)")).toMatchObject({
      kind: "call",
      args: [v("a"), { kind: "membership", value: v("b"), collection: v("c") }],
    });
    expect(term("f(x in xs)")).toMatchObject({ args: [{ kind: "membership" }] });
  });

  it("reads k, v in xs as key/value membership in literals, := right-hand sides and parentheses", () => {
    expect(literal("a, b in c")).toMatchObject({ expr: { kind: "membership", key: v("a"), value: v("b") } });
    expect(term("a, b in c")).toMatchObject({ kind: "membership", key: v("a"), value: v("b"), collection: v("c") });
    expect(term("(a, b in c)")).toMatchObject({ kind: "membership", key: v("a") });
    expect(term("xs[a, b in c]")).toMatchObject({ kind: "ref", path: [{ kind: "membership", key: v("a") }] });
  });

  it("gives `in` the lowest precedence and reads `not` and `with` around it", () => {
    expect(literal("1 in [1] == true")).toMatchObject({
      expr: { kind: "membership", value: n("1"), collection: { kind: "binary", op: "==" } },
    });
    expect(literal("not x in xs")).toMatchObject({ kind: "expr", negated: true, expr: { kind: "membership" } });
    expect(literal("x in xs with input as {}")).toMatchObject({ expr: { kind: "membership" }, with: [{}] });
  });

  it("refuses a comma after a membership (`a in b, c in d` is not key/value membership)", () => {
    expect(refusal("a in b, c in d", { query: true })).toBe("1:7: unexpected , token: expected \\n or ;");
  });
});

describe("newlines (whitespace, except where they end a body literal)", () => {
  it("continues a literal over an operator on the next line, as OPA's parser does", () => {
    const body = parseQuery("x := 1\n+ 2\ny := [1,\n2]");
    expect(body).toHaveLength(2);
    expect(strip(body[0])).toMatchObject({ right: { kind: "binary", op: "+" } });
    expect(strip(parseQuery("x\nwith input as 1"))).toMatchObject([{ with: [{}] }]);
  });

  it("does not extend a term with `[`, `(` or `.` after whitespace", () => {
    expect(parseQuery("a\n[1]")).toHaveLength(2);
    expect(refusal("package p\nallow if {\n  x := 1 y\n}")).toBe(
      "3:10: unexpected identifier token: expected \\n or ; or }",
    );
  });
});

describe("comprehensions and `|` (OPA's parseArray and parseSetOrObject)", () => {
  it("reads a comprehension only when its head is one term; otherwise `|` is set union", () => {
    expect(term("[1 + 2 | 3]")).toMatchObject({ kind: "array", items: [{ kind: "binary", op: "|" }] });
    expect(term("{a: b + c | d}")).toMatchObject({
      kind: "object",
      entries: [[v("a"), { kind: "binary", op: "|", left: { op: "+" } }]],
    });
    expect(term("[x | y, 5]")).toMatchObject({ kind: "array", items: [{ kind: "binary", op: "|" }, n("5")] });
    expect(term("[x | y; 5]")).toMatchObject({ kind: "arraycomp", term: v("x") });
    expect(term("{k: v | some k, v in o}")).toMatchObject({ kind: "objectcomp", key: v("k") });
    expect(term("[(x + 1) | x := 1]")).toMatchObject({ kind: "arraycomp" });
  });

  it("refuses an operator in a comprehension's head, as OPA does (opa#4215)", () => {
    expect(refusal("x := [v * 2 | v := 1]", { query: true })).toBe(
      '1:17: unexpected assign token: expected "," or "]"',
    );
  });

  it("skips one leading comma, then reads no comprehension", () => {
    expect(term("[, 1 | 1]")).toMatchObject({ kind: "array", items: [{ kind: "binary", op: "|" }] });
    expect(term('{, 1 | 1: "bar"}')).toMatchObject({ kind: "object", entries: [[{ kind: "binary" }, s("bar")]] });
    expect(refusal("x := [a,,b]", { query: true })).toBe("1:9: unexpected , token");
  });
});

describe("rules as OPA reads them", () => {
  it("reads `p[x] if` as a single-value rule and v0's `p[x] { }` as a partial set", () => {
    const [object] = rules("package p\nimport future.keywords.if\np[x] if { x := 1 }", true);
    expect(object?.head).toMatchObject({ ref: { kind: "ref", path: [v("x")] } });
    expect(object?.head.contains).toBeUndefined();
    const [set] = rules("package p\np[x] { x := 1 }", true);
    expect(set?.head).toMatchObject({ ref: v("p"), contains: v("x") });
    // Only a two-term ref is a v0 partial set; `p.q[x] { }` is p.q[x] = true.
    const [deep] = rules("package p\np.q[x] { x := 1 }", true);
    expect(deep?.head).toMatchObject({ ref: { path: [s("q"), v("x")] } });
    expect(deep?.head.contains).toBeUndefined();
  });

  it("wants a newline between statements (OPA would read v0's `p := x if {` as two rules)", () => {
    expect(refusal("package p\np := x if { x := 1 }", { v0: true })).toBe(
      "2:8: unexpected identifier token: expected a newline before the next statement (hint: `import future.keywords.if` to use it as a keyword)",
    );
    expect(refusal("package p\np := 1 q := 2")).toBe(
      "2:8: unexpected identifier token: expected a newline before the next statement",
    );
    const [rule] = rules("package p\np := x if { x := 1 }", false);
    expect(rule?.bodies[0]).toHaveLength(1);
    expect(rules("package p\nimport future.keywords.if\np := x if { x := 1 }", true)).toHaveLength(1);
    expect(parseModule("package p\np := 1", { v0: true, allFutureKeywords: true }).rules).toHaveLength(1);
  });

  it("keeps `contains` and `if` plain names in v0 without the import", () => {
    const [rule] = rules('package p\nq { contains("abc", "b") }', true);
    expect(rule?.bodies[0]?.[0]).toMatchObject({ expr: { kind: "call", name: "contains" } });
    expect(refusal("package p\nq if { true }", { v0: true })).toBe("2:1: var cannot be used for rule name");
    const keywords = rules(
      'package p\nimport future.keywords\nf(x) := "a" if x > 1 else := "b"\ns contains x if some x in [1]',
      true,
    );
    expect(keywords.map((r) => [r.elses.length, r.head.contains ? "set" : "value"])).toEqual([
      [1, "value"],
      [0, "set"],
    ]);
  });

  it("reads bodyless statements as OPA's rules, with its Rego v1 checks", () => {
    expect(rules("package p\na.b.c", true)[0]?.head).toMatchObject({ ref: { path: [s("b"), s("c")] } });
    expect(rules("package p\na.b", true)[0]?.head).toMatchObject({ ref: v("a"), contains: s("b") });
    expect(rules("package p\nf(x)")[0]?.head).toMatchObject({ ref: v("f"), args: [v("x")] });
    expect(refusal("package p\na.b.c")).toBe("2:1: rule must have value assignment and/or body declaration");
    expect(refusal("package p\na.b")).toBe("2:1: `contains` keyword is required for partial set rules");
    expect(refusal("package p\ncount(x)")).toBe("2:1: rule name conflicts with built-in function");
    expect(refusal("package p\np := 1; q := 2")).toBe("2:1: multiple expressions cannot be used for rule head");
    expect(refusal("package p\np { true }")).toBe("2:1: `if` keyword is required before rule body");
    expect(refusal("package p\nf(x) { true }")).toBe("2:1: `if` keyword is required before function body");
  });

  // OPA's TestRegoV1Import: v0 modules importing rego.v1 get the v1 checks.
  it.each([
    ["p contains 1 if 1 == 1", ""],
    ["p if {\n  input.x == 1\n} else := 2 if input.x == 3\nelse := 4", ""],
    ['p contains "q"', ""],
    ['p.q contains "r"', ""],
    ["p[x] if { x = input.x }", ""],
    ["default allow := false", ""],
    ["f(x) := x", ""],
    ["f(x) if {\n  x == 1\n} else := 42", ""],
    ["p if { input.x == 1 } { input.x == 2 }", ""],
    ["p {\n  input.x == 1\n}", "`if` keyword is required before rule body"],
    ["p if { input.x == 1 } else { input.x == 2 }", "`if` keyword is required before rule body"],
    ["f(x) := x if { x == 1 } else := 42 { x == 2 }", "`if` keyword is required before function body"],
    ["p.q", "`contains` keyword is required for partial set rules"],
    ["p[input.x]", "`contains` keyword is required for partial set rules"],
    ["p.q.r", "rule must have value assignment and/or body declaration"],
    ["p.q[input.x]", "rule must have value assignment and/or body declaration"],
    ["p[x] { x = input.x }", "`if` keyword is required before rule body"],
    ["p if { input.x == 1 } if { input.x == 2 }", "unexpected if keyword"],
  ])("import rego.v1: %j", (rule, error) => {
    const source = `package test\nimport rego.v1\n${rule}`;
    if (error) expect(refusal(source, { v0: true })).toContain(error);
    else expect(() => parseModule(source, { v0: true })).not.toThrow();
  });

  it("reads `|` in collections as OPA's TestBitwiseOrVsComprehension", () => {
    expect(term("[x|y,]")).toMatchObject({ kind: "array", items: [{ kind: "binary", op: "|" }] });
    expect(term("{z,x|y,a}")).toMatchObject({ kind: "set", items: [v("z"), { op: "|" }, v("a")] });
    expect(term("{x:y|z,a:b}")).toMatchObject({
      kind: "object",
      entries: [
        [v("x"), { op: "|" }],
        [v("a"), v("b")],
      ],
    });
    expect(term("{ 1+2: 3 | 4}")).toMatchObject({ kind: "objectcomp", key: { op: "+" }, value: n("3") });
    expect(term("{ a | b }")).toMatchObject({ kind: "setcomp", term: v("a") });
  });

  it("reads an `if` followed by a non-set term as a one-literal body", () => {
    const [rule] = rules('package p\np if {"a": 1}');
    expect(rule?.bodies[0]).toMatchObject([{ kind: "expr", expr: { kind: "object" } }]);
    expect(rules("package p\np if { true }")[0]?.bodies[0]).toMatchObject([{ expr: { kind: "boolean" } }]);
  });

  it("refuses else where OPA does, and default values that are not constant", () => {
    expect(refusal('package p\np[x] := 1 if { x := "a" } else := 2')).toBe(
      "2:27: else keyword cannot be used on rules with variables in head",
    );
    expect(refusal("package p\ndefault p := input.x")).toBe("2:1: illegal default rule (value cannot contain ref)");
    expect(refusal("package p\ndefault a[0]")).toBe("2:1: illegal default rule (must have a value)");
    expect(rules("package p\ndefault a")[0]?.head.value).toEqual({ kind: "boolean", value: true });
    expect(refusal("package p\ndefault f(x, x) := 1")).toBe(
      "2:1: illegal default rule (arguments cannot be repeated x)",
    );
  });

  it("accepts imports after rules and refuses import paths ending in a keyword", () => {
    expect(parseModule("package p\nx := 1\nimport data.y").imports).toHaveLength(1);
    expect(refusal("package p\nimport data.foo.in")).toBe(
      "2:17: unexpected import path, must not end with a keyword, got: in (hint: import a different path or use an alias)",
    );
    expect(refusal("package p\nas := 1")).toBe("2:1: unexpected as keyword");
  });
});

describe("some, every and with", () => {
  it("requires variables in every and refuses with on some … in and every (not planned)", () => {
    expect(refusal("every [a] in xs { true }", { query: true })).toBe(
      "1:17: unexpected { token: expected value to be a variable",
    );
    expect(refusal("every x in xs { true } with input as 1", { query: true })).toMatch(
      /^1:24: unsupported: `with` on `every`/,
    );
    expect(refusal("some x in xs with input as 1", { query: true })).toMatch(
      /^1:14: unsupported: `with` on `some … in`/,
    );
    // A refusal inside a comprehension is not lost to the comprehension-or-union backtracking.
    expect(refusal('x := {"a": [y | some y in [1] with input as 2]}', { query: true })).toMatch(
      /^1:31: unsupported: `with` on `some … in`/,
    );
    expect(refusal("some x == y", { query: true })).toBe(
      "1:12: unexpected eof token: expected `x in xs` or `x, y in xs` expression",
    );
  });
});

describe("scalars as OPA's scanner and parseNumber read them", () => {
  it("reads .5 and -.5 as numbers and refuses malformed ones", () => {
    expect(term(".5")).toEqual(n("0.5"));
    expect(term("-.5")).toEqual(n("-0.5"));
    expect(term("- 1")).toEqual(n("-1"));
    expect(refusal("x := 01", { query: true })).toBe(
      "1:6: unexpected number token: expected number without leading zero",
    );
    expect(refusal("x := 1.", { query: true })).toBe("1:8: expected fraction");
    expect(refusal("x := 1e", { query: true })).toBe("1:8: expected exponent");
    expect(refusal("x := 6abc", { query: true })).toBe("1:7: illegal number format");
    expect(refusal("x := -y", { query: true })).toBe("1:7: unexpected identifier token: expected number");
    expect(term("1e-400")).toEqual(n("1e-400"));
  });

  it("decodes escapes as Go's JSON decoder and refuses bad ones", () => {
    expect(term('"\\u00e9"')).toEqual(s("é"));
    expect(term('"\\ud83d\\ude00"')).toEqual(s("😀"));
    expect(term('"\\ud83d"')).toEqual(s("\uFFFD"));
    expect(refusal('x := "\\q"', { query: true })).toBe("1:8: illegal escape sequence");
    expect(refusal('x := "\\u12"', { query: true })).toBe('1:6: illegal string literal: "\\u12"');
    expect(refusal('x := "a\tb\\n"', { query: true })).toBe('1:6: illegal string literal: "a\tb\\n"');
    expect(refusal('x := $"a"', { query: true })).toMatch(/^1:6: template strings .* not supported/);
    expect(refusal("x := \u0000", { query: true })).toBe("1:6: illegal null character");
  });

  it("refuses refs on scalars and on parenthesised refs, as OPA's parseRef", () => {
    expect(refusal('x := "foo"[0]', { query: true })).toBe("1:6: illegal ref (head cannot be string)");
    expect(refusal("x := (input.x)[0]", { query: true })).toBe("1:7: illegal ref (head cannot be ref)");
    expect(term("(y)[0]")).toMatchObject({ kind: "ref", head: v("y"), path: [n("0")] });
  });

  it("refuses brackets nested too deeply with a parse error, not a stack overflow", () => {
    expect(refusal(`x := ${"[".repeat(5000)}`, { query: true })).toMatch(
      /^1:\d+: max parsing recursion depth exceeded/,
    );
    expect(term(`${"[".repeat(100)}1${"]".repeat(100)}`)).toMatchObject({ kind: "array" });
  });

  it("counts columns in characters, after a byte-order mark and astral characters", () => {
    expect(refusal('\uFEFFpackage p\nx := "😀" @')).toBe("2:10: illegal token");
  });
});

async function evaluate(source: string): Promise<unknown> {
  const { wasm } = compileRego({ modules: { "p.rego": source }, entrypoints: ["p/x"] });
  const policy = await loadPolicy(wasm, undefined, hostBuiltins);
  const rows = policy.evaluate({}, "p/x") as Array<{ result: unknown }>;
  return rows.length === 0 ? "<undefined>" : rows[0]?.result;
}

describe("end to end, with OPA's results", () => {
  it.each<[string, string, unknown]>([
    ["membership inside an array", "x := [1, 2 in {2}]", [1, true]],
    ["key/value membership as a value", 'x := "a", 1 in {"a": 1}', true],
    ["an operator on the next line continues the literal", "x if {\n  y := 1\n  + 2\n  y == 3\n}", true],
    ["set union when the head is not one term", "x := [{1} - {3} | {2}]", [[1, 2]]],
    ["a comprehension when the object value is one term", 'x := {"a": {1} | {2}}', { a: [1] }],
    ["an object comprehension as the rule value", 'x := {k: v | some k, v in {"a": 1}}', { a: 1 }],
    ["an object literal as the one-literal body", 'x if {"a": 1}', true],
    [".5 as a number", "x := .5 + 1", 1.5],
    ["a surrogate pair escape", 'x := "\\ud83d\\ude00"', "😀"],
  ])("%s", async (_name, rule, expected) => {
    expect(await evaluate(`package p\n${rule}`)).toEqual(expected);
  });

  it("reads v0's p[x] if (with the if keyword imported) as an object rule", async () => {
    const { wasm } = compileRego({
      modules: { "p.rego": 'package p\nimport future.keywords\nx[k] if { some k in ["a"] }' },
      entrypoints: ["p/x"],
      v0: true,
    });
    const policy = await loadPolicy(wasm, undefined, hostBuiltins);
    expect(policy.evaluate({}, "p/x")).toEqual([{ result: { a: true } }]);
  });
});
