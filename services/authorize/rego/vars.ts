// Variables in the Rego AST, as the safety stage (safety.ts) and the planner (plan/) see them:
// which variables a term mentions or a pattern binds, which a literal declares, which a body or a
// comprehension uses. Comprehension bodies are closures: walking a term never enters them.
import { type Comprehension, type Literal, type Rule, subterms, type Term, type TermOf } from "./ast.ts";

export type Var = TermOf<"var">;

/** `_` and the parser's renamed wildcards (`$0`, `$1`, ...): never bound, never shared. */
export function isWildcard(name: string): boolean {
  return name === "_" || name.startsWith("$");
}

/** A variable's name as the user wrote it (renamed wildcards are `_`). */
export function displayName(name: string): string {
  return name.startsWith("$") ? "_" : name;
}

/**
 * The variables in a term, in source order, not descending into comprehensions. With
 * `patternOnly`, only those a pattern binds: array and set items and object values, never keys,
 * references or calls.
 */
export function collectVars(term: Term, out: Var[], patternOnly = false): void {
  if (term.kind === "var") out.push(term);
  else for (const child of patternOnly ? patternParts(term) : operands(term)) collectVars(child, out, patternOnly);
}

/** The sub-terms a term evaluates itself (a comprehension's head is its own scope). */
function operands(term: Term): Term[] {
  return isComprehension(term) ? [] : subterms(term);
}

function patternParts(term: Term): Term[] {
  if (term.kind === "array" || term.kind === "set") return term.items;
  if (term.kind === "object") return term.entries.map(([, value]) => value);
  return [];
}

export function isComprehension(term: Term): term is Comprehension {
  return term.kind === "arraycomp" || term.kind === "setcomp" || term.kind === "objectcomp";
}

export function varsOf(term: Term): Var[] {
  const out: Var[] = [];
  collectVars(term, out);
  return out;
}

/** The names a pattern binds (`[a, {"k": b}]` binds a and b). */
export function patternVars(term: Term): string[] {
  const out: Var[] = [];
  collectVars(term, out, true);
  return out.map((v) => v.name);
}

/** The terms a literal evaluates; an `every` with its body's (its own variables aside). */
export function literalTerms(literal: Literal): Term[] {
  switch (literal.kind) {
    case "expr":
      return [literal.expr];
    case "unify":
      return [literal.left, literal.right];
    case "some":
      return [];
    case "somein":
      return [...(literal.key ? [literal.key] : []), literal.value, literal.collection];
    case "every":
      return [literal.domain, ...literal.body.flatMap(literalTerms)];
  }
}

/** The variables a literal declares local: `some x`, `x := ...`, `some x in ...`. */
export function declaredBy(literal: Literal): Var[] {
  const out: Var[] = [];
  if (literal.kind === "some") for (const v of literal.vars) collectVars(v, out, true);
  if (literal.kind === "unify" && literal.assign) collectVars(literal.left, out, true);
  if (literal.kind === "somein") for (const t of [literal.key, literal.value]) if (t) collectVars(t, out, true);
  return out;
}

/** The variables a comprehension mentions (its head and body), which may be captured from outside. */
export function comprehensionFreeVars(term: Comprehension): Var[] {
  const heads = term.kind === "objectcomp" ? [term.key, term.value] : [term.term];
  const mentioned = [...heads, ...term.body.flatMap(literalTerms)].flatMap(varsOf);
  // Variables the comprehension declares itself are its own, never captured.
  const own = new Set(term.body.flatMap(declaredBy).map((v) => v.name));
  return mentioned.filter((v) => !isWildcard(v.name) && !own.has(v.name));
}

/** The variables a body's own literals mention (not inside `every` bodies or comprehensions). */
export function bodyVars(literals: Literal[]): Set<string> {
  const names = new Set<string>();
  for (const literal of literals) {
    const terms =
      literal.kind === "every" ? [literal.domain] : literal.kind === "some" ? literal.vars : literalTerms(literal);
    for (const v of terms.flatMap(varsOf)) names.add(v.name);
  }
  return names;
}

/** The names a function's arguments bind. */
export function argNames(rule: Rule): string[] {
  return (rule.head.args ?? []).flatMap(patternVars);
}
