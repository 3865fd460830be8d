// Stage 5 of the Rego compiler: checked modules to the IR (ir.ts), as OPA's planner does. Queries
// are planned in continuation-passing style: each literal emits its statements and calls the
// continuation inside the innermost scope it opens (a scan for iteration), so backtracking is plain
// nested loops and blocks. Each body is first put in a safe order by the safety stage (safety.ts),
// given what the planner has bound when the body starts.
//
// The steps, in plan/: documents.ts (entrypoints, packages, references into data) → rules.ts
// (rule groups, definitions, else, defaults) → bodies.ts (literals) → iteration.ts (`some … in`,
// `every`), with.ts, unify.ts → terms.ts (values, references) → calls.ts, comprehensions.ts.
// planner.ts holds what they share; ir-writer.ts writes the IR. The steps are mutually recursive:
// they call each other through the table below (planner.ts's PlanSteps), so that no module of
// plan/ imports another's steps and this entry is the only module that knows them all.
import type { RuleIndex } from "./check.ts";
import type { Plan } from "./ir.ts";
import { planBody, planLiteral } from "./plan/bodies.ts";
import { callee, planCall, planCallTerm, planMembership, planOperator } from "./plan/calls.ts";
import { planComprehension } from "./plan/comprehensions.ts";
import { coveredTerm } from "./plan/coverage.ts";
import { checkCycles } from "./plan/cycles.ts";
import { entrypointFunc, planData } from "./plan/documents.ts";
import { planEvery, planSomeIn } from "./plan/iteration.ts";
import { Planner, type PlanOptions, type PlanSteps } from "./plan/planner.ts";
import { ruleFunc } from "./plan/rules.ts";
import { planPath, planTerm, planTerms } from "./plan/terms.ts";
import { destructure, planUnify } from "./plan/unify.ts";
import { planWith } from "./plan/with.ts";

export type { PlanOptions };

const STEPS: PlanSteps = {
  data: planData,
  ruleFunc,
  body: planBody,
  literal: planLiteral,
  someIn: planSomeIn,
  every: planEvery,
  with: planWith,
  unify: planUnify,
  destructure,
  term: coveredTerm(planTerm),
  terms: planTerms,
  path: planPath,
  callee,
  call: planCall,
  callTerm: planCallTerm,
  operator: planOperator,
  membership: planMembership,
  comprehension: planComprehension,
};

export function planPolicy(index: RuleIndex, entrypoints: string[], options: PlanOptions): Plan {
  const p = new Planner(index, options, STEPS);
  const planned = entrypoints.map((name) => ({ name, func: entrypointFunc(p, name) }));
  p.planPending();
  checkCycles(p.funcs.values());
  return { funcs: [...p.funcs.values()], entrypoints: planned, constants: p.ir.constants, hostBuiltins: p.host };
}
