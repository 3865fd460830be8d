// The Rego compiler end to end: Rego source → compileRego → @open-policy-agent/opa-wasm. Each
// language construct is evaluated through the real SDK; errors are positioned and named; the
// module's ABI surface is exactly OPA's; runaway and malformed inputs end in clean errors.
import { readFileSync } from "node:fs";
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { buildRuntime } from "../../scripts/build-rego-runtime.ts";
import { RegoCompileErrors } from "../../services/authorize/rego/check.ts";
import { type CompileOptions, compileRego } from "../../services/authorize/rego/compile.ts";
import { hostBuiltins } from "../../services/authorize/rego/host-builtins.ts";

async function evaluate(
  source: string,
  entrypoint: string,
  input?: unknown,
  data?: unknown,
  options: Partial<CompileOptions> = {},
): Promise<unknown> {
  const { wasm } = compileRego({ modules: { "p.rego": source }, entrypoints: [entrypoint], ...options });
  const policy = await loadPolicy(wasm, undefined, hostBuiltins);
  if (data) policy.setData(data as object);
  const rows = policy.evaluate(input, entrypoint) as Array<{ result: unknown }>;
  return rows.length === 0 ? "<undefined>" : rows[0]?.result;
}

function compileError(source: string, entrypoint = "p/x", options: Partial<CompileOptions> = {}): string {
  try {
    compileRego({ modules: { "p.rego": source }, entrypoints: [entrypoint], ...options });
  } catch (error) {
    expect(error).toBeInstanceOf(RegoCompileErrors);
    return (error as Error).message;
  }
  throw new Error("expected a compile error");
}

const header = "package p\nimport rego.v1\n";

