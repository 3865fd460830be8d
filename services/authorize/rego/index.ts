// The Rego compiler as a library (`import { compileRego } from "mandate/rego"`): compile Rego to an
// OPA ABI Wasm module, build and load OPA bundles, the host built-ins loadPolicy needs, and the
// evaluation budget every compiled module counts down.
export { annotatedEntrypoints, buildBundle, loadBundle, readBundle, writeBundle } from "./bundle.ts";
export { type CompiledPolicy, type CompileOptions, compileRego, RegoCompileErrors } from "./compile.ts";
export {
  BUDGET_EXHAUSTED_MESSAGE,
  DEFAULT_BUDGET,
  getBudget,
  hasBudget,
  isBudgetExhausted,
  MAX_BUDGET,
  setBudget,
  stepsUsed,
} from "./evaluation-budget.ts";
export { hostBuiltins, lenientHostBuiltins } from "./host-builtins.ts";
export { RegoError } from "./lexer.ts";
