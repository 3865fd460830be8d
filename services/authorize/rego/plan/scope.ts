// The variables of the query being planned: those bound (to the local holding their value) and
// the names declared local, which shadow rules and imports until bound.
import type { Module, Term } from "../ast.ts";
import type { Local } from "../ir.ts";
import { isWildcard, patternVars } from "../vars.ts";

export class Scope {
  readonly module: Module;
  readonly vars: Map<string, Local>;
  /** Names declared local (`some x`, `x :=`) that shadow rules and imports. */
  readonly declared: Set<string>;
  constructor(module: Module, vars: Map<string, Local> = new Map(), declared: Set<string> = new Set()) {
    this.module = module;
    this.vars = vars;
    this.declared = declared;
  }
  clone(): Scope {
    return new Scope(this.module, new Map(this.vars), new Set(this.declared));
  }
}

/** `some x` / `x :=`: x is a new local variable, unbound until a literal binds it. */
export function declare(name: string, scope: Scope): void {
  if (isWildcard(name)) return;
  scope.vars.delete(name);
  scope.declared.add(name);
}

export function declarePattern(pattern: Term, scope: Scope): void {
  for (const name of patternVars(pattern)) declare(name, scope);
}
