// Unification (`a = b`, `:=`, patterns in `some … in`, function arguments, reference paths): an
// unbound variable is bound to the other side's value; array and object literals unify item by
// item; a pattern holding unbound variables destructures a value; otherwise the sides must be
// equal. Literals that can never unify are refused, as OPA's type checker does.
import type { Term, TermOf } from "../ast.ts";
import type { Local } from "../ir.ts";
import { isWildcard } from "../vars.ts";
import { hasUnbound, isUnbound, type Planner } from "./planner.ts";
import type { Scope } from "./scope.ts";
import { canUnifyLiterals, constantKey, isCollectionLiteral, matchError, sameConstantKeys } from "./term-shapes.ts";

type Pair = readonly [Term, Term];

export function planUnify(p: Planner, left: Term, right: Term, scope: Scope, k: () => void): void {
  if (isUnbound(p, left, scope)) {
    p.steps.term(p, right, scope, (v) => bind(left, v, scope, k));
    return;
  }
  if (isUnbound(p, right, scope)) {
    p.steps.term(p, left, scope, (v) => bind(right, v, scope, k));
    return;
  }
  if (isCollectionLiteral(left) && isCollectionLiteral(right) && !canUnifyLiterals(left, right)) {
    throw matchError(left.loc);
  }
  const pairs = itemPairs(left, right);
  if (pairs) {
    unifyPairs(p, pairs, scope, k);
  } else if (hasUnbound(p, left, scope) && !hasUnbound(p, right, scope)) {
    p.steps.term(p, right, scope, (v) => destructure(p, left, v, scope, k));
  } else if (hasUnbound(p, right, scope)) {
    p.steps.term(p, left, scope, (v) => destructure(p, right, v, scope, k));
  } else {
    planEqual(p, left, right, scope, k);
  }
}

/** Array literals (of one length), or object literals with the same constant keys: their items, paired. */
function itemPairs(left: Term, right: Term): Pair[] | undefined {
  if (left.kind === "array" && right.kind === "array") {
    return left.items.map((item, i): Pair => [item, right.items[i] as Term]);
  }
  if (left.kind === "object" && right.kind === "object" && sameConstantKeys(left, right)) {
    return left.entries.map(([key, value]): Pair => [value, valueAt(right, constantKey(key))]);
  }
  return undefined;
}

function valueAt(object: TermOf<"object">, key: string | undefined): Term {
  return (object.entries.find(([k]) => constantKey(k) === key) as [Term, Term])[1];
}

function unifyPairs(p: Planner, pairs: Pair[], scope: Scope, k: () => void): void {
  const step = (i: number) => {
    if (i === pairs.length) return k();
    const [a, b] = pairs[i] as Pair;
    planUnify(p, a, b, scope, () => step(i + 1));
  };
  step(0);
}

function planEqual(p: Planner, left: Term, right: Term, scope: Scope, k: () => void): void {
  p.steps.term(p, left, scope, (a) =>
    p.steps.term(p, right, scope, (b) => {
      p.ir.emit({ op: "check", fn: "rt_equal", args: [a, b] });
      k();
    }),
  );
}

/** Matches a value against a pattern of terms, binding the pattern's unbound variables. */
export function destructure(p: Planner, pattern: Term, value: Local, scope: Scope, k: () => void): void {
  if (isUnbound(p, pattern, scope)) {
    bind(pattern, value, scope, k);
  } else if (pattern.kind === "array" && hasUnbound(p, pattern, scope)) {
    destructureArray(p, pattern, value, scope, k);
  } else if (pattern.kind === "object" && hasUnbound(p, pattern, scope)) {
    destructureObject(p, pattern, value, scope, k);
  } else {
    p.steps.term(p, pattern, scope, (v) => {
      p.ir.emit({ op: "check", fn: "rt_equal", args: [v, value] });
      k();
    });
  }
}

function destructureArray(p: Planner, pattern: TermOf<"array">, value: Local, scope: Scope, k: () => void): void {
  p.ir.emit({ op: "check", fn: "rt_is_array_of", args: [value], ints: [pattern.items.length] });
  const step = (i: number) => {
    if (i === pattern.items.length) return k();
    const item = p.ir.local();
    p.ir.emit({ op: "call", fn: "rt_dot", args: [value, p.ir.const(String(i))], dst: item });
    destructure(p, pattern.items[i] as Term, item, scope, () => step(i + 1));
  };
  step(0);
}

function destructureObject(p: Planner, pattern: TermOf<"object">, value: Local, scope: Scope, k: () => void): void {
  p.ir.emit({ op: "check", fn: "rt_is_object_of", args: [value], ints: [pattern.entries.length] });
  const step = (i: number) => {
    if (i === pattern.entries.length) return k();
    const [key, item] = pattern.entries[i] as [Term, Term];
    p.steps.term(p, key, scope, (keyLocal) => {
      const v = p.ir.local();
      p.ir.emit({ op: "call", fn: "rt_dot", args: [value, keyLocal], dst: v });
      destructure(p, item, v, scope, () => step(i + 1));
    });
  };
  step(0);
}

function bind(variable: Term, value: Local, scope: Scope, k: () => void): void {
  if (variable.kind === "var" && !isWildcard(variable.name)) {
    scope.vars.set(variable.name, value);
    scope.declared.delete(variable.name);
  }
  k();
}