describe("Rego constructs, evaluated through opa-wasm", () => {
  const cases: Array<[string, string, unknown, unknown?, unknown?]> = [
    ["complete rule and default", "default x := false\nx if input.a == 1", true, { a: 1 }],
    ["default when no body holds", "default x := false\nx if input.a == 1", false, { a: 2 }],
    ["undefined without default", "x if input.a == 1", "<undefined>", { a: 2 }],
    ["partial set (contains)", 'x contains y if { some y in input.ys; y != "b" }', ["a", "c"], { ys: ["c", "b", "a"] }],
    ["partial object", "x[k] := v if { some k, v in input.m; v > 1 }", { b: 2 }, { m: { a: 1, b: 2 } }],
    [
      "multi-value ref head",
      "x.y[k] contains v if { some k, v in input.pairs }",
      { y: { a: [1], b: [2] } },
      { pairs: { a: 1, b: 2 } },
    ],
    ["ref head with static suffix", "x[k].ok := true if some k in input.ks", { a: { ok: true } }, { ks: ["a"] }],
    [
      "functions with several definitions",
      'f(1) := "one"\nf(n) := "many" if n > 1\nx := [f(1), f(5)]',
      ["one", "many"],
    ],
    ["function with else", 'f(n) := "neg" if n < 0 else := "pos"\nx := [f(-1), f(1)]', ["neg", "pos"]],
    ["else chain on a rule", 'x := "a" if input.n == 1 else := "b" if input.n == 2 else := "c"', "b", { n: 2 }],
    ["some … in with key", "x contains k if { some k, v in input.o; v == true }", ["b"], { o: { a: false, b: true } }],
    ["every", "x if every v in input.vs { v > 0 }", true, { vs: [1, 2] }],
    ["every fails on a counterexample", "x if every v in input.vs { v > 0 }", "<undefined>", { vs: [1, -2] }],
    ["every over an empty collection", "x if every v in [] { v > 0 }", true],
    ["not", "x if not input.banned", true, {}],
    ["not with a solution", "x if not input.banned", "<undefined>", { banned: true }],
    ["with input", 'y := input.a\nx := [z, y] if z := y with input as {"a": 7}', [7, 1], { a: 1 }],
    ["with data", 'y := data.cfg.n\nx := [z, y] if z := y with data.cfg as {"n": 3}', [3, 1], {}, { cfg: { n: 1 } }],
    // OPA reads a comprehension only when its head is one term: `[v * 2 | …]` is refused, `[(v * 2) | …]` is not.
    ["array comprehension", "x := [(v * 2) | some v in input.vs]", [2, 4], { vs: [1, 2] }],
    ["set comprehension", "x := {(v % 2) | some v in input.vs}", [0, 1], { vs: [1, 2, 3] }],
    ["object comprehension", "x := {k: count(v) | some k, v in input.o}", { a: 2 }, { o: { a: [1, 2] } }],
    [
      "iteration and unification",
      "x contains [i, v] if input.vs[i] = v",
      [
        [0, "a"],
        [1, "b"],
      ],
      { vs: ["a", "b"] },
    ],
    ["destructuring", 'x := a + b if [a, {"b": b}] := input.pair', 3, { pair: [1, { b: 2 }] }],
    ["== and := and comparison", "x if { y := input.n; y == 4; y >= 4; y < 5; y != 3 }", true, { n: 4 }],
    ["arithmetic", "x := [1 + 2, 7 - 3, 2 * 3, 7 / 2, 7 % 3, -4]", [3, 4, 6, 3.5, 1, -4]],
    ["set operators", "x := [({1, 2} | {3}), {1, 2} & {2}, {1, 2} - {1}]", [[1, 2, 3], [2], [2]]],
    [
      "membership",
      'x := ["a" in input.xs, "z" in input.xs, 0, "a" in input.xs]',
      [true, false, 0, true],
      { xs: ["a"] },
    ],
    ["refs to other packages and imports", "import data.lib\nx := lib.v", 5, {}, { lib: { v: 5 } }],
    ["aggregates", "x := [count([1, 2]), sum([1, 2]), max([1, 3]), min({4, 2}), sort([3, 1])]", [2, 3, 3, 2, [1, 3]]],
    [
      "strings",
      'x := [startswith("abc", "ab"), endswith("abc", "c"), contains("abc", "b"), concat("-", ["a", "b"]), lower("AB"), upper("ab"), trim(" a ", " "), split("a,b", ","), indexof("abc", "c"), substring("abcdef", 1, 3), replace("aa", "a", "b"), format_int(255, 16), trim_prefix("ab", "a")]',
      [true, true, true, "a-b", "ab", "AB", "a", ["a", "b"], 2, "bcd", "bb", "ff", "b"],
    ],
    [
      "objects and types",
      'x := [object.get({"a": 1}, "b", 0), object.keys({"a": 1}), object.union({"a": 1}, {"b": 2}), object.remove({"a": 1, "b": 2}, ["a"]), object.filter({"a": 1, "b": 2}, {"a"}), is_string("s"), type_name([])]',
      [0, ["a"], { a: 1, b: 2 }, { b: 2 }, { a: 1 }, true, "array"],
    ],
    ["json", 'x := [json.marshal({"a": [1]}), json.unmarshal("[true]")]', ['{"a":[1]}', [true]]],
  ];
  for (const [name, body, want, input, data] of cases) {
    it(name, async () => {
      expect(await evaluate(`${header}${body}\n`, "p/x", input, data)).toEqual(want);
    });
  }

  it("evaluates a package as a document (rules merged with base data)", async () => {
    expect(await evaluate(`${header}a := 1\nb := {2}\n`, "p", undefined, { p: { c: 3 } })).toEqual({
      a: 1,
      b: [2],
      c: 3,
    });
  });

  it("reads Rego v0 only when asked, as opa --v0-compatible", async () => {
    const v0 = "package p\nx[y] { y := input.ys[_] }\n";
    expect(compileError(v0)).toMatch(/rego_parse_error/);
    expect(await evaluate(v0, "p/x", { ys: [2, 1] }, undefined, { v0: true })).toEqual([1, 2]);
  });

  it("numbers keep their source text; arithmetic results are dumped canonically", async () => {
    const source = `${header}x := [input.n, json.marshal(12345678901234567890), json.marshal(1.50e3), 1.5 + 0.25]`;
    expect(await evaluate(source, "p/x", { n: 1.5e3 })).toEqual([1500, "12345678901234567890", "1.50e3", 1.75]);
  });
});

