// Calls: a function rule is a planned function called with its arguments' values; a built-in is
// native (a runtime export `b_<name>`) or delegated to the host through opa_builtinN; operators
// and membership are built-ins. Which one a name calls follows OPA: `data.`-paths, imports, then
// the caller's package, else the built-in.
import type { Module, Term, TermOf } from "../ast.ts";
import { builtinArity } from "../builtins.ts";
import { callCandidates, pathKey } from "../check.ts";
import type { Local } from "../ir.ts";
import { type Location, RegoError } from "../lexer.ts";
import { type Callee, type Planner, unsupported } from "./planner.ts";
import type { Scope } from "./scope.ts";

type Value = (value: Local) => void;

const OPERATORS: Record<string, string> = {
  "==": "equal",
  "!=": "neq",
  "<": "lt",
  "<=": "lte",
  ">": "gt",
  ">=": "gte",
  "+": "plus",
  "-": "minus",
  "*": "mul",
  "/": "div",
  "%": "rem",
  "|": "or",
  "&": "and",
};

export function callee(p: Planner, term: TermOf<"call">, module: Module): Callee {
  for (const candidate of callCandidates(term.name, module)) {
    const group = p.index.groups.get(pathKey(candidate));
    if (group?.kind === "function") return { group, arity: group.arity ?? 0 };
  }
  const arity = builtinArity(term.name);
  return { arity: typeof arity === "number" ? arity : term.args.length };
}

/** A call used as a value: exactly its arity's arguments (`print` takes any). */
export function planCallTerm(p: Planner, term: TermOf<"call">, scope: Scope, k: Value): void {
  const target = callee(p, term, scope.module);
  if (term.args.length > target.arity && term.name !== "print") {
    // Only an expression on its own may pass an output argument: `count(xs, n)`.
    throw new RegoError(
      "rego_type_error",
      `${term.name}: too many arguments: have ${term.args.length}, want ${target.arity}`,
      term.loc,
    );
  }
  planCall(p, term, scope, target, term.args, k);
}

export function planCall(p: Planner, term: TermOf<"call">, scope: Scope, target: Callee, args: Term[], k: Value): void {
  if (!target.group) {
    planBuiltin(p, term.name, args, scope, term.loc, k);
    return;
  }
  const func = p.steps.ruleFunc(p, target.group);
  p.steps.terms(p, args, scope, (locals) => {
    const dst = p.ir.local();
    p.ir.emit({ op: "callFunc", func, args: locals, dst });
    k(dst);
  });
}

export function planOperator(p: Planner, term: TermOf<"binary">, scope: Scope, k: Value): void {
  planBuiltin(p, OPERATORS[term.op] as string, [term.left, term.right], scope, term.loc, k);
}

/** `v in xs` and `k, v in xs` as a value. */
export function planMembership(p: Planner, term: TermOf<"membership">, scope: Scope, k: Value): void {
  if (term.key) planBuiltin(p, "internal.member_3", [term.key, term.value, term.collection], scope, term.loc, k);
  else planBuiltin(p, "internal.member_2", [term.value, term.collection], scope, term.loc, k);
}

function planBuiltin(p: Planner, name: string, args: Term[], scope: Scope, loc: Location, k: Value): void {
  if (name === "print") {
    k(p.ir.const("true"));
    return;
  }
  const native = p.options.native.has(name);
  if (!native && !p.options.host.has(name)) throw unsupported(`built-in function ${name}`, loc);
  p.steps.terms(p, args, scope, (locals) => {
    const dst = p.ir.local();
    if (native) {
      p.ir.emit({ op: "call", fn: `b_${name.replaceAll(".", "_")}`, args: locals, dst });
    } else {
      p.useHostBuiltin(name);
      p.ir.emit({ op: "host", name, args: locals, dst });
    }
    k(dst);
  });
}
