// Stages 1-2 of the Rego compiler (lexer and parser): the shapes of the constructs authorization
// policies use, OPA-style errors with positions, and the whole conformance corpus parsing without
// a single crash (every module parses, in v1 or in v0 where it is written in v0 syntax, or is
// refused with a rego_parse_error).
import { globSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { RegoError, tokenize } from "../../services/authorize/rego/lexer.ts";
import { parseModule, parseQuery } from "../../services/authorize/rego/parser.ts";

const strip = (value: unknown): unknown =>
  JSON.parse(JSON.stringify(value, (key, v) => (key === "loc" ? undefined : v)));

describe("lexer", () => {
  it("tokenizes strings with escapes, raw strings, numbers and punctuation with positions", () => {
    const tokens = tokenize('x := "a\\n\\u0041" # comment\ny = `raw\\n` + -1.5e3');
    expect(tokens.map((t) => [t.kind, t.text])).toEqual([
      ["ident", "x"],
      ["punct", ":="],
      ["string", "a\nA"],
      ["newline", "\n"],
      ["ident", "y"],
      ["punct", "="],
      ["rawstring", "raw\\n"],
      ["punct", "+"],
      ["punct", "-"],
      ["number", "1.5e3"],
      ["eof", ""],
    ]);
    expect(tokens[4]?.loc).toEqual({ file: "policy.rego", row: 2, col: 1 });
  });

  it.each([
    ['x := "open', /non-terminated string/],
    ["x := 1.", /expected fraction/],
    ['x := "\\q"', /illegal escape sequence/],
    ["x := @", /illegal token/],
  ])("refuses %s with a positioned rego_parse_error", (source, message) => {
    expect(() => tokenize(source, "p.rego")).toThrow(message);
    expect(() => tokenize(source, "p.rego")).toThrow(/^p\.rego:1: rego_parse_error: /);
  });
});

describe("parser", () => {
  it("reads a v1 policy: package, imports, default, complete, partial set, partial object, function, else", () => {
    const module = parseModule(`package authz.v1

import rego.v1
import data.lib.roles as r

default allow := false

allow if {
  some role in input.roles
  r.admin[role]
  not input.blocked
}

denied contains msg if {
  input.amount > 100
  msg := sprintf("too much: %d", [input.amount])
}

limits[name] := n if some name, n in data.limits

double(x) := y if y := x * 2

tier := "gold" if input.points >= 1000
else := "silver" if input.points >= 100
else := "bronze"
`);
    expect(module.package).toEqual(["authz", "v1"]);
    expect(module.imports.map((i) => i.alias)).toEqual([undefined, "r"]);
    expect(
      module.rules.map((r) => [
        r.default,
        r.head.args?.length ?? null,
        r.head.contains ? "set" : "value",
        r.elses.length,
      ]),
    ).toEqual([
      [true, null, "value", 0],
      [false, null, "value", 0],
      [false, null, "set", 0],
      [false, null, "value", 0],
      [false, 1, "value", 0],
      [false, null, "value", 2],
    ]);
    const allow = module.rules[1];
    expect(strip(allow?.bodies[0]?.[0])).toMatchObject({
      kind: "somein",
      value: { kind: "var", name: "role" },
    });
    expect(strip(allow?.bodies[0]?.[2])).toMatchObject({ kind: "expr", negated: true });
    const limits = module.rules[3];
    expect(strip(limits?.head.ref)).toEqual({
      kind: "ref",
      head: { kind: "var", name: "limits" },
      path: [{ kind: "var", name: "name" }],
    });
  });

  it("follows OPA's operator precedence: in < relations < | < & < + - < * / %", () => {
    const [literal] = parseQuery("1 + 2 * 3 == 7");
    expect(strip(literal)).toMatchObject({
      kind: "expr",
      expr: { kind: "binary", op: "==", left: { kind: "binary", op: "+", right: { kind: "binary", op: "*" } } },
    });
    const [membership] = parseQuery("x | y in z");
    expect(strip(membership)).toMatchObject({ expr: { kind: "membership", value: { kind: "binary", op: "|" } } });
  });

  it("tells comprehensions, sets and objects apart", () => {
    const kinds = (q: string) => (strip(parseQuery(q)[0]) as { right: { kind: string } }).right.kind;
    expect(kinds("a := [x | x := input.xs[_]]")).toBe("arraycomp");
    expect(kinds("a := {x | x := input.xs[_]}")).toBe("setcomp");
    expect(kinds("a := {k: v | v := input.o[k]}")).toBe("objectcomp");
    expect(kinds("a := {1, 2}")).toBe("set");
    expect(kinds('a := {"k": 1}')).toBe("object");
    expect(kinds("a := {}")).toBe("object");
    expect(kinds("a := set()")).toBe("set");
  });

  it("parses with, every, calls on dotted names and refs with brackets", () => {
    const [withLiteral] = parseQuery("allow with input as {} with data.x as 1");
    expect((withLiteral as { with: unknown[] }).with).toHaveLength(2);
    const [every] = parseQuery("every k, v in input.o { v > 0 }");
    expect(strip(every)).toMatchObject({ kind: "every", key: { name: "k" }, value: { name: "v" } });
    const [call] = parseQuery('io.jwt.decode(input.token)[1].sub == "x"');
    expect(strip(call)).toMatchObject({
      expr: { left: { kind: "ref", head: { kind: "call", name: "io.jwt.decode" } } },
    });
  });

  it("reads v0 syntax only when asked, as opa --v0-compatible does", () => {
    const v0 = "package p\n\nallow { input.x }\ns[x] { x := input.xs[_] }\nf(x) = y { y := x }";
    expect(() => parseModule(v0)).toThrow(/`if` keyword is required/);
    const module = parseModule(v0, { v0: true });
    expect(module.rules.map((r) => (r.head.contains ? "set" : "value"))).toEqual(["value", "set", "value"]);
    // In v0 the future keywords are plain names unless imported.
    expect(() => parseModule("package p\ncontains := 1", { v0: true })).not.toThrow();
    // A bodyless `contains := 1` is a rule named contains, even with the keyword imported (as OPA).
    expect(() => parseModule("package p\nimport future.keywords.contains\ncontains := 1", { v0: true })).not.toThrow();
    expect(() => parseModule("package p\ncontains := 1")).toThrow(/contains keyword cannot be used for rule name/);
  });

  it.each([
    ["package p\nallow if {", /found empty body|expected/],
    ["package p\nallow if { x := }", /unexpected } token/],
    ["allow := 1", /package expected/],
    ["package p\nimport foo.bar", /unexpected import path, must begin with one of/],
    ["package p\nx := 1\npackage q", /unexpected package/],
  ])("refuses %j with a positioned error", (source, message) => {
    const error = (() => {
      try {
        parseModule(source);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(RegoError);
    expect((error as RegoError).message).toMatch(message);
    expect((error as RegoError).loc?.row).toBeGreaterThan(0);
  });
});

function corpusModules(): string[] {
  const files = globSync(new URL("../../third_party/rego-conformance/cases/**/*.yaml", import.meta.url).pathname);
  return files.flatMap((file) => {
    const doc = parse(readFileSync(file, "utf8")) as { cases?: Array<{ modules?: string[] }> };
    return (doc.cases ?? []).flatMap((testCase) => testCase.modules ?? []);
  });
}

/** Parses as v1, else as v0: undefined if either reads it, else the error v0 parsing threw. */
function parseFailure(source: string): unknown {
  try {
    parseModule(source);
    return undefined;
  } catch {
    try {
      parseModule(source, { v0: true });
      return undefined;
    } catch (error) {
      return error;
    }
  }
}

describe("the conformance corpus", () => {
  it("parses every module (v1, or v0 where written in v0) or refuses it cleanly; never crashes", () => {
    let parsed = 0;
    let refused = 0;
    for (const source of corpusModules()) {
      const error = parseFailure(source);
      if (error === undefined) {
        parsed++;
      } else {
        expect(error).toBeInstanceOf(RegoError);
        refused++;
      }
    }
    expect(parsed + refused).toBeGreaterThan(700);
    // Most refusals are cases that expect an error; a few are regorus's `[x | y, 5]` array/comprehension ambiguity.
    expect(parsed / (parsed + refused)).toBeGreaterThan(0.95);
  });
});
