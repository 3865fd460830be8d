// The runtime's set-aware document built-ins, as OPA 1.x answers them: json.filter, json.remove,
// json.patch (RFC 6902 through OPA's edit tree: a patch that cannot apply is undefined),
// object.subset and graph.reachable / graph.reachable_paths (cases of OPA's own test suite).
import { describe, expect, it } from "vitest";
import { loadRuntime, Num, type RegoArg } from "./rego-native-harness.ts";

const rt = loadRuntime();
const call = (name: string, ...args: RegoArg[]) => {
  const out = rt.call(name, ...args);
  return out === "undefined" ? undefined : JSON.parse(out);
};
describe("json.filter and json.remove", () => {
  it("keep or drop what JSON pointers or segment arrays name, array elements by index, set elements by value", () => {
    const doc = { a: { b: 1, c: 2 }, d: [{ x: 1, y: 2 }, { x: 3 }], s: new Set([1, 2, 3]) };
    expect(call("b_json_filter", doc, ["a/b", "/d/0/x"])).toEqual({ a: { b: 1 }, d: [{ x: 1 }] });
    expect(
      call(
        "b_json_filter",
        doc,
        new Set([
          ["s", 2],
          ["a", "c"],
        ]),
      ),
    ).toEqual({ a: { c: 2 }, s: [2] });
    expect(call("b_json_remove", doc, ["/a/b", "d/1"])).toEqual({ a: { c: 2 }, d: [{ x: 1, y: 2 }], s: [1, 2, 3] });
    expect(call("b_json_remove", doc, [["s", 1]])).toEqual({
      a: { b: 1, c: 2 },
      d: [{ x: 1, y: 2 }, { x: 3 }],
      s: [2, 3],
    });
  });

  it("let a shorter path win, ignore the empty path, and match array indexes only as strings", () => {
    expect(call("b_json_filter", { a: { b: 1, c: 2 } }, ["a/b", "a"])).toEqual({ a: { b: 1, c: 2 } });
    expect(call("b_json_filter", { a: 1 }, [""])).toEqual({});
    expect(call("b_json_remove", { a: 1 }, [""])).toEqual({ a: 1 });
    expect(call("b_json_remove", { a: [1, 2, 3] }, [["a", 1]])).toEqual({ a: [1, 2, 3] }); // 1 is not "1"
    expect(call("b_json_remove", { "a/b": 1, "m~n": 2 }, ["/a~1b", "/m~0n"])).toEqual({});
  });

  it("raise OPA's operand type errors", () => {
    expect(() => call("b_json_filter", "x", [])).toThrow("json.filter: operand 1 must be object but got string");
    expect(() => call("b_json_remove", {}, "a")).toThrow(
      "json.remove: operand 2 must be one of {set, array} but got string",
    );
    expect(() => call("b_json_filter", {}, [1])).toThrow(
      "operand 2 must be one of {set, array} containing string paths or array of path segments but got number",
    );
  });
});