describe("runtime errors (OPA's conflict and built-in errors)", () => {
  it("complete rules must not produce multiple outputs", async () => {
    await expect(evaluate(`${header}x := v if some v in input.vs`, "p/x", { vs: [1, 2] })).rejects.toMatch(
      /complete rules must not produce multiple outputs/,
    );
  });

  it("object keys must be unique", async () => {
    await expect(
      evaluate(`${header}x[k] := v if { some k, v in input.o }\nx["a"] := 9`, "p/x", { o: { a: 1 } }),
    ).rejects.toMatch(/object keys must be unique/);
  });

  it("functions must not produce multiple outputs", async () => {
    await expect(evaluate(`${header}f(_) := 1\nf(_) := 2\nx := f(0)`, "p/x")).rejects.toMatch(
      /functions must not produce/,
    );
  });

  it("built-in type errors fail the query by default, and are undefined in non-strict mode", async () => {
    const source = `${header}x := input.n + 1`;
    await expect(evaluate(source, "p/x", { n: "1" })).rejects.toMatch(
      /eval_type_error: invalid argument type for plus/,
    );
    expect(await evaluate(source, "p/x", { n: "1" }, undefined, { strictBuiltinErrors: false })).toBe("<undefined>");
    await expect(evaluate(`${header}x := 1 / input.d`, "p/x", { d: 0 })).rejects.toMatch(/divide by zero/);
    // Case mapping beyond ASCII is Go's (rego-native-unicode.test.ts has the details).
    expect(await evaluate(`${header}x := lower(input.s)`, "p/x", { s: "ÉCOLE" })).toBe("école");
  });
});

