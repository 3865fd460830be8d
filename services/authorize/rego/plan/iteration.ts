// Iteration literals: `some k, v in xs` scans the collection, binding its patterns, and runs the
// rest of the query per element; `every k, v in xs { … }` holds when no element is a
// counterexample — each element's body runs under a `not`, and one failing body sets the flag.
import type { LiteralOf, Term } from "../ast.ts";
import type { Local } from "../ir.ts";
import type { Planner } from "./planner.ts";
import { declarePattern, type Scope } from "./scope.ts";
import { canUnifyLiterals, isCollectionLiteral, matchError } from "./term-shapes.ts";

export function planSomeIn(p: Planner, literal: LiteralOf<"somein">, scope: Scope, k: () => void): void {
  refuseNeverMatching(literal);
  p.steps.term(p, literal.collection, scope, (collection) => {
    p.ir.emit({ op: "check", fn: "rt_check_iterable", args: [collection], ints: [1] });
    for (const t of [literal.key, literal.value]) if (t) declarePattern(t, scope);
    p.ir.scan(collection, (key, value) => bindElement(p, literal, key, value, scope, k));
  });
}

/** A literal collection none of whose items could match the pattern (regorus and OPA's type checker agree). */
function refuseNeverMatching({ collection, value: pattern }: LiteralOf<"somein">): void {
  if ((collection.kind !== "array" && collection.kind !== "set") || !isCollectionLiteral(pattern)) return;
  const never = collection.items.every((item) => isCollectionLiteral(item) && !canUnifyLiterals(pattern, item));
  if (never && collection.items.length > 0) throw matchError(pattern.loc);
}

/** Binds an element's key and value to the literal's patterns (key first), then runs `k`. */
function bindElement(
  p: Planner,
  literal: { key: Term | undefined; value: Term },
  key: Local,
  value: Local,
  scope: Scope,
  k: () => void,
): void {
  const bindValue = () => p.steps.destructure(p, literal.value, value, scope, k);
  if (literal.key) p.steps.destructure(p, literal.key, key, scope, bindValue);
  else bindValue();
}

export function planEvery(p: Planner, literal: LiteralOf<"every">, scope: Scope, k: () => void): void {
  p.steps.term(p, literal.domain, scope, (domain) => {
    p.ir.emit({ op: "check", fn: "rt_check_iterable", args: [domain], ints: [0] });
    const counterexample = p.ir.local();
    p.ir.emit({ op: "flag", dst: counterexample, value: 0 });
    const inner = scope.clone();
    for (const t of [literal.key, literal.value]) if (t) declarePattern(t, inner);
    p.ir.scan(domain, (key, value) =>
      bindElement(p, literal, key, value, inner, () =>
        p.ir.not(
          () => p.steps.body(p, literal.body, inner.clone(), p.ir.notHolds),
          () => p.ir.emit({ op: "flag", dst: counterexample, value: 1 }),
        ),
      ),
    );
    p.ir.emit({ op: "checkZero", src: counterexample });
    k();
  });
}
