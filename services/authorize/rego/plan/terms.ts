// Terms to IR, in continuation-passing style: a term's value lands in a local handed to the
// continuation. Scalars are pooled constants and collections are built; a variable is its local,
// or the document its name refers to; a reference follows its path, iterating where the path
// holds an unbound variable.
import type { Term, TermOf } from "../ast.ts";
import type { Local } from "../ir.ts";
import { RegoError } from "../lexer.ts";
import { displayName, type Var } from "../vars.ts";
import type { Resolved } from "./doc-tree.ts";
import { hasUnbound, type Planner } from "./planner.ts";
import { declare, type Scope } from "./scope.ts";
import { jsonNumber } from "./term-shapes.ts";

type Value = (value: Local) => void;

/** Plans terms left to right; `k` receives their locals in order. */
export function planTerms(p: Planner, terms: Term[], scope: Scope, k: (locals: Local[]) => void): void {
  const locals: Local[] = [];
  const step = (i: number) => {
    if (i === terms.length) return k(locals);
    planTerm(p, terms[i] as Term, scope, (l) => {
      locals.push(l);
      step(i + 1);
    });
  };
  step(0);
}

export function planTerm(p: Planner, term: Term, scope: Scope, k: Value): void {
  const scalar = scalarJson(term);
  if (scalar !== undefined) {
    k(p.ir.const(scalar));
    return;
  }
  switch (term.kind) {
    case "var":
      planVariable(p, term, scope, k);
      break;
    case "ref":
      planRef(p, term, scope, k);
      break;
    case "array":
      planTerms(p, term.items, scope, (items) => k(p.ir.build("rt_array", "rt_array_append", items)));
      break;
    case "set":
      planTerms(p, term.items, scope, (items) => k(p.ir.build("rt_set", "rt_set_add", items)));
      break;
    case "object":
      planObject(p, term, scope, k);
      break;
    case "call":
      p.steps.callTerm(p, term, scope, k);
      break;
    case "binary":
      p.steps.operator(p, term, scope, k);
      break;
    case "membership":
      p.steps.membership(p, term, scope, k);
      break;
    case "arraycomp":
    case "setcomp":
    case "objectcomp":
      p.steps.comprehension(p, term, scope, k);
      break;
  }
}

/** A scalar literal's JSON text (a negative number is `-` applied to a number literal). */
function scalarJson(term: Term): string | undefined {
  switch (term.kind) {
    case "null":
      return "null";
    case "boolean":
      return String(term.value);
    case "number":
      return jsonNumber(term.text, term.loc);
    case "string":
      return JSON.stringify(term.value);
    case "unary":
      return negativeNumber(term);
    default:
      return undefined;
  }
}

function planObject(p: Planner, term: TermOf<"object">, scope: Scope, k: Value): void {
  planTerms(p, term.entries.flat(), scope, (parts) => {
    const dst = p.ir.local();
    p.ir.emit({ op: "call", fn: "rt_object", args: [], dst });
    for (let i = 0; i < parts.length; i += 2) {
      p.ir.emit({ op: "call", fn: "rt_object_insert", args: [dst, parts[i] as Local, parts[i + 1] as Local] });
    }
    k(dst);
  });
}

function negativeNumber(term: TermOf<"unary">): string {
  if (term.arg.kind !== "number") {
    throw new RegoError("rego_parse_error", "unary - can only be used with numeric literals", term.loc);
  }
  return jsonNumber(`-${term.arg.text}`, term.loc);
}

function planVariable(p: Planner, term: Var, scope: Scope, k: Value): void {
  const local = scope.vars.get(term.name);
  if (local !== undefined) k(local);
  else planDocument(p, documentOf(p, term, scope), [], scope, k);
}

function planRef(p: Planner, term: TermOf<"ref">, scope: Scope, k: Value): void {
  const head = term.head;
  if (head.kind === "var" && !scope.vars.has(head.name)) {
    planDocument(p, documentOf(p, head, scope), term.path, scope, k);
    return;
  }
  planTerm(p, head, scope, (base) => planPath(p, base, term.path, 0, scope, k));
}

/** The document an unbound variable names; naming none, it is unsafe. */
function documentOf(p: Planner, variable: Var, scope: Scope): NonNullable<Resolved> {
  const resolved = p.resolve(variable.name, scope);
  if (!resolved) {
    throw new RegoError("rego_unsafe_var_error", `var ${displayName(variable.name)} is unsafe`, variable.loc);
  }
  return resolved;
}

/** input or data at a resolved path, then the rest of a reference's path. */
function planDocument(p: Planner, resolved: NonNullable<Resolved>, rest: Term[], scope: Scope, k: Value): void {
  const loc = rest[0]?.loc ?? { file: "", row: 0, col: 0 };
  const path = [...resolved.path.map((value) => ({ kind: "string" as const, value, loc })), ...rest];
  if (resolved.root === "data") {
    p.steps.data(p, path, scope, k);
    return;
  }
  const input = p.ir.local();
  p.ir.emit({ op: "global", dst: input, name: "input" });
  planPath(p, input, path, 0, scope, k);
}

/** Follows a reference's path from `base`: ground keys are lookups, unbound variables iterate. */
export function planPath(p: Planner, base: Local, path: Term[], i: number, scope: Scope, k: Value): void {
  if (i === path.length) {
    k(base);
    return;
  }
  const segment = path[i] as Term;
  if (hasUnbound(p, segment, scope)) {
    if (segment.kind === "var") declare(segment.name, scope);
    p.ir.scan(base, (key, value) =>
      p.steps.destructure(p, segment, key, scope, () => planPath(p, value, path, i + 1, scope, k)),
    );
    return;
  }
  planTerm(p, segment, scope, (key) => {
    const dst = p.ir.local();
    p.ir.emit({ op: "call", fn: "rt_dot", args: [base, key], dst });
    planPath(p, dst, path, i + 1, scope, k);
  });
}
