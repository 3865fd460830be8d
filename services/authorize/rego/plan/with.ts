// `lit with input.x as v with data.y as w with f as g`: the literal runs with the replacements in
// force. Input and base data are replaced at run time (values are dynamic): the documents are
// replaced, the literal's solutions collected (rules recomputed: the runtime's with-depth disables
// their memo), the documents restored, then the rest of the query continues over those solutions.
// Functions and built-ins mocked, and rules hidden under a replaced data path, are a `with`
// context (with-context.ts): the literal is planned in it, so what it calls is planned again as a
// copy for that context where the context affects it; the rest of the query is planned back in the
// enclosing context.
import type { Literal, Term, With } from "../ast.ts";
import type { Local } from "../ir.ts";
import { functionAsValue, type Planner } from "./planner.ts";
import type { Scope } from "./scope.ts";
import { contextFor } from "./with-context.ts";
import type { Mock, WithContext } from "./with-mocks.ts";
import { isFunctionDocument, mockValue, type WithTarget, withTarget } from "./with-targets.ts";

type DocumentTarget = WithTarget & { kind: "document" };

/** A solution set: one row per solution, holding the values of `outputs`, the variables the literal bound. */
interface Solutions {
  rows: Local;
  outputs: string[];
}

/** What one `with` literal replaces: documents (their values' positions in `evaluated`) and mocks. */
interface Replacements {
  /** Values computed at the `with`, before anything is replaced. */
  evaluated: Term[];
  documents: Array<{ target: DocumentTarget; value: number }>;
  mocks: Map<string, Mock>;
  /** Mocks whose value is computed here: target key and position in `evaluated`. */
  dynamic: Array<{ key: string; value: number }>;
  hidden: string[][];
}

export function planWith(p: Planner, literal: Literal, withs: With[], scope: Scope, k: () => void): void {
  const replacements = classify(p, withs, scope);
  p.steps.terms(p, replacements.evaluated, scope, (values) => {
    const contextValues = [...p.contextValues, ...replacements.dynamic.map((d) => values[d.value] as Local)];
    for (const [i, { key }] of replacements.dynamic.entries()) {
      replacements.mocks.set(key, { kind: "value", index: p.context.values + i });
    }
    const context = contextFor(p, replacements.mocks, uniquePaths(replacements.hidden), contextValues.length);
    const stripped = { ...literal, with: [] } as Literal;
    if (replacements.documents.length === 0) {
      const outer = { context: p.context, values: p.contextValues };
      p.within(context, contextValues, () =>
        p.steps.literal(p, stripped, scope, () => p.within(outer.context, outer.values, k)),
      );
      return;
    }
    // Only the documents replaced are saved and restored.
    const roots = [...new Set(replacements.documents.map((d) => d.target.root))];
    const saved = roots.map((name) => ({ name, local: p.ir.local() }));
    for (const { name, local } of saved) p.ir.emit({ op: "global", dst: local, name, maybe: name === "input" });
    for (const { target, value } of replacements.documents) replaceDocument(p, target, values[value] as Local);
    p.ir.emit({ op: "withDepth", delta: 1 });
    const solutions = collectSolutions(p, stripped, scope, context, contextValues);
    for (const { name, local } of saved) p.ir.emit({ op: "setGlobal", name, src: local });
    p.ir.emit({ op: "withDepth", delta: -1 });
    replaySolutions(p, solutions, scope, k);
  });
}

/** Each `with` in order (a later one for the same function or built-in wins), on top of the enclosing context. */
function classify(p: Planner, withs: With[], scope: Scope): Replacements {
  const r: Replacements = {
    evaluated: [],
    documents: [],
    mocks: new Map(p.context.mocks),
    dynamic: [],
    hidden: [...p.context.hidden],
  };
  for (const w of withs) {
    const target = withTarget(p, w, scope.module, scope);
    if (target.kind === "document") {
      const group = isFunctionDocument(p, w.value, scope);
      if (group) throw functionAsValue(group, w.value.loc);
      r.documents.push({ target, value: r.evaluated.push(w.value) - 1 });
      if (target.root === "data" && target.hides) r.hidden.push(target.path);
      continue;
    }
    const mock = mockValue(p, w, target, scope);
    r.dynamic = r.dynamic.filter((d) => d.key !== target.key);
    if (mock === "dynamic") r.dynamic.push({ key: target.key, value: r.evaluated.push(w.value) - 1 });
    else r.mocks.set(target.key, mock);
  }
  return r;
}

function uniquePaths(paths: string[][]): string[][] {
  const byKey = new Map(paths.map((path) => [JSON.stringify(path), path]));
  return [...byKey.values()];
}

function replaceDocument(p: Planner, target: DocumentTarget, value: Local): void {
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

/** The literal's solutions, planned in the `with` context. */
function collectSolutions(
  p: Planner,
  literal: Literal,
  scope: Scope,
  context: WithContext,
  contextValues: Local[],
): Solutions {
  const bound = new Set(scope.vars.keys());
  const inner = scope.clone();
  const solutions: Solutions = { rows: p.ir.local(), outputs: [] };
  p.ir.emit({ op: "call", fn: "rt_array", args: [], dst: solutions.rows });
  p.ir.block(() =>
    p.within(context, contextValues, () =>
      p.steps.literal(p, literal, inner, () => {
        solutions.outputs = [...inner.vars.keys()].filter((name) => !bound.has(name));
        const values = solutions.outputs.map((name) => inner.vars.get(name) as Local);
        const row = p.ir.build("rt_array", "rt_array_append", values);
        p.ir.emit({ op: "call", fn: "rt_array_append", args: [solutions.rows, row] });
      }),
    ),
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
