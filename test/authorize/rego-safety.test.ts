// Stage 4 of the Rego compiler on its own (safety.ts): body literals are put in an order where
// every variable is bound before it is read, and what can never be bound is refused as OPA
// refuses it — `var x is unsafe` at the variable, `var x referenced above` at the redeclaration.
import { describe, expect, it } from "vitest";
import type { Literal, Module } from "../../services/authorize/rego/ast.ts";
import { builtinArity } from "../../services/authorize/rego/builtins.ts";
import { RegoError } from "../../services/authorize/rego/lexer.ts";
import { parseModule } from "../../services/authorize/rego/parser.ts";
import {
  type BodyScope,
  checkDeclarations,
  orderForSafety,
  type SafetyContext,
} from "../../services/authorize/rego/safety.ts";
import { bodyVars } from "../../services/authorize/rego/vars.ts";

/** Names as the planner resolves them for one module: input, data, its rules and imports. */
function contextOf(module: Module): SafetyContext {
  const documents = new Set(["input", "data"]);
  for (const rule of module.rules) if (rule.head.ref.kind === "var") documents.add(rule.head.ref.name);
  for (const imp of module.imports) if (imp.alias) documents.add(imp.alias);
  return {
    isDocument: (name) => documents.has(name),
    arity: (call) => {
      const arity = builtinArity(call.name);
      return typeof arity === "number" ? arity : call.args.length;
    },
  };
}

/** A module whose rule `allow` has `lines` as its body, one literal per line, after `rules`. */
function ruleBody(lines: string[], rules: string[] = []) {
  const source = ["package p", "import rego.v1", ...rules, "allow if {", ...lines, "}"].join("\n");
  const module = parseModule(source, { file: "p.rego" });
  const rule = module.rules.at(-1);
  if (!rule) throw new Error("no rule");
  const body = rule.bodies[0] as Literal[];
  const textOf = (literal: Literal) => (source.split("\n")[literal.loc.row - 1] as string).trim();
  return { module, body, textOf };
}

/** The body's literals, as source lines, in the order the planner will run them. */
function order(lines: string[], options: { rules?: string[]; bound?: string[] } = {}): string[] {
  const { module, body, textOf } = ruleBody(lines, options.rules);
  const scope: BodyScope = { bound: options.bound ?? [], declared: [], bodyVars: bodyVars(body) };
  return orderForSafety(body, scope, contextOf(module)).map(textOf);
}

/** The error ordering refuses the body with, as `row:col: code: message`. */
function refusal(lines: string[], options: { rules?: string[] } = {}): string {
  try {
    order(lines, options);
  } catch (error) {
    if (!(error instanceof RegoError)) throw error;
    return `${error.loc?.row}:${error.loc?.col}: ${error.code}: ${error.message.replace(/^.*?error: /, "")}`;
  }
  throw new Error("expected the body to be refused");
}

describe("ordering for safety", () => {
  it("keeps a body that is already safe in its written order", () => {
    const lines = ["y := input.a", "y > 1", 'z := concat(",", [y])'];
    expect(order(lines)).toEqual(lines);
  });

  it("moves a literal after the ones that bind what it reads (x = y; y = 1)", () => {
    expect(order(["x = y", "y = 1"])).toEqual(["y = 1", "x = y"]);
    expect(order(["a = b", "b = c", "c = input.n"])).toEqual(["c = input.n", "b = c", "a = b"]);
    expect(order(["y > 1", "y = input.n"])).toEqual(["y = input.n", "y > 1"]);
  });

  it("binds one side of a unification from the other, item by item for arrays", () => {
    expect(order(["[a, b] = [c, 1]", "c = 2"])).toEqual(["c = 2", "[a, b] = [c, 1]"]);
    // a from 1, then b from a: the pair is ready as a whole.
    expect(order(["[a, b] = [1, a]"])).toEqual(["[a, b] = [1, a]"]);
  });

  it("treats a call's extra argument as an output (count(xs, n))", () => {
    expect(order(["n > 0", "count(input.a, n)"])).toEqual(["count(input.a, n)", "n > 0"]);
    expect(order(["count(xs, n)", "xs = [1]"])).toEqual(["xs = [1]", "count(xs, n)"]);
  });

  it("reads variables bound before the body (function arguments, outer scopes) as bound", () => {
    expect(order(["y > 1"], { bound: ["y"] })).toEqual(["y > 1"]);
  });

  it("runs a negation once the body's variables it mentions are bound", () => {
    expect(order(["not input.a[y]", "y = 1"])).toEqual(["y = 1", "not input.a[y]"]);
    expect(order(["not y = 1", "y = 2"])).toEqual(["y = 2", "not y = 1"]);
  });

  it("runs a comprehension after the literals binding the variables it captures", () => {
    expect(order(["z = [v | some v in input.a; v > w]", "w = 1"])).toEqual([
      "w = 1",
      "z = [v | some v in input.a; v > w]",
    ]);
    // Variables the comprehension declares are its own: nothing outside needs to bind them.
    expect(order(["z = [v | some v in input.a]", "count(z) > 0"])).toEqual([
      "z = [v | some v in input.a]",
      "count(z) > 0",
    ]);
  });

  it("runs `every` after its domain and the body variables its body reads", () => {
    expect(order(["every v in y { v > 0 }", "y = [1]"])).toEqual(["y = [1]", "every v in y { v > 0 }"]);
    expect(order(["every v in input.a { v > w }", "w = 1"])).toEqual(["w = 1", "every v in input.a { v > w }"]);
  });

  it("runs `some … in` after its collection, and binds its key and value", () => {
    expect(order(["some v in y", "y = [1, 2]"])).toEqual(["y = [1, 2]", "some v in y"]);
    expect(order(["k == 0", "some k, v in input.a"])).toEqual(["some k, v in input.a", "k == 0"]);
  });

  it("evaluates `with` values first", () => {
    expect(order(["input.a = 1 with input as z", 'z = {"a": 1}'])).toEqual([
      'z = {"a": 1}',
      "input.a = 1 with input as z",
    ]);
  });

  it("reads a rule's name as its document, unless a declaration shadows it", () => {
    expect(order(["y > 0"], { rules: ["y := 1"] })).toEqual(["y > 0"]);
    expect(refusal(["some y", "y > 0"], { rules: ["y := 1"] })).toBe("6:1: rego_unsafe_var_error: var y is unsafe");
  });
});

