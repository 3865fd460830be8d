// What every planning step shares: the rule index and the document tree, the IR being written,
// the functions planned and pending, the host built-ins used, the variables of the bodies being
// planned (closures may capture them), and the table of steps the modules call each other through.
import type { Comprehension, Literal, LiteralOf, Module, Term, TermOf, With } from "../ast.ts";
import { pathKey, type RuleGroup, type RuleIndex } from "../check.ts";
import type { Local, PlannedFunc } from "../ir.ts";
import { type Location, RegoError } from "../lexer.ts";
import { isWildcard } from "../vars.ts";
import { type DocNode, documentTree, type Resolved, resolveName } from "./doc-tree.ts";
import { IrWriter } from "./ir-writer.ts";
import type { Scope } from "./scope.ts";
import { EMPTY_CONTEXT, type WithContext } from "./with-mocks.ts";

/** Built-ins the host implements: opa-wasm's JavaScript ones, and those Mandate's loader adds. */
export interface PlanOptions {
  /** Built-ins compiled natively (the runtime exports `b_<name>`). */
  native: ReadonlySet<string>;
  /** Built-ins the host provides through opa_builtinN. */
  host: ReadonlySet<string>;
}

type Value = (value: Local) => void;

/** A planned function to call: its name, and the `with` context's values it takes after its own arguments. */
export interface FuncRef {
  func: string;
  extra: Local[];
}

/** What a call names: a function rule (its group), or a built-in; with the arity it declares. */
export interface Callee {
  group?: RuleGroup;
  arity: number;
}

/**
 * The planner's mutually recursive steps, one per construct. Planning is recursive across
 * modules — a body plans terms, a term plans a call or a comprehension, a call plans a rule, a
 * rule plans bodies — so modules importing each other's steps would import each other in a
 * cycle. Instead each module calls the others' steps through this table (`p.steps.term(p, …)`),
 * which plan.ts fills in once from the modules' exported functions; calls within a module stay
 * direct.
 */
export interface PlanSteps {
  // documents.ts
  data(p: Planner, path: Term[], scope: Scope, k: Value): void;
  // rules.ts
  ruleFunc(p: Planner, group: RuleGroup): FuncRef;
  // bodies.ts
  body(p: Planner, literals: Literal[], scope: Scope, k: () => void, args?: string[]): void;
  literal(p: Planner, literal: Literal, scope: Scope, k: () => void): void;
  // iteration.ts
  someIn(p: Planner, literal: LiteralOf<"somein">, scope: Scope, k: () => void): void;
  every(p: Planner, literal: LiteralOf<"every">, scope: Scope, k: () => void): void;
  // with.ts
  with(p: Planner, literal: Literal, withs: With[], scope: Scope, k: () => void): void;
  // unify.ts
  unify(p: Planner, left: Term, right: Term, scope: Scope, k: () => void): void;
  destructure(p: Planner, pattern: Term, value: Local, scope: Scope, k: () => void): void;
  // terms.ts
  term(p: Planner, term: Term, scope: Scope, k: Value): void;
  terms(p: Planner, terms: Term[], scope: Scope, k: (locals: Local[]) => void): void;
  path(p: Planner, base: Local, path: Term[], i: number, scope: Scope, k: Value): void;
  // calls.ts
  callee(p: Planner, term: TermOf<"call">, module: Module): Callee;
  call(p: Planner, term: TermOf<"call">, scope: Scope, target: Callee, args: Term[], k: Value): void;
  callTerm(p: Planner, term: TermOf<"call">, scope: Scope, k: Value): void;
  operator(p: Planner, term: TermOf<"binary">, scope: Scope, k: Value): void;
  membership(p: Planner, term: TermOf<"membership">, scope: Scope, k: Value): void;
  // comprehensions.ts
  comprehension(p: Planner, term: Comprehension, scope: Scope, k: Value): void;
}

