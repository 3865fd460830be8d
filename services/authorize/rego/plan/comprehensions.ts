// Comprehensions: the collection starts empty, the body is planned as a query of its own in a
// copy of the enclosing scope (a closure over its bound variables), and each solution adds the
// head's value; an object comprehension refuses two values for one key.
import type { Comprehension } from "../ast.ts";
import type { Local } from "../ir.ts";
import type { Planner } from "./planner.ts";
import type { Scope } from "./scope.ts";

const EMPTY = { arraycomp: "rt_array", setcomp: "rt_set", objectcomp: "rt_object" } as const;

export function planComprehension(p: Planner, term: Comprehension, scope: Scope, k: (value: Local) => void): void {
  const dst = p.ir.local();
  p.ir.emit({ op: "call", fn: EMPTY[term.kind], args: [], dst });
  p.ir.block(() => {
    const inner = scope.clone();
    p.steps.body(p, term.body, inner, () => addSolution(p, term, inner, dst));
  });
  k(dst);
}

function addSolution(p: Planner, term: Comprehension, scope: Scope, dst: Local): void {
  if (term.kind === "objectcomp") {
    p.steps.term(p, term.key, scope, (key) =>
      p.steps.term(p, term.value, scope, (value) =>
        p.ir.emit({ op: "call", fn: "rt_object_insert_unique", args: [dst, key, value] }),
      ),
    );
    return;
  }
  const add = term.kind === "arraycomp" ? "rt_array_append" : "rt_set_add";
  p.steps.term(p, term.term, scope, (v) => p.ir.emit({ op: "call", fn: add, args: [dst, v] }));
}
