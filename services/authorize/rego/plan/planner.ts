// What every planning step shares: the rule index and the document tree, the IR being written,
// the functions planned and pending, the host built-ins used, and the variables of the bodies
// being planned (closures may capture them).
import type { Module } from "../ast.ts";
import type { RuleIndex } from "../check.ts";
import type { Local, PlannedFunc } from "../ir.ts";
import { type Location, RegoError } from "../lexer.ts";
import { isWildcard } from "../vars.ts";
import { type DocNode, documentTree, type Resolved, resolveName } from "./doc-tree.ts";
import { IrWriter } from "./ir-writer.ts";
import type { Scope } from "./scope.ts";

/** Built-ins the host implements: opa-wasm's JavaScript ones, and those Mandate's loader adds. */
export interface PlanOptions {
  /** Built-ins compiled natively (the runtime exports `b_<name>`). */
  native: ReadonlySet<string>;
  /** Built-ins the host provides through opa_builtinN. */
  host: ReadonlySet<string>;
}

export class Planner {
  readonly index: RuleIndex;
  readonly options: PlanOptions;
  readonly root: DocNode;
  readonly ir = new IrWriter();
  readonly funcs = new Map<string, PlannedFunc>();
  /** Host built-ins the policy calls, in first-use order. */
  readonly host: string[] = [];
  /** Variables of the bodies being planned, innermost included. */
  bodyVars = new Set<string>();
  readonly #pending: Array<() => void> = [];

  constructor(index: RuleIndex, options: PlanOptions) {
    this.index = index;
    this.options = options;
    this.root = documentTree(index);
  }

  /** Plans a function once, after the one being planned: `build` fills its body and leaves its value in `result`. */
  define(name: string, params: number, memo: boolean, build: (result: Local) => void): void {
    if (this.funcs.has(name)) return;
    const func: PlannedFunc = { name, params, locals: 0, body: [], result: 0, memo };
    this.funcs.set(name, func);
    this.#pending.push(() => this.ir.writeFunction(func, build));
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
