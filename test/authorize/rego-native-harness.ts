// The prebuilt Rego runtime (gen/rego/runtime.wasm) on its own, for tests of its exports that no
// policy reaches directly (rt_walk_pairs, rt_sprintf_args) and of exact values: arguments are
// built in its memory (a JavaScript Set becomes a Rego set, a Num keeps its exact text), results
// come back as the runtime's own JSON text, and an abort comes back as its message.
import { readFileSync } from "node:fs";

const runtime = new WebAssembly.Module(readFileSync(new URL("../../gen/rego/runtime.wasm", import.meta.url)));

/** A number written exactly as given (JSON numbers in JavaScript lose digits). */
export class Num {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

/** A JSON-like value whose Sets are Rego sets and whose Nums keep their text (undefined members are left out). */
export type RegoArg = unknown;

export class RuntimeAbort extends Error {}

export interface Runtime {
  /** Calls an export with the values given; the result's JSON text, "undefined" for 0. */
  call(name: string, ...args: RegoArg[]): string;
  /** Calls an export within a budget of `steps`; its result and the steps it took. */
  callWithBudget(steps: number, name: string, ...args: RegoArg[]): { result: string; steps: number };
  /** The names the runtime exports. */
  exports: Set<string>;
}

export function loadRuntime(): Runtime {
  const memory = new WebAssembly.Memory({ initial: 4 });
  const cString = (at: number) => {
    const bytes = new Uint8Array(memory.buffer);
    let end = at;
    while (bytes[end] !== 0) end++;
    return new TextDecoder().decode(bytes.subarray(at, end));
  };
  const instance = new WebAssembly.Instance(runtime, {
    env: {
      memory,
      opa_abort: (at: number) => {
        throw new RuntimeAbort(cString(at));
      },
    },
    mandate: { policy_entry: () => 0, policy_entrypoints: () => 0, policy_builtins: () => 0 },
  });
  const api = instance.exports as Record<string, (...a: number[]) => number>;
  const fn = (name: string) => {
    const f = api[name];
    if (!f) throw new Error(`the runtime has no ${name}`);
    return f;
  };
  const parse = (text: string) => {
    const bytes = new TextEncoder().encode(text);
    const at = fn("opa_malloc")(bytes.length);
    new Uint8Array(memory.buffer, at, bytes.length).set(bytes);
    const v = fn("opa_json_parse")(at, bytes.length);
    if (v === 0) throw new Error(`not JSON: ${text}`);
    return v;
  };
  const collection = (make: string, add: string, items: Iterable<unknown>) => {
    const target = fn(make)();
    for (const x of items) fn(add)(target, build(x));
    return target;
  };
  const build = (arg: RegoArg): number => {
    if (arg instanceof Num) return parse(arg.text);
    if (arg instanceof Set) return collection("rt_set", "rt_set_add", arg);
    if (Array.isArray(arg)) return collection("rt_array", "rt_array_append", arg);
    if (arg === null || typeof arg !== "object") return parse(JSON.stringify(arg));
    const object = fn("rt_object")();
    for (const [k, v] of Object.entries(arg)) {
      if (v !== undefined) fn("rt_object_insert")(object, parse(JSON.stringify(k)), build(v));
    }
    return object;
  };
  const remaining = instance.exports.mandate_budget_remaining as WebAssembly.Global;
  return {
    callWithBudget(steps, name, ...args) {
      const heap = fn("opa_heap_ptr_get")();
      try {
        const values = args.map(build);
        remaining.value = steps;
        const result = fn(name)(...values);
        const used = steps - (remaining.value as number);
        return { result: result === 0 ? "undefined" : cString(fn("opa_json_dump")(result)), steps: used };
      } finally {
        fn("opa_heap_ptr_set")(heap);
      }
    },
    exports: new Set(WebAssembly.Module.exports(runtime).map((e) => e.name)),
    call(name, ...args) {
      const heap = fn("opa_heap_ptr_get")();
      try {
        const result = fn(name)(...args.map(build));
        return result === 0 ? "undefined" : cString(fn("opa_json_dump")(result));
      } finally {
        fn("opa_heap_ptr_set")(heap);
      }
    },
  };
}
