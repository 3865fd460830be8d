// `lit with input.x as v with data.y as w`: the literal runs with input/data replaced (and rules
// recomputed: the runtime's with-depth disables their memo); its solutions are collected, the
// documents restored, then the rest of the query continues over those solutions.
import type { Literal, With } from "../ast.ts";
import { staticPath } from "../check.ts";
import type { Local } from "../ir.ts";
import { touchesRules } from "./doc-tree.ts";
import { type Planner, unsupported } from "./planner.ts";
import type { Scope } from "./scope.ts";

interface Target {
  root: "input" | "data";
  path: string[];
}

/** A solution set: one row per solution, holding the values of `outputs`, the variables the literal bound. */
interface Solutions {
  rows: Local;
  outputs: string[];
}

export function planWith(p: Planner, literal: Literal, withs: With[], scope: Scope, k: () => void): void {
  const targets = withs.map((w) => withTarget(p, w));
  p.steps.terms(
    p,
    withs.map((w) => w.value),
    scope,
    (values) => {
      const saved = { input: p.ir.local(), data: p.ir.local() };
      p.ir.emit({ op: "global", dst: saved.input, name: "input", maybe: true });
      p.ir.emit({ op: "global", dst: saved.data, name: "data" });
      for (const [i, target] of targets.entries()) replaceDocument(p, target, values[i] as Local);
      p.ir.emit({ op: "withDepth", delta: 1 });
      const solutions = collectSolutions(p, literal, scope);
      p.ir.emit({ op: "setGlobal", name: "input", src: saved.input });
      p.ir.emit({ op: "setGlobal", name: "data", src: saved.data });
      p.ir.emit({ op: "withDepth", delta: -1 });
      replaySolutions(p, solutions, scope, k);
    },
  );
}

/** Only input and base documents under data can be replaced. */
function withTarget(p: Planner, w: With): Target {
  const path = staticPath(w.target);
  if (!path || (path[0] !== "input" && path[0] !== "data"))
    throw unsupported("`with` on a function or built-in", w.loc);
  if (path[0] === "data" && touchesRules(p.root, path.slice(1))) {
    throw unsupported("`with` replacing a rule's value", w.loc);
  }
  return { root: path[0], path: path.slice(1) };
}

function replaceDocument(p: Planner, target: Target, value: Local): void {
  const current = p.ir.local();
  p.ir.emit({ op: "global", dst: current, name: target.root, maybe: true });
  const replaced = p.ir.local();
  if (target.path.length === 0) {
    p.ir.emit({ op: "move", dst: replaced, src: value });
  } else {
    const path = p.ir.const(JSON.stringify(target.path));
    p.ir.emit({ op: "call", fn: "rt_upsert_path", args: [current, path], ints: [0], tail: [value], dst: replaced });
  }
  p.ir.emit({ op: "setGlobal", name: target.root, src: replaced });
}

function collectSolutions(p: Planner, literal: Literal, scope: Scope): Solutions {
  const bound = new Set(scope.vars.keys());
  const inner = scope.clone();
  const solutions: Solutions = { rows: p.ir.local(), outputs: [] };
  p.ir.emit({ op: "call", fn: "rt_array", args: [], dst: solutions.rows });
  const stripped = { ...literal, with: [] } as Literal;
  p.ir.block(() =>
    p.steps.literal(p, stripped, inner, () => {
      solutions.outputs = [...inner.vars.keys()].filter((name) => !bound.has(name));
      const values = solutions.outputs.map((name) => inner.vars.get(name) as Local);
      const row = p.ir.build("rt_array", "rt_array_append", values);
      p.ir.emit({ op: "call", fn: "rt_array_append", args: [solutions.rows, row] });
    }),
  );
  return solutions;
}

/** Per solution: its variables bound in the enclosing scope, then the rest of the query. */
function replaySolutions(p: Planner, { rows, outputs }: Solutions, scope: Scope, k: () => void): void {
  p.ir.scan(rows, (_key, row) => {
    outputs.forEach((name, i) => {
      const v = p.ir.local();
      p.ir.emit({ op: "call", fn: "rt_dot", args: [row, p.ir.const(String(i))], dst: v });
      scope.vars.set(name, v);
      scope.declared.delete(name);
    });
    k();
  });
}
