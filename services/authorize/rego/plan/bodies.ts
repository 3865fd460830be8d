// Query bodies: the safety stage orders the literals, then each literal is planned with the next
// one as its continuation, so every solution of one runs the rest. A literal is a declaration,
// an iteration (`some … in`, `every`), a unification or an expression that must hold; `not` and
// `with` wrap any of those.
import type { Literal, LiteralOf, Module, Term } from "../ast.ts";
import type { Local } from "../ir.ts";
import { RegoError } from "../lexer.ts";
import { checkDeclarations, orderForSafety, type SafetyContext } from "../safety.ts";
import { bodyVars, patternVars } from "../vars.ts";
import type { Planner } from "./planner.ts";
import { declarePattern, Scope } from "./scope.ts";
import { isPattern } from "./term-shapes.ts";
import { markBuiltinValues } from "./with-targets.ts";

/** Plans a body; `k` runs once per solution. `args`: names a function's arguments already bind. */
export function planBody(p: Planner, literals: Literal[], scope: Scope, k: () => void, args: string[] = []): void {
  checkDeclarations(literals, args);
  const enclosing = p.bodyVars;
  p.bodyVars = new Set([...enclosing, ...bodyVars(literals)]);
  const ordered = orderForSafety(
    markBuiltinValues(p, literals, scope),
    { bound: scope.vars.keys(), declared: scope.declared, bodyVars: p.bodyVars },
    safetyContext(p, scope.module),
  );
  const step = (i: number) => {
    if (i === ordered.length) return k();
    planLiteral(p, ordered[i] as Literal, scope, () => step(i + 1));
  };
  step(0);
  p.bodyVars = enclosing;
}

/** What the safety stage asks about names in a module's bodies. */
function safetyContext(p: Planner, module: Module): SafetyContext {
  const scope = new Scope(module);
  return {
    isDocument: (name) => p.resolve(name, scope) !== undefined,
    arity: (call) => p.steps.callee(p, call, module).arity,
  };
}

export function planLiteral(p: Planner, literal: Literal, scope: Scope, k: () => void): void {
  if ((literal.kind === "expr" || literal.kind === "unify") && literal.with.length > 0) {
    p.steps.with(p, literal, literal.with, scope, k);
    return;
  }
  if ((literal.kind === "expr" || literal.kind === "unify") && literal.negated) {
    const positive = { ...literal, negated: false };
    p.ir.not(() => planLiteral(p, positive, scope.clone(), p.ir.notHolds), k);
    return;
  }
  switch (literal.kind) {
    case "some":
      for (const v of literal.vars) declarePattern(v, scope);
      k();
      break;
    case "somein":
      p.steps.someIn(p, literal, scope, k);
      break;
    case "every":
      p.steps.every(p, literal, scope, k);
      break;
    case "unify":
      planUnification(p, literal, scope, k);
      break;
    case "expr":
      planExpression(p, literal.expr, scope, k);
      break;
  }
}

/** `a = b`, or `a := b`, which declares the variables of its left-hand pattern first. */
function planUnification(p: Planner, literal: LiteralOf<"unify">, scope: Scope, k: () => void): void {
  if (literal.assign) {
    if (patternVars(literal.left).length === 0 || !isPattern(literal.left)) {
      throw new RegoError(
        "rego_compile_error",
        "assignment operator := requires left-hand side to have bindable variables",
        literal.left.loc,
      );
    }
    declarePattern(literal.left, scope);
  }
  p.steps.unify(p, literal.left, literal.right, scope, k);
}

/** An expression holds when it is true (`==` compares); a call with an extra argument binds it. */
function planExpression(p: Planner, expr: Term, scope: Scope, k: () => void): void {
  const holds = (fn: string, args: Local[]) => {
    p.ir.emit({ op: "check", fn, args });
    k();
  };
  if (expr.kind === "call") {
    const target = p.steps.callee(p, expr, scope.module);
    if (!target.group && expr.name === "walk" && expr.args.length === target.arity) {
      // A relation called on its own holds when it has a pair (walk always has one: the value itself).
      p.steps.term(p, expr.args[0] as Term, scope, () => k());
      return;
    }
    if (expr.args.length === target.arity + 1) {
      const output = expr.args.at(-1) as Term;
      p.steps.call(p, expr, scope, target, expr.args.slice(0, -1), (v) => p.steps.destructure(p, output, v, scope, k));
      return;
    }
  }
  if (expr.kind === "binary" && expr.op === "==" && !p.context.mocks.has("equal")) {
    p.steps.term(p, expr.left, scope, (a) => p.steps.term(p, expr.right, scope, (b) => holds("rt_equal", [a, b])));
  } else {
    p.steps.term(p, expr, scope, (v) => holds("rt_truthy", [v]));
  }
}