describe("unsafe variables are refused at the variable", () => {
  it("a variable that nothing binds", () => {
    expect(refusal(["y > 1"])).toBe("4:1: rego_unsafe_var_error: var y is unsafe");
    expect(refusal(["x := y + 1"])).toBe("4:6: rego_unsafe_var_error: var y is unsafe");
  });

  it("a unification of two unbound sides", () => {
    expect(refusal(["a = b"])).toBe("4:1: rego_unsafe_var_error: var a is unsafe");
    expect(refusal(["[a, b] = [c, d]"])).toBe("4:2: rego_unsafe_var_error: var a is unsafe");
  });

  it("a negation never binds: its variables must be bound elsewhere", () => {
    expect(refusal(["not input.a[y]"])).toBe("4:13: rego_unsafe_var_error: var y is unsafe");
    expect(refusal(["some y", "not input.a[y]"])).toBe("5:13: rego_unsafe_var_error: var y is unsafe");
    expect(refusal(["not input.a[_]"])).toBe("4:13: rego_unsafe_var_error: var _ is unsafe");
  });

  it("`not` before a call: its arguments, an extra output argument included, must be bound elsewhere (OPA)", () => {
    expect(refusal(['not startswith(y, "a")'])).toBe("4:16: rego_unsafe_var_error: var y is unsafe");
    expect(refusal(["not count([1], n)"])).toBe("4:16: rego_unsafe_var_error: var n is unsafe");
    expect(refusal(["not f(z)"], { rules: ["f(a) if a > 1"] })).toBe("5:7: rego_unsafe_var_error: var z is unsafe");
    expect(order(['not startswith(y, "a")', 'y = "b"'])).toEqual(['y = "b"', 'not startswith(y, "a")']);
    expect(order(["not count([1], 2)"])).toEqual(["not count([1], 2)"]);
  });

  it("a comprehension capturing a body variable that is never bound", () => {
    expect(refusal(["z := [v | some v in input.a; v > w]", "w > 0"])).toBe(
      "4:34: rego_unsafe_var_error: var w is unsafe",
    );
  });

  it("`every` over an unbound domain, or reading an unbound body variable", () => {
    expect(refusal(["every v in q { v > 0 }"])).toBe("4:12: rego_unsafe_var_error: var q is unsafe");
    expect(refusal(["every v in input.a { v > w }", "w > 0"])).toBe("4:26: rego_unsafe_var_error: var w is unsafe");
  });

  it("`some … in` over an unbound collection", () => {
    expect(refusal(["some v in q"])).toBe("4:11: rego_unsafe_var_error: var q is unsafe");
  });

  it("a call's inputs (its output argument aside)", () => {
    expect(refusal(["count(q, n)"])).toBe("4:7: rego_unsafe_var_error: var q is unsafe");
  });
});

describe("declarations", () => {
  const declarationError = (lines: string[], args: string[] = []): string | undefined => {
    try {
      checkDeclarations(ruleBody(lines).body, args);
      return undefined;
    } catch (error) {
      if (!(error instanceof RegoError)) throw error;
      return `${error.loc?.row}:${error.loc?.col}: ${error.message.replace(/^.*?error: /, "")}`;
    }
  };

  it("refuses declaring a variable an earlier literal or an argument already uses", () => {
    expect(declarationError(["y := 1", "y := 2"])).toBe("5:1: var y referenced above");
    expect(declarationError(["y > 1", "some y"])).toBe("5:6: var y referenced above");
    expect(declarationError(["input.a[y]", "some y in input.b"])).toBe("5:6: var y referenced above");
    expect(declarationError(["a := 1"], ["a"])).toBe("4:1: var a referenced above");
  });

  it("accepts fresh declarations and repeated wildcards", () => {
    expect(declarationError(["y := 1", "z := y"])).toBeUndefined();
    expect(declarationError(["_ := 1", "_ := 2"])).toBeUndefined();
    expect(declarationError(["some y", "y = 1"])).toBeUndefined();
  });
});