describe("json.patch", () => {
  const patch = (doc: RegoArg, ...ops: RegoArg[]) => call("b_json_patch", doc, ops);

  it("adds, removes and replaces members and elements (RFC 6902 A.1-A.5, A.16)", () => {
    expect(patch({ foo: "bar" }, { op: "add", path: "/baz", value: "qux" })).toEqual({ baz: "qux", foo: "bar" });
    expect(patch({ foo: ["bar", "baz"] }, { op: "add", path: "/foo/1", value: "qux" })).toEqual({
      foo: ["bar", "qux", "baz"],
    });
    expect(patch([1, 2], { op: "add", path: "/-", value: [3] })).toEqual([1, 2, [3]]);
    expect(patch(["a", "b"], { op: "add", path: "/2", value: "c" })).toEqual(["a", "b", "c"]);
    expect(patch({ a: 1, b: 2 }, { op: "remove", path: "/a" })).toEqual({ b: 2 });
    expect(patch([1, 2, 3, 4], { op: "remove", path: "/1" }, { op: "remove", path: "/2" })).toEqual([1, 3]);
    expect(patch({ foo: "bar" }, { op: "replace", path: "", value: { baz: 1 } })).toEqual({ baz: 1 });
    expect(patch({}, { op: "add", path: "/", value: 1 })).toEqual({ "": 1 });
    expect(patch({}, { op: "add", path: "foo", value: 1 })).toEqual({ foo: 1 }); // OPA takes a path without "/"
  });

  it("moves, copies and tests (A.6-A.9, A.14)", () => {
    expect(patch({ foo: ["all", "grass", "cows", "eat"] }, { op: "move", from: "/foo/1", path: "/foo/3" })).toEqual({
      foo: ["all", "cows", "eat", "grass"],
    });
    expect(patch({ baz: [{ q: 1 }] }, { op: "copy", from: "/baz/0", path: "/boo" })).toEqual({
      baz: [{ q: 1 }],
      boo: { q: 1 },
    });
    expect(patch({ "/": 9, "~1": 10 }, { op: "test", path: "/~01", value: 10 })).toEqual({ "/": 9, "~1": 10 });
    expect(patch({ baz: "qux" }, { op: "test", path: "/baz", value: "bar" })).toBeUndefined();
  });

  it("is undefined when an operation cannot apply", () => {
    for (const op of [
      { op: "add", path: "/a/b", value: 1 }, // missing parent
      { op: "add", path: "/x/8", value: 1 },
      { op: "add", path: "/x/-1", value: 1 },
      { op: "add", path: "/x/01", value: 1 }, // leading zero
      { op: "add", path: "/x/1e0", value: 1 },
      { op: "remove", path: "/nope" },
      { op: "remove", path: "/x/2" },
      { op: "add", value: 1 },
      { op: "add", path: null, value: 1 },
      { op: "add", path: "/y" },
      { op: "copy", path: "/y" },
      { op: "move", from: "/nope", path: "/y" },
      { op: "spam", path: "/x", value: 1 },
      "not an object",
    ]) {
      expect(patch({ x: ["a", "b"] }, op), JSON.stringify(op)).toBeUndefined();
    }
  });

  it("edits sets by their elements, as OPA's edit tree", () => {
    const doc = { s: new Set([1, 2]) };
    expect(patch(doc, { op: "add", path: ["s", 3], value: 3 })).toEqual({ s: [1, 2, 3] });
    expect(patch(doc, { op: "add", path: ["s", 3], value: 4 })).toBeUndefined(); // key and value must agree
    expect(patch(doc, { op: "remove", path: ["s", 1] })).toEqual({ s: [2] });
    expect(patch(new Set([["a"]]), { op: "add", path: [["a"], 1], value: "b" })).toEqual([["a", "b"]]);
  });

  it("indexes arrays with numbers whose text is an int64 (1.0 is not one)", () => {
    expect(patch(["a", "b"], { op: "replace", path: [new Num("1")], value: "c" })).toEqual(["a", "c"]);
    expect(patch(["a", "b"], { op: "replace", path: [new Num("1.0")], value: "c" })).toBeUndefined();
  });

  it("refuses a patch array that is not one, and a patch that removes the whole document", () => {
    expect(() => call("b_json_patch", {}, {})).toThrow("json.patch: operand 2 must be array but got object");
    expect(() => patch({ a: 1 }, { op: "remove", path: "" })).toThrow(/removes the whole document/);
  });
});

describe("object.subset", () => {
  it("recurses into objects, takes sets by membership and arrays as a contiguous run", () => {
    const sup = { a: "b", c: { x: { y: 10, z: 12 }, w: 11 }, s: new Set([1, 2, 3]), l: [1, 2, 3, 4] };
    expect(call("b_object_subset", sup, { c: { x: { z: 12 } }, s: new Set([3]), l: [2, 3] })).toBe(true);
    expect(call("b_object_subset", sup, { l: [1, 3] })).toBe(false);
    expect(call("b_object_subset", sup, { c: { w: 12 } })).toBe(false);
    expect(call("b_object_subset", new Set([1, 2, 3]), new Set([1, 3]))).toBe(true);
    expect(call("b_object_subset", [1, 2, 3], [])).toBe(true);
  });

  it("matches an array against a set by counting as OPA does", () => {
    expect(call("b_object_subset", [1, 2], new Set([2]))).toBe(true);
    expect(call("b_object_subset", [1, 1], new Set([1, 2]))).toBe(true);
    expect(call("b_object_subset", [], new Set())).toBe(false);
    expect(call("b_object_subset", [3], new Set())).toBe(true);
  });

  it("refuses operands of other kinds with OPA's error", () => {
    expect(() => call("b_object_subset", {}, [])).toThrow(
      "object.subset: both arguments object.subset must be of the same type or array and set",
    );
  });
});

