// The runtime half of OPA's Wasm ABI (version 1, minor 3): memory, the heap pointer, JSON in and
// out, the evaluation context and the evaluation entry points, plus what compiled policy code
// calls (eval.ts) and the native built-ins (builtins.ts). The compiler links each policy onto this
// module and replaces the `mandate.policy_*` imports with the policy's own functions.
import { budgetUnmetered, consumeBytes } from "./budget";
import { heapGet, heapSet, malloc } from "./memory";
import { dumpJson, parseJson } from "./json";

export * from "./eval";
export * from "./builtins";
export { rt_sprintf_args } from "./format";
export { b_graph_reachable, b_graph_reachable_paths } from "./graph";
export { b_json_filter, b_json_patch, b_json_remove } from "./json-paths";
export { rt_walk_pairs } from "./walk";
export { mandate_budget, mandate_budget_remaining, rt_budget_exhausted } from "./budget";

export const opa_wasm_abi_version: i32 = 1;
export const opa_wasm_abi_minor_version: i32 = 3;

export function opa_malloc(size: usize): usize {
  return malloc(size);
}

/** The heap is reset wholesale between evaluations; single frees are no-ops. */
export function opa_free(_ptr: usize): void {}

export function opa_heap_ptr_get(): usize {
  return heapGet();
}

/** Also where opa-wasm starts loading data (setData), which is not metered: see budget.ts. */
export function opa_heap_ptr_set(ptr: usize): void {
  budgetUnmetered();
  heapSet(ptr);
}

/**
 * opa-wasm parses a host built-in's result through here, so during an evaluation its size is
 * charged (one step per 64 bytes); loading data and input outside an evaluation is not metered.
 */
export function opa_json_parse(addr: usize, len: usize): usize {
  consumeBytes(len);
  return parseJson(addr, len);
}

export function opa_value_parse(addr: usize, len: usize): usize {
  consumeBytes(len);
  return parseJson(addr, len);
}

export function opa_json_dump(value: usize): usize {
  return dumpJson(value);
}

export function opa_value_dump(value: usize): usize {
  return dumpJson(value);
}

// Evaluation context: [input][data][entrypoint][result].
export function opa_eval_ctx_new(): usize {
  const ctx = malloc(16);
  memory.fill(ctx, 0, 16);
  return ctx;
}

export function opa_eval_ctx_set_input(ctx: usize, value: usize): void {
  store<u32>(ctx, <u32>value);
}

export function opa_eval_ctx_set_data(ctx: usize, value: usize): void {
  store<u32>(ctx, <u32>value, 4);
}

export function opa_eval_ctx_set_entrypoint(ctx: usize, entrypoint: i32): void {
  store<i32>(ctx, entrypoint, 8);
}

export function opa_eval_ctx_get_result(ctx: usize): usize {
  return <usize>load<u32>(ctx, 12);
}