export class Planner {
  readonly index: RuleIndex;
  readonly options: PlanOptions;
  readonly steps: PlanSteps;
  readonly root: DocNode;
  readonly ir = new IrWriter();
  readonly funcs = new Map<string, PlannedFunc>();
  /** Host built-ins the policy calls, in first-use order. */
  readonly host: string[] = [];
  /** Variables of the bodies being planned, innermost included. */
  bodyVars = new Set<string>();
  /** The `with` context the code being planned runs in (with-context.ts). */
  context: WithContext = EMPTY_CONTEXT;
  /** The locals holding the context's values in the function being planned. */
  contextValues: Local[] = [];
  /** Every `with` context met so far, by key. */
  readonly contexts = new Map<string, WithContext>();
  readonly #pending: Array<() => void> = [];

  constructor(index: RuleIndex, options: PlanOptions, steps: PlanSteps) {
    this.index = index;
    this.options = options;
    this.steps = steps;
    this.root = documentTree(index);
  }

  /**
   * Plans a function once, after the one being planned: `build` fills its body and leaves its value
   * in `result`. Planned for a `with` context, it takes the context's values after its own `params`
   * (a function taking any is not memoised) and its body is planned in that context.
   */
  define(
    name: string,
    params: number,
    memo: boolean,
    build: (result: Local) => void,
    context: WithContext = EMPTY_CONTEXT,
  ): FuncRef {
    const extra = context.values > 0 ? [...this.contextValues] : [];
    if (this.funcs.has(name)) return { func: name, extra };
    const total = params + context.values;
    const func: PlannedFunc = { name, params: total, locals: 0, body: [], result: 0, memo: memo && total === 0 };
    this.funcs.set(name, func);
    const values = Array.from({ length: context.values }, (_, i) => params + i);
    this.#pending.push(() =>
      this.ir.writeFunction(func, (result) => this.within(context, values, () => build(result))),
    );
    return { func: name, extra };
  }

  /** Calls a planned function with its arguments (and its context's values); fails when it is undefined. */
  callFunc(ref: FuncRef, args: Local[]): Local {
    const dst = this.ir.local();
    this.ir.emit({ op: "callFunc", func: ref.func, args: [...args, ...ref.extra], dst });
    return dst;
  }

  /** Runs `plan` in a `with` context whose values are in `values`, then restores the current one. */
  within<T>(context: WithContext, values: Local[], plan: () => T): T {
    const saved = { context: this.context, values: this.contextValues };
    this.context = context;
    this.contextValues = values;
    try {
      return plan();
    } finally {
      this.context = saved.context;
      this.contextValues = saved.values;
    }
  }

  /** Plans the functions defined so far, and those they define in turn. */
  planPending(): void {
    for (let next = this.#pending.shift(); next; next = this.#pending.shift()) next();
  }

  /** The document a name in a query refers to; undefined for a local variable. */
  resolve(name: string, scope: Scope): Resolved {
    if (scope.declared.has(name) || isWildcard(name)) return undefined;
    return this.resolveInModule(name, scope.module);
  }

  resolveInModule(name: string, module: Module): Resolved {
    return resolveName(this.root, module, name);
  }

  useHostBuiltin(name: string): void {
    if (!this.host.includes(name)) this.host.push(name);
  }
}

export function unsupported(what: string, loc: Location | undefined): RegoError {
  return new RegoError("rego_compile_error", `unsupported: ${what} is not supported by Mandate's compiler`, loc);
}

/** A function named without a call: OPA's type error (functions are no values). */
export function functionAsValue(group: RuleGroup, loc: Location): RegoError {
  return new RegoError("rego_type_error", `function ${pathKey(group.path)} used as reference, not called`, loc);
}

/** A variable neither bound nor naming a document (or a wildcard): unifying binds it. */
export function isUnbound(p: Planner, term: Term, scope: Scope): boolean {
  if (term.kind !== "var") return false;
  if (isWildcard(term.name)) return true;
  return !scope.vars.has(term.name) && p.resolve(term.name, scope) === undefined;
}

/** Whether a pattern (array/object literal) holds variables that are not yet bound. */
export function hasUnbound(p: Planner, term: Term, scope: Scope): boolean {
  if (isUnbound(p, term, scope)) return true;
  if (term.kind === "array") return term.items.some((t) => hasUnbound(p, t, scope));
  if (term.kind === "object") return term.entries.some(([, v]) => hasUnbound(p, v, scope));
  return false;
}