describe("graph.reachable and graph.reachable_paths", () => {
  it("charge the evaluation budget for what they explore (exponentially much on a ladder, in OPA too)", () => {
    const ladder: Record<string, string[]> = {};
    for (let i = 0; i < 30; i++) ladder[`n${i}`] = [`a${i}`, `b${i}`];
    for (let i = 0; i < 30; i++) {
      ladder[`a${i}`] = [`n${i + 1}`];
      ladder[`b${i}`] = [`n${i + 1}`];
    }
    expect(() => rt.callWithBudget(1_000_000, "b_graph_reachable_paths", ladder, ["n0"])).toThrow(
      "mandate: evaluation budget exhausted",
    );
    expect(() => rt.callWithBudget(1_000_000, "b_graph_reachable", ladder, ["n0"])).toThrow(
      "mandate: evaluation budget exhausted",
    );
    const chain = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`n${i}`, [`n${i + 1}`]]));
    expect(rt.callWithBudget(1_000_000, "b_graph_reachable", chain, ["n0"]).steps).toBeLessThan(1000);
  });

  it("reaches every node the graph has from the initial ones", () => {
    expect(call("b_graph_reachable", { a: ["b"], b: ["c"], c: ["a"], d: [] }, ["a"])).toEqual(["a", "b", "c"]);
    expect(call("b_graph_reachable", { a: new Set(["b"]), b: null }, new Set(["a", "zz"]))).toEqual(["a", "b"]);
    expect(call("b_graph_reachable", {}, ["a"])).toEqual([]);
  });

  it("lists the paths OPA lists (cycles, components, missing nodes, leaves)", () => {
    const graph = { a: new Set(["b", "c"]), b: new Set(["d"]), c: new Set(["d"]), d: new Set(), e: ["f"], f: ["e"] };
    expect(call("b_graph_reachable_paths", graph, new Set(["b", "e"]))).toEqual([
      ["b", "d"],
      ["e", "f"],
    ]);
    expect(call("b_graph_reachable_paths", { a: ["b"], b: ["nonexistent"] }, new Set(["a", "b"]))).toEqual([
      ["a", "b"],
      ["b"],
    ]);
    expect(call("b_graph_reachable_paths", { a: ["b", "c"], b: ["c"], c: [] }, ["a"])).toEqual([
      ["a", "b", "c"],
      ["a", "c"],
    ]);
    expect(call("b_graph_reachable_paths", { a: null }, ["a"])).toEqual([["a"]]);
  });

  it("raises OPA's operand type errors", () => {
    expect(() => call("b_graph_reachable", 1, [1])).toThrow("graph.reachable: operand 1 must be object but got number");
    expect(() => call("b_graph_reachable_paths", { a: [] }, "a")).toThrow(
      "graph.reachable_paths: operand 2 must be {array, set} but got string",
    );
  });
});

describe("operand errors with OPA's messages", () => {
  it("object.filter, object.remove, object.union and minus name the operand and the type they got", () => {
    expect(() => call("b_object_filter", [], [])).toThrow("object.filter: operand 1 must be object but got array");
    expect(() => call("b_object_remove", {}, "a")).toThrow(
      "object.remove: operand 2 must be one of {object, set, array} but got string",
    );
    expect(() => call("b_object_union", {}, [])).toThrow("object.union: operand 2 must be object but got array");
    expect(() => call("b_minus", new Set([1]), 1)).toThrow("minus: operand 2 must be set but got number");
    expect(() => call("b_minus", 1, new Set([1]))).toThrow("minus: operand 2 must be number but got set");
    expect(() => call("b_minus", new Set([1]), "a")).toThrow("minus: operand 2 must be number but got string");
    expect(() => call("b_minus", "a", 1)).toThrow("minus: operand 1 must be one of {number, set} but got string");
  });
});
