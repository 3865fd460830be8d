// The Rego runtime (AssemblyScript, prebuilt in gen/rego/runtime.wasm) through @open-policy-agent/opa-wasm
// itself, in a compiled policy: the module loads as an OPA policy, JSON goes in and comes back out unchanged for any
// JSON value (fast-check), malformed or absurdly deep JSON is refused, and the heap is reset
// between evaluations so memory does not grow.
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { compileRego } from "../../services/authorize/rego/compile.ts";

// A policy that answers its input: the runtime's JSON parsing and dumping, seen through opa-wasm.
let wasm: Uint8Array;

beforeAll(() => {
  wasm = compileRego({
    modules: { "echo.rego": "package echo\n\nresult := input\n" },
    entrypoints: ["echo/result"],
  }).wasm;
});

type Policy = Awaited<ReturnType<typeof loadPolicy>>;
const exports = (policy: Policy) =>
  (policy as unknown as { wasmInstance: WebAssembly.Instance }).wasmInstance.exports as Record<
    string,
    (...a: number[]) => number
  >;

describe("Rego runtime under opa-wasm", () => {
  it("loads as an ABI 1.3 policy with its entrypoints", async () => {
    const policy = await loadPolicy(wasm);
    expect(policy.entrypoints).toEqual({ "echo/result": 0 });
    expect((policy as unknown as { minorVersion: number }).minorVersion).toBe(3);
  });

  it("round-trips every JSON value through parse and dump (the opa_eval fast path)", async () => {
    const policy = await loadPolicy(wasm);
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
        const expected = JSON.parse(JSON.stringify(value));
        // opa-wasm sends no input for falsy values: `input` is undefined, the result set empty.
        expect(policy.evaluate(value)).toEqual(value ? [{ result: expected }] : []);
      }),
      { numRuns: 300 },
    );
  });

  it("keeps numbers exactly as written and decodes escapes and surrogate pairs", async () => {
    const policy = await loadPolicy(wasm);
    const raw = new TextEncoder().encode(
      '{"n":1.50e3,"s":"\\u00e9\\ud83d\\ude00\\n","big":123456789012345678901234567890}',
    );
    const [row] = policy.evaluate(raw.buffer) as Array<{ result: Record<string, unknown> }>;
    expect(row?.result).toMatchObject({ n: 1500, s: "é😀\n" });
  });

  it("refuses malformed and too-deep JSON (opa_json_parse returns 0) without trapping", async () => {
    const policy = await loadPolicy(wasm);
    const api = exports(policy);
    const memory = (policy as unknown as { mem: WebAssembly.Memory }).mem;
    const parse = (text: string) => {
      const bytes = new TextEncoder().encode(text);
      const at = api.opa_malloc?.(bytes.length) as number;
      new Uint8Array(memory.buffer, at, bytes.length).set(bytes);
      return api.opa_json_parse?.(at, bytes.length);
    };
    for (const bad of ["", "{", '{"a":}', "[1,]", "01", "1.", "tru", '"\\x"', '{"a":1}x', "[".repeat(2000)]) {
      expect(parse(bad), bad).toBe(0);
    }
    expect(parse('{"a": [1, 2]}')).toBeGreaterThan(0);
    expect(parse('"\\ud83d"')).toBeGreaterThan(0); // an unpaired surrogate decodes to U+FFFD, as in OPA
  });

  it("serves the evaluation-context path (eval, opa_eval_ctx_*) as well", async () => {
    const policy = await loadPolicy(wasm);
    const api = exports(policy);
    const memory = (policy as unknown as { mem: WebAssembly.Memory }).mem;
    const bytes = new TextEncoder().encode('{"x":[1,"two"]}');
    const at = api.opa_malloc?.(bytes.length) as number;
    new Uint8Array(memory.buffer, at, bytes.length).set(bytes);
    const ctx = api.opa_eval_ctx_new?.() as number;
    api.opa_eval_ctx_set_input?.(ctx, api.opa_json_parse?.(at, bytes.length) as number);
    api.opa_eval_ctx_set_entrypoint?.(ctx, 0);
    expect(api.eval?.(ctx)).toBe(0);
    const out = api.opa_json_dump?.(api.opa_eval_ctx_get_result?.(ctx) as number) as number;
    const view = new Uint8Array(memory.buffer, out);
    const text = new TextDecoder().decode(view.subarray(0, view.indexOf(0)));
    expect(JSON.parse(text)).toEqual([{ result: { x: [1, "two"] } }]);
  });

  it("resets the heap between evaluations", async () => {
    const policy = await loadPolicy(wasm);
    const memory = (policy as unknown as { mem: WebAssembly.Memory }).mem;
    const input = { items: Array.from({ length: 200 }, (_, i) => ({ id: i, tags: ["a", "b"] })) };
    policy.evaluate(input);
    const size = memory.buffer.byteLength;
    for (let i = 0; i < 500; i++) policy.evaluate(input);
    expect(memory.buffer.byteLength).toBe(size);
  });
});