describe("compile errors are positioned, in OPA's form", () => {
  it("unsafe variables", () => {
    expect(compileError(`${header}x if y > 1`)).toMatch(/^p\.rego:3: rego_unsafe_var_error: var y is unsafe/);
  });

  it("unsupported built-ins and constructs are named, never a wrong answer at run time", () => {
    expect(compileError(`${header}x := http.send({})`)).toMatch(/p\.rego:3: .*built-in function http\.send/);
    // `with` replacing rules, functions and built-ins compiles (rego-with.test.ts); an I/O built-in
    // only where a `with` replaces it.
  });

  it("undefined functions, arity and recursion", () => {
    expect(compileError(`${header}x := nope(1)`)).toMatch(/undefined function nope/);
    expect(compileError(`${header}x := count(1, 2, 3)`)).toMatch(/arity mismatch/);
    expect(compileError(`${header}x := count([1], 2)`)).toMatch(/count: arity mismatch/);
    expect(compileError(`${header}x := y\ny := x`)).toMatch(/rego_recursion_error/);
    // Recursion through a document: a rule reading the package that holds it.
    expect(compileError(`${header}x := count(data.p)`)).toMatch(/rego_recursion_error: rule .* is recursive/);
  });

  it("declarations and unifications OPA refuses", () => {
    expect(compileError(`${header}x if { y := 1; y := 2 }`)).toMatch(/var y referenced above/);
    expect(compileError(`${header}x if [a, b] = [1, 2, 3]`)).toMatch(/match error/);
    expect(compileError(`${header}x if 1 := 1`)).toMatch(/bindable variables/);
    expect(compileError(`${header}default x := 1 + 2`)).toMatch(
      /rego_parse_error: illegal default rule \(value cannot contain call\)/,
    );
  });

  it("never throws anything but RegoCompileErrors on arbitrary text (fast-check)", () => {
    const alphabet = fc.constantFrom(
      ...'package p x := y if { } [ ] ( ) , ; = := == some in every not with as import data input 1 "a" \n . _ + - * / | & < >'.split(
        " ",
      ),
    );
    fc.assert(
      fc.property(fc.array(alphabet, { maxLength: 40 }), (tokens) => {
        const source = `package p\n${tokens.join(" ")}`;
        try {
          compileRego({ modules: { "p.rego": source }, entrypoints: ["p/x"], optimize: false });
        } catch (error) {
          expect(error).toBeInstanceOf(RegoCompileErrors);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("the module is an OPA ABI 1.x policy", () => {
  it("exports exactly the ABI (and the evaluation budget) and imports memory, opa_abort and the built-ins it delegates", () => {
    const { wasm } = compileRego({
      modules: { "p.rego": `${header}x := sprintf("%d", [input.n])` },
      entrypoints: ["p/x"],
    });
    const module = new WebAssembly.Module(wasm as Uint8Array<ArrayBuffer>);
    expect(
      WebAssembly.Module.exports(module)
        .map((e) => e.name)
        .sort(),
    ).toEqual(
      [
        "builtins",
        "entrypoints",
        "eval",
        "mandate_budget",
        "mandate_budget_remaining",
        "opa_eval",
        "opa_eval_ctx_get_result",
        "opa_eval_ctx_new",
        "opa_eval_ctx_set_data",
        "opa_eval_ctx_set_entrypoint",
        "opa_eval_ctx_set_input",
        "opa_free",
        "opa_heap_ptr_get",
        "opa_heap_ptr_set",
        "opa_json_dump",
        "opa_json_parse",
        "opa_malloc",
        "opa_value_dump",
        "opa_value_parse",
        "opa_wasm_abi_minor_version",
        "opa_wasm_abi_version",
      ].sort(),
    );
    const imports = WebAssembly.Module.imports(module).map((i) => `${i.module}.${i.name}`);
    expect(imports.sort()).toEqual(["env.memory", "env.opa_abort", "env.opa_builtin2"].sort());
  });

  it("is exported from the package as mandate/rego", async () => {
    const library = await import("mandate/rego");
    expect(library.compileRego).toBe(compileRego);
    expect(typeof library.buildBundle).toBe("function");
  });

  it("delegates host built-ins through opa_builtinN (sprintf is opa-wasm's)", async () => {
    expect(await evaluate(`${header}x := sprintf("%d items", [input.n])`, "p/x", { n: 3 })).toBe("3 items");
  });

  it("evaluates through the eval-context path as well as opa_eval", async () => {
    const { wasm } = compileRego({ modules: { "p.rego": `${header}x := input.a` }, entrypoints: ["p/x"] });
    const policy = await loadPolicy(wasm);
    (policy as unknown as { minorVersion: number }).minorVersion = 1; // forces the eval-context path
    expect(policy.evaluate({ a: 2 }, "p/x")).toEqual([{ result: 2 }]);
  });

  it("gen/rego/runtime.wasm is built from the committed runtime sources", async () => {
    const committed = readFileSync(new URL("../../gen/rego/runtime.wasm", import.meta.url));
    expect(Buffer.compare(committed, await buildRuntime())).toBe(0);
  }, 60_000);
});

describe("robustness: clean errors, never a hung or crashed process", () => {
  it("a runaway policy stops at the memory limit; the instance keeps working", async () => {
    const source = `${header}big := count([[a, b] | some a in numbers.range(1, 3000); some b in numbers.range(1, 3000)])\necho := input`;
    const { wasm } = compileRego({
      modules: { "p.rego": source },
      entrypoints: ["p/big", "p/echo"],
      memoryLimitMiB: 64,
    });
    const policy = await loadPolicy(wasm);
    expect(() => policy.evaluate({}, "p/big")).toThrow(/eval_memory_limit_error/);
    expect(policy.evaluate({ ok: 1 }, "p/echo")).toEqual([{ result: { ok: 1 } }]);
  });

  it("deeply nested input is refused; huge input evaluates", async () => {
    const { wasm } = compileRego({
      modules: { "p.rego": `${header}n := count(input.items)\nd := input` },
      entrypoints: ["p/n", "p/d"],
    });
    const policy = await loadPolicy(wasm);
    // Raw JSON bytes (opa-wasm passes them through): 5000 levels, past the runtime's depth limit.
    const deep = new TextEncoder().encode(`${"[".repeat(5000)}1${"]".repeat(5000)}`);
    expect(() => policy.evaluate(deep.buffer, "p/d")).toThrow(/invalid input JSON/);
    const items = Array.from({ length: 100_000 }, (_, i) => ({ id: i, tags: ["a"] }));
    expect(policy.evaluate({ items }, "p/n")).toEqual([{ result: 100_000 }]);
  });

  it("a huge numbers.range is refused: beyond the evaluation budget, or as a built-in error", async () => {
    // 1e9 steps are past the default budget (50 million), which is charged before the size check.
    await expect(evaluate(`${header}x := count(numbers.range(1, 1e9))`, "p/x")).rejects.toMatch(
      /mandate: evaluation budget exhausted/,
    );
    await expect(evaluate(`${header}x := count(numbers.range(1, 2e7))`, "p/x")).rejects.toMatch(/range too large/);
  });
});
