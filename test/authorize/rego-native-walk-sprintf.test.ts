// The runtime's exports for two built-ins the planner lowers itself: walk (rt_walk_pairs, OPA's
// topdown walk order) and sprintf's operands (rt_sprintf_args, OPA's ast.Value.String() text for
// composite values, as Go's fmt receives them).
import { describe, expect, it } from "vitest";
import { loadRuntime, Num } from "./rego-native-harness.ts";

const rt = loadRuntime();

describe("rt_walk_pairs", () => {
  it("yields the value first, then depth first in Rego order (array indexes, sorted keys, set elements as keys)", () => {
    expect(JSON.parse(rt.call("rt_walk_pairs", { b: [true, null], a: new Set(["y", "x"]) }))).toEqual([
      [[], { a: ["x", "y"], b: [true, null] }],
      [["a"], ["x", "y"]],
      [["a", "x"], "x"],
      [["a", "y"], "y"],
      [["b"], [true, null]],
      [["b", 0], true],
      [["b", 1], null],
    ]);
  });

  it("yields a scalar once, with the empty path", () => {
    expect(rt.call("rt_walk_pairs", "s")).toBe('[[[],"s"]]');
    expect(rt.call("rt_walk_pairs", [])).toBe("[[[],[]]]");
  });
});

describe("rt_sprintf_args", () => {
  const args = (...values: Parameters<typeof rt.call>[1][]) => JSON.parse(rt.call("rt_sprintf_args", values));

  it("passes strings as they are and numbers as their exact text", () => {
    expect(rt.call("rt_sprintf_args", ['a"b', new Num("12345678901234567890"), new Num("1.50e3")])).toBe(
      '[["s","a\\"b"],["n","12345678901234567890"],["n","1.50e3"]]',
    );
  });

  it("prints other values as OPA's ast String(): Go-quoted strings, `, ` and `: `, set() for the empty set", () => {
    expect(
      args(true, null, [1, "a"], new Set([2, 1]), new Set(), {}, [], { b: [2], a: 1, "": { "x\ny": "\t\u0001" } }),
    ).toEqual([
      ["s", "true"],
      ["s", "null"],
      ["s", '[1, "a"]'],
      ["s", "{1, 2}"],
      ["s", "set()"],
      ["s", "{}"],
      ["s", "[]"],
      ["s", '{"": {"x\\ny": "\\t\\x01"}, "a": 1, "b": [2]}'],
    ]);
  });

  it("quotes as strconv.Quote: \\a \\b \\f \\v, DEL as \\x7f, backslashes and quotes escaped", () => {
    expect(args(["\u0007\b\f\u000b\u007f\\\"'"])).toEqual([["s", '["\\a\\b\\f\\v\\x7f\\\\\\"\'"]']]);
  });

  it("refuses operands that are not an array with OPA's type error", () => {
    expect(() => rt.call("rt_sprintf_args", { a: 1 })).toThrow(
      "eval_type_error: sprintf: operand 2 must be array but got object",
    );
  });
});
