// Stage 5 of the Rego compiler: checked modules to the IR (ir.ts), as OPA's planner does. Queries
// are planned in continuation-passing style: each literal emits its statements and calls the
// continuation inside the innermost scope it opens (a scan for iteration), so backtracking is plain
// nested loops and blocks. Each body is first put in a safe order by the safety stage (safety.ts),
// given what the planner has bound when the body starts.
//
// The steps, in plan/: documents.ts (entrypoints, packages, references into data) → rules.ts
// (rule groups, definitions, else, defaults) → bodies.ts (literals) → iteration.ts (`some … in`,
// `every`), with.ts, unify.ts → terms.ts (values, references) → calls.ts, comprehensions.ts.
// planner.ts holds what they share; ir-writer.ts writes the IR.
import type { RuleIndex } from "./check.ts";
import type { Plan } from "./ir.ts";
import { checkCycles } from "./plan/cycles.ts";
import { entrypointFunc } from "./plan/documents.ts";
import { Planner, type PlanOptions } from "./plan/planner.ts";

export type { PlanOptions };

export function planPolicy(index: RuleIndex, entrypoints: string[], options: PlanOptions): Plan {
  const p = new Planner(index, options);
  const planned = entrypoints.map((name) => ({ name, func: entrypointFunc(p, name) }));
  p.planPending();
  checkCycles(p.funcs.values());
  return { funcs: [...p.funcs.values()], entrypoints: planned, constants: p.ir.constants, hostBuiltins: p.host };
}
