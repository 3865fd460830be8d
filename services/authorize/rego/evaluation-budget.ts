// The evaluation budget of a policy compiled by Mandate, from the host's side. Wasm evaluation is
// synchronous, so a wall-clock timeout cannot stop a runaway policy; the compiled module counts
// steps instead (one per call of a rule or function, one per iteration of a loop, 100 per call of a
// host built-in, and the runtime's built-ins in proportion to the size of what they scan: see
// runtime/budget.ts and README.md) and aborts with BUDGET_EXHAUSTED_MESSAGE, which opa-wasm throws.
//
//   const policy = await loadPolicy(wasm, undefined, hostBuiltins);
//   setBudget(policy, 1_000_000);             // kept for every later evaluation until set again
//   try { policy.evaluate(input, "authz/allow"); } catch (e) { if (isBudgetExhausted(e)) ... }
//   stepsUsed(policy);                        // what that evaluation took
//
// The module exports two mutable i32 globals: `mandate_budget`, the budget of each evaluation (default
// DEFAULT_BUDGET), and `mandate_budget_remaining`, the steps left in the current or last one. Each
// evaluation (opa_eval, eval) starts by copying the first into the second, so an evaluation after an
// exhausted one starts afresh, with the same or a newly set budget.
import type { LoadedPolicy } from "@open-policy-agent/opa-wasm";

/** What an evaluation that ran out of steps throws (opa-wasm throws the abort message as a string). */
export const BUDGET_EXHAUSTED_MESSAGE = "mandate: evaluation budget exhausted";

/** The budget of a module whose host never set one: generous, but a runaway loop still ends. */
export const DEFAULT_BUDGET = 50_000_000;

/** The budget is an i32: larger values are clamped to this. */
export const MAX_BUDGET = 2 ** 31 - 1;

type WithInstance = Pick<LoadedPolicy, "wasmInstance">;

interface BudgetGlobals {
  budget: WebAssembly.Global;
  remaining: WebAssembly.Global;
}

function budgetGlobals(policy: WithInstance): BudgetGlobals | undefined {
  const instance = "instance" in policy.wasmInstance ? policy.wasmInstance.instance : policy.wasmInstance;
  const { mandate_budget: budget, mandate_budget_remaining: remaining } = instance.exports;
  if (!(budget instanceof WebAssembly.Global) || !(remaining instanceof WebAssembly.Global)) return undefined;
  return { budget, remaining };
}

/** Whether the module counts an evaluation budget (compiled by Mandate's compiler). */
export function hasBudget(policy: WithInstance): boolean {
  return budgetGlobals(policy) !== undefined;
}

/**
 * Sets the step budget of the policy's evaluations, from the next one on (clamped to 0..MAX_BUDGET,
 * fractions dropped). Returns false, changing nothing, for a module without a budget.
 */
export function setBudget(policy: WithInstance, steps: number): boolean {
  const globals = budgetGlobals(policy);
  if (!globals) return false;
  globals.budget.value = Number.isNaN(steps) ? 0 : Math.min(MAX_BUDGET, Math.max(0, Math.floor(steps)));
  return true;
}

/** The budget each evaluation gets; undefined for a module without one. */
export function getBudget(policy: WithInstance): number | undefined {
  return budgetGlobals(policy)?.budget.value as number | undefined;
}

/**
 * Steps the last evaluation took, parsing its input included (read it right after the evaluation,
 * before the budget is changed); the whole budget when it ran out. Undefined without a budget.
 */
export function stepsUsed(policy: WithInstance): number | undefined {
  const globals = budgetGlobals(policy);
  if (!globals) return undefined;
  const budget = globals.budget.value as number;
  return Math.min(budget, Math.max(0, budget - (globals.remaining.value as number)));
}

/** Whether an evaluation error (an Error or opa-wasm's thrown string) is the budget running out. */
export function isBudgetExhausted(error: unknown): boolean {
  if (typeof error === "string") return error.includes(BUDGET_EXHAUSTED_MESSAGE);
  if (error instanceof Error) return error.message.includes(BUDGET_EXHAUSTED_MESSAGE);
  return false;
}
