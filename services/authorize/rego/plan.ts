// Stage 5 of the Rego compiler: checked modules to the IR (ir.ts), as OPA's planner does. Queries
// are planned in continuation-passing style: each literal emits its statements and calls the
// continuation inside the innermost scope it opens (a scan for iteration), so backtracking is plain
// nested loops and blocks. Each body is first put in a safe order by the safety stage (safety.ts),
// given what the planner has bound when the body starts.
import type { Literal, Module, Rule, Term, With } from "./ast.ts";
import { builtinArity } from "./builtins.ts";
import { pathKey, type RuleGroup, type RuleIndex, refParts, staticPath } from "./check.ts";
import type { Local, Plan, PlannedFunc, Stmt } from "./ir.ts";
import { type Location, RegoError } from "./lexer.ts";
import { checkDeclarations, orderForSafety, type SafetyContext } from "./safety.ts";
import { argNames, bodyVars, displayName, isWildcard, patternVars } from "./vars.ts";

/** Built-ins the host implements: opa-wasm's JavaScript ones, and those Mandate's loader adds. */
export interface PlanOptions {
  /** Built-ins compiled natively (the runtime exports `b_<name>`). */
  native: ReadonlySet<string>;
  /** Built-ins the host provides through opa_builtinN. */
  host: ReadonlySet<string>;
}

const OPERATORS: Record<string, string> = {
  "==": "equal",
  "!=": "neq",
  "<": "lt",
  "<=": "lte",
  ">": "gt",
  ">=": "gte",
  "+": "plus",
  "-": "minus",
  "*": "mul",
  "/": "div",
  "%": "rem",
  "|": "or",
  "&": "and",
};

interface DocNode {
  path: string[];
  children: Map<string, DocNode>;
  group: RuleGroup | undefined;
}

/** Where a name in a query points: a local variable, or a document (input / data) path. */
type Resolved = { root: "input" | "data"; path: string[] } | undefined;

class Scope {
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

export function planPolicy(index: RuleIndex, entrypoints: string[], options: PlanOptions): Plan {
  const planner = new Planner(index, options);
  return planner.plan(entrypoints);
}

class Planner {
  readonly #index: RuleIndex;
  readonly #options: PlanOptions;
  readonly #root: DocNode = { path: [], children: new Map(), group: undefined };
  readonly #funcs = new Map<string, PlannedFunc>();
  readonly #pending: Array<() => void> = [];
  readonly #constants: string[] = [];
  readonly #constantIndex = new Map<string, number>();
  readonly #host: string[] = [];
  // Per function being planned.
  #out: Stmt[] = [];
  #locals = 0;
  #labels = 0;

  constructor(index: RuleIndex, options: PlanOptions) {
    this.#index = index;
    this.#options = options;
    for (const group of index.groups.values()) {
      let node = this.#root;
      for (const segment of group.path.slice(1)) {
        let next = node.children.get(segment);
        if (!next) {
          next = { path: [...node.path, segment], children: new Map(), group: undefined };
          node.children.set(segment, next);
        }
        node = next;
      }
      node.group = group;
    }
    // Packages without rules are still documents (an empty object).
    for (const module of index.modules) {
      let node = this.#root;
      for (const segment of module.package) {
        let next = node.children.get(segment);
        if (!next) {
          next = { path: [...node.path, segment], children: new Map(), group: undefined };
          node.children.set(segment, next);
        }
        node = next;
      }
    }
  }

  plan(entrypoints: string[]): Plan {
    const entries = entrypoints.map((name) => {
      const func = `entry:${name}`;
      const path = name === "" ? [] : name.split("/");
      const loc: Location = { file: "entrypoint", row: 1, col: 1 };
      this.#define(func, 0, false, (result) => {
        const scope = new Scope(this.#index.modules[0] ?? emptyModule());
        this.#block(() => {
          this.#data(
            path.map((value) => ({ kind: "string" as const, value, loc })),
            scope,
            (v) => this.#emit({ op: "move", dst: result, src: v }),
          );
        });
      });
      return { name, func };
    });
    while (this.#pending.length > 0) (this.#pending.shift() as () => void)();
    this.#checkCycles();
    return {
      funcs: [...this.#funcs.values()],
      entrypoints: entries,
      constants: this.#constants,
      hostBuiltins: this.#host,
    };
  }

  /**
   * A document that (through `data` or a package) includes the rule reading it would recurse
   * forever at run time: refused here, as OPA's recursion check does.
   */
  #checkCycles(): void {
    const calls = new Map<string, Set<string>>();
    const collect = (stmts: Stmt[], into: Set<string>) => {
      for (const s of stmts) {
        if (s.op === "callFunc") into.add(s.func);
        if (s.op === "block" || s.op === "not" || s.op === "scan") collect(s.body, into);
      }
    };
    for (const func of this.#funcs.values()) {
      const into = new Set<string>();
      collect(func.body, into);
      calls.set(func.name, into);
    }
    const state = new Map<string, 1 | 2>();
    const stack: string[] = [];
    const visit = (name: string): void => {
      if (state.get(name) === 2) return;
      if (state.get(name) === 1) {
        const cycle = [...stack.slice(stack.indexOf(name)), name].map((n) => n.slice(n.indexOf(":") + 1));
        throw new RegoError("rego_recursion_error", `rule ${cycle[0]} is recursive: ${cycle.join(" -> ")}`);
      }
      state.set(name, 1);
      stack.push(name);
      for (const next of calls.get(name) ?? []) visit(next);
      stack.pop();
      state.set(name, 2);
    };
    for (const name of calls.keys()) visit(name);
  }

  // ---- functions ---------------------------------------------------------------------------------

  /** Plans a function once; `build` fills its body and leaves its value in `result`. */
  #define(name: string, params: number, memo: boolean, build: (result: Local) => void): void {
    if (this.#funcs.has(name)) return;
    const func: PlannedFunc = { name, params, locals: 0, body: [], result: 0, memo };
    this.#funcs.set(name, func);
    const run = () => {
      const saved = { out: this.#out, locals: this.#locals };
      this.#out = func.body;
      this.#locals = params;
      func.result = this.#local();
      build(func.result);
      func.locals = this.#locals;
      this.#out = saved.out;
      this.#locals = saved.locals;
    };
    this.#pending.push(run);
  }

  #ruleFunc(group: RuleGroup): string {
    const name = `${group.kind === "function" ? "func" : "rule"}:${pathKey(group.path)}`;
    this.#define(name, group.kind === "function" ? (group.arity ?? 0) : 0, group.kind !== "function", (result) =>
      this.#planGroup(group, result),
    );
    return name;
  }

  #nodeFunc(node: DocNode): string {
    const name = `doc:${["data", ...node.path].join(".")}`;
    this.#define(name, 0, true, (result) => {
      // The base document under this path, with every rule below it merged in.
      const data = this.#local();
      this.#emit({ op: "global", dst: data, name: "data" });
      const base = this.#local();
      this.#emit({ op: "move", dst: base, src: data });
      for (const segment of node.path) {
        const key = this.#const(JSON.stringify(segment));
        this.#emit({ op: "call", fn: "rt_dot", args: [base, key], dst: base, maybe: true });
      }
      this.#emit({ op: "call", fn: "rt_object_copy", args: [base], dst: result });
      for (const [name, child] of node.children) {
        if (child.group?.kind === "function") continue;
        this.#block(() => {
          const v = this.#local();
          const func = child.group ? this.#ruleFunc(child.group) : this.#nodeFunc(child);
          this.#emit({ op: "callFunc", func, args: [], dst: v });
          if (child.group && child.children.size > 0) this.#mergeChildren(child, v);
          this.#emit({ op: "call", fn: "rt_object_merge_at", args: [result, this.#const(JSON.stringify(name)), v] });
        });
      }
    });
    return name;
  }

  /** A rule whose path also has rules below it (p[x] := ... and p.q := ...): merges those in. */
  #mergeChildren(node: DocNode, value: Local): void {
    for (const [name, child] of node.children) {
      this.#block(() => {
        const v = this.#local();
        const func = child.group ? this.#ruleFunc(child.group) : this.#nodeFunc(child);
        this.#emit({ op: "callFunc", func, args: [], dst: v });
        this.#emit({ op: "call", fn: "rt_object_merge_rule", args: [value, this.#const(JSON.stringify(name)), v] });
      });
    }
  }

  #planGroup(group: RuleGroup, result: Local): void {
    const staticLength = group.path.length - 1 - group.module.package.length;
    if (group.kind === "partial_set" || group.kind === "partial_object") {
      this.#emit({
        op: "call",
        fn: group.kind === "partial_set" && !hasKeys(group, staticLength) ? "rt_set" : "rt_object",
        args: [],
        dst: result,
      });
    }
    for (const rule of group.rules) {
      if (rule.default) {
        this.#planRefHeadDefault(rule, group, staticLength, result);
        continue;
      }
      this.#planRule(rule, group, staticLength, result);
    }
    const fallback = group.default;
    if (fallback && refParts(fallback.head.ref).length === staticLength) {
      // Only when no definition produced a value (OPA's default rule).
      this.#block(() => {
        this.#emit({ op: "checkZero", src: result });
        const scope = new Scope(group.module);
        this.#term(fallback.head.value ?? trueTerm(fallback.loc), scope, (v) =>
          this.#emit({ op: "move", dst: result, src: v }),
        );
      });
    }
  }

  #planRefHeadDefault(rule: Rule, group: RuleGroup, staticLength: number, result: Local): void {
    const keys = refParts(rule.head.ref).slice(staticLength);
    const scope = new Scope(group.module);
    this.#block(() => {
      this.#terms(keys, scope, (keyLocals) => {
        this.#term(rule.head.value ?? trueTerm(rule.loc), scope, (v) => {
          if (keyLocals.length !== 1) throw unsupported("default rules with nested reference heads", rule.loc);
          this.#emit({ op: "call", fn: "rt_object_insert_absent", args: [result, keyLocals[0] as Local, v] });
        });
      });
    });
  }

  /** One rule definition, with its else chain: each branch's solutions feed the group's value. */
  #planRule(rule: Rule, group: RuleGroup, staticLength: number, result: Local): void {
    const keyTerms = refParts(rule.head.ref).slice(staticLength);
    const branches: Array<{ body: Literal[]; value: Term | undefined }> = rule.bodies.map((body) => ({
      body,
      value: rule.head.value,
    }));
    const accumulate = (scope: Scope, value: Term | undefined) => {
      const head = rule.head;
      if (group.kind === "partial_set") {
        this.#terms(keyTerms, scope, (keys) =>
          this.#term(head.contains as Term, scope, (element) => {
            if (keys.length === 0) this.#emit({ op: "call", fn: "rt_set_add", args: [result, element] });
            else this.#treeInsert(result, keys, element, 1);
          }),
        );
        return;
      }
      this.#terms(keyTerms, scope, (keys) =>
        this.#term(value ?? trueTerm(head.loc), scope, (v) => {
          if (keys.length > 0) this.#treeInsert(result, keys, v, 0);
          else {
            const fn = group.kind === "function" ? "rt_merge_function" : "rt_merge_complete";
            this.#emit({ op: "call", fn, args: [result, v], dst: result });
          }
        }),
      );
    };
    const bindArgs = (scope: Scope, k: () => void) => {
      const args = rule.head.args ?? [];
      const step = (i: number) => {
        if (i === args.length) return k();
        this.#declarePattern(args[i] as Term, scope);
        this.#destructure(args[i] as Term, i, scope, () => step(i + 1));
      };
      step(0);
    };
    if (rule.elses.length === 0) {
      // OPA's early exit: when every solution yields the same constant head, the first one is enough.
      const constantHead =
        group.kind !== "function" &&
        [...keyTerms, rule.head.contains, rule.head.value].every((t) => t === undefined || isConstant(t));
      for (const branch of branches) {
        const label = this.#label();
        this.#block(() => {
          const scope = new Scope(group.module);
          bindArgs(scope, () =>
            this.#body(
              branch.body,
              scope,
              () => {
                accumulate(scope, branch.value);
                if (constantHead) this.#emit({ op: "br", label });
              },
              argNames(rule),
            ),
          );
        }, label);
      }
      return;
    }
    // else: the first branch with a solution decides (all of its solutions must agree).
    for (const e of rule.elses) branches.push({ body: e.body, value: e.value });
    const hit = this.#local();
    const done = this.#label();
    this.#emit({ op: "flag", dst: hit, value: 0 });
    const outer: Stmt[] = [];
    this.#emit({ op: "block", body: outer, label: done });
    this.#into(outer, () => {
      for (const branch of branches) {
        this.#block(() => {
          const scope = new Scope(group.module);
          bindArgs(scope, () =>
            this.#body(
              branch.body,
              scope,
              () => {
                accumulate(scope, branch.value);
                this.#emit({ op: "flag", dst: hit, value: 1 });
              },
              argNames(rule),
            ),
          );
        });
        this.#emit({ op: "brIf", src: hit, label: done });
      }
    });
  }

  #treeInsert(result: Local, keys: Local[], leaf: Local, mode: 0 | 1): void {
    const path = this.#build("rt_array", "rt_array_append", keys);
    this.#emit({ op: "call", fn: "rt_tree_insert", args: [result, path, leaf], ints: [mode] });
  }

  // ---- bodies ------------------------------------------------------------------------------------

  #body(literals: Literal[], scope: Scope, k: () => void, args: string[] = []): void {
    checkDeclarations(literals, args);
    this.#currentBodyVars = new Set([...this.#currentBodyVars, ...bodyVars(literals)]);
    const ordered = orderForSafety(
      literals,
      { bound: scope.vars.keys(), declared: scope.declared, bodyVars: this.#currentBodyVars },
      this.#safetyContext(scope.module),
    );
    const step = (i: number) => {
      if (i === ordered.length) return k();
      this.#literal(ordered[i] as Literal, scope, () => step(i + 1));
    };
    step(0);
  }

  /** What the safety stage asks about names in a module's bodies. */
  #safetyContext(module: Module): SafetyContext {
    const scope = new Scope(module);
    return {
      isDocument: (name) => this.#resolve(name, scope) !== undefined,
      arity: (call) => this.#callee(call, scope).arity,
    };
  }

  /** Variables of the bodies being planned, innermost included: closures may capture them. */
  #currentBodyVars = new Set<string>();

  #literal(literal: Literal, scope: Scope, k: () => void): void {
    const withs = literal.kind === "expr" || literal.kind === "unify" ? literal.with : [];
    if (withs.length > 0) {
      this.#with(literal, withs, scope, k);
      return;
    }
    if ((literal.kind === "unify" || literal.kind === "expr") && literal.negated) {
      this.#not(() => this.#literal({ ...literal, negated: false }, scope.clone(), this.#notHolds), k);
      return;
    }
    switch (literal.kind) {
      case "some":
        for (const v of literal.vars) for (const name of patternVars(v)) this.#declare(name, scope);
        k();
        return;
      case "somein":
        this.#someIn(literal, scope, k);
        return;
      case "every":
        this.#every(literal, scope, k);
        return;
      case "unify":
        if (literal.assign) {
          if (patternVars(literal.left).length === 0 || !isPattern(literal.left)) {
            throw new RegoError(
              "rego_compile_error",
              "assignment operator := requires left-hand side to have bindable variables",
              literal.left.loc,
            );
          }
          this.#declarePattern(literal.left, scope);
        }
        this.#unify(literal.left, literal.right, scope, k);
        return;
      case "expr":
        this.#expression(literal.expr, scope, k);
        return;
    }
  }

  /** The continuation inside a `not`: the negated query has a solution, so the `not` fails. */
  #notHolds = (): void => this.#emit({ op: "exitNot" });

  #not(inner: () => void, k: () => void): void {
    const body: Stmt[] = [];
    this.#emit({ op: "not", body });
    this.#into(body, inner);
    k();
  }

  #expression(expr: Term, scope: Scope, k: () => void): void {
    if (expr.kind === "call") {
      const target = this.#callee(expr, scope);
      if (expr.args.length === target.arity + 1) {
        this.#call(expr, scope, target, expr.args.slice(0, -1), (v) =>
          this.#unifyValue(expr.args.at(-1) as Term, v, scope, k),
        );
        return;
      }
    }
    if (expr.kind === "binary" && expr.op === "==") {
      this.#term(expr.left, scope, (a) =>
        this.#term(expr.right, scope, (b) => {
          this.#emit({ op: "check", fn: "rt_equal", args: [a, b] });
          k();
        }),
      );
      return;
    }
    this.#term(expr, scope, (v) => {
      this.#emit({ op: "check", fn: "rt_truthy", args: [v] });
      k();
    });
  }

  #someIn(literal: Extract<Literal, { kind: "somein" }>, scope: Scope, k: () => void): void {
    const { collection: items, value: pattern } = literal;
    if ((items.kind === "array" || items.kind === "set") && isCollectionLiteral(pattern)) {
      // Refused only when no element could ever match (regorus and OPA's type checker agree there).
      const never = items.items.every((item) => isCollectionLiteral(item) && !canUnifyLiterals(pattern, item));
      if (never && items.items.length > 0) {
        throw new RegoError("rego_type_error", "match error: the two sides can never unify", pattern.loc);
      }
    }
    this.#term(literal.collection, scope, (collection) => {
      this.#emit({ op: "check", fn: "rt_check_iterable", args: [collection], ints: [1] });
      for (const t of [literal.key, literal.value]) if (t) this.#declarePattern(t, scope);
      this.#scan(collection, (key, value) => {
        const bindValue = () => this.#destructure(literal.value, value, scope, k);
        if (literal.key) this.#destructure(literal.key, key, scope, bindValue);
        else bindValue();
      });
    });
  }

  #every(literal: Extract<Literal, { kind: "every" }>, scope: Scope, k: () => void): void {
    this.#term(literal.domain, scope, (domain) => {
      this.#emit({ op: "check", fn: "rt_check_iterable", args: [domain], ints: [0] });
      const counterexample = this.#local();
      this.#emit({ op: "flag", dst: counterexample, value: 0 });
      const inner = scope.clone();
      for (const t of [literal.key, literal.value]) if (t) this.#declarePattern(t, inner);
      this.#scan(domain, (key, value) => {
        const check = () =>
          this.#not(
            () => this.#body(literal.body, inner.clone(), this.#notHolds),
            () => this.#emit({ op: "flag", dst: counterexample, value: 1 }),
          );
        const bindValue = () => this.#destructure(literal.value, value, inner, check);
        if (literal.key) this.#destructure(literal.key, key, inner, bindValue);
        else bindValue();
      });
      this.#emit({ op: "checkZero", src: counterexample });
      k();
    });
  }

  /**
   * `lit with input.x as v with data.y as w`: the literal runs with input/data replaced (and rules
   * recomputed); its solutions are collected, the documents restored, then the rest of the query
   * continues over those solutions.
   */
  #with(literal: Literal, withs: With[], scope: Scope, k: () => void): void {
    const targets = withs.map((w) => {
      const path = staticPath(w.target);
      if (!path || (path[0] !== "input" && path[0] !== "data"))
        throw unsupported("`with` on a function or built-in", w.loc);
      if (path[0] === "data" && this.#touchesRules(path.slice(1))) {
        throw unsupported("`with` replacing a rule's value", w.loc);
      }
      return { root: path[0] as "input" | "data", path: path.slice(1) };
    });
    this.#terms(
      withs.map((w) => w.value),
      scope,
      (values) => {
        const saved = { input: this.#local(), data: this.#local() };
        this.#emit({ op: "global", dst: saved.input, name: "input", maybe: true });
        this.#emit({ op: "global", dst: saved.data, name: "data" });
        targets.forEach((target, i) => {
          const current = this.#local();
          this.#emit({ op: "global", dst: current, name: target.root, maybe: true });
          const replaced = this.#local();
          if (target.path.length === 0) this.#emit({ op: "move", dst: replaced, src: values[i] as Local });
          else {
            const path = this.#const(JSON.stringify(target.path));
            this.#emit({
              op: "call",
              fn: "rt_upsert_path",
              args: [current, path],
              ints: [0],
              tail: [values[i] as Local],
              dst: replaced,
            });
          }
          this.#emit({ op: "setGlobal", name: target.root, src: replaced });
        });
        this.#emit({ op: "withDepth", delta: 1 });
        const bound = new Set(scope.vars.keys());
        const inner = scope.clone();
        const solutions = this.#local();
        this.#emit({ op: "call", fn: "rt_array", args: [], dst: solutions });
        const stripped = { ...literal, with: [] } as Literal;
        let outputs: string[] = [];
        this.#block(() =>
          this.#literal(stripped, inner, () => {
            outputs = [...inner.vars.keys()].filter((name) => !bound.has(name));
            const row = this.#build(
              "rt_array",
              "rt_array_append",
              outputs.map((name) => inner.vars.get(name) as Local),
            );
            this.#emit({ op: "call", fn: "rt_array_append", args: [solutions, row] });
          }),
        );
        this.#emit({ op: "setGlobal", name: "input", src: saved.input });
        this.#emit({ op: "setGlobal", name: "data", src: saved.data });
        this.#emit({ op: "withDepth", delta: -1 });
        this.#scan(solutions, (_key, row) => {
          outputs.forEach((name, i) => {
            const v = this.#local();
            this.#emit({ op: "call", fn: "rt_dot", args: [row, this.#const(String(i))], dst: v });
            scope.vars.set(name, v);
            scope.declared.delete(name);
          });
          k();
        });
      },
    );
  }

  #touchesRules(path: string[]): boolean {
    let node = this.#root;
    for (const segment of path) {
      const next = node.children.get(segment);
      if (!next) return false;
      if (next.group) return true;
      node = next;
    }
    return true;
  }

  // ---- unification -------------------------------------------------------------------------------

  #unify(left: Term, right: Term, scope: Scope, k: () => void): void {
    if (this.#isUnbound(left, scope)) {
      this.#term(right, scope, (v) => this.#bind(left, v, scope, k));
      return;
    }
    if (this.#isUnbound(right, scope)) {
      this.#term(left, scope, (v) => this.#bind(right, v, scope, k));
      return;
    }
    if (isCollectionLiteral(left) && isCollectionLiteral(right) && !canUnifyLiterals(left, right)) {
      // OPA's type checker refuses unifications that can never succeed.
      throw new RegoError("rego_type_error", "match error: the two sides can never unify", left.loc);
    }
    if (left.kind === "array" && right.kind === "array") {
      const step = (i: number) => {
        if (i === left.items.length) return k();
        this.#unify(left.items[i] as Term, right.items[i] as Term, scope, () => step(i + 1));
      };
      step(0);
      return;
    }
    if (left.kind === "object" && right.kind === "object" && sameConstantKeys(left, right)) {
      const pairs = left.entries.map(([key, value]) => {
        const other = right.entries.find(([k2]) => constantKey(k2) === constantKey(key)) as [Term, Term];
        return [value, other[1]] as const;
      });
      const step = (i: number) => {
        if (i === pairs.length) return k();
        const [a, b] = pairs[i] as readonly [Term, Term];
        this.#unify(a, b, scope, () => step(i + 1));
      };
      step(0);
      return;
    }
    if (this.#hasUnbound(left, scope) && !this.#hasUnbound(right, scope)) {
      this.#term(right, scope, (v) => this.#destructure(left, v, scope, k));
      return;
    }
    if (this.#hasUnbound(right, scope)) {
      this.#term(left, scope, (v) => this.#destructure(right, v, scope, k));
      return;
    }
    this.#term(left, scope, (a) =>
      this.#term(right, scope, (b) => {
        this.#emit({ op: "check", fn: "rt_equal", args: [a, b] });
        k();
      }),
    );
  }

  #unifyValue(pattern: Term, value: Local, scope: Scope, k: () => void): void {
    this.#destructure(pattern, value, scope, k);
  }

  /** Matches a value against a pattern of terms, binding the pattern's unbound variables. */
  #destructure(pattern: Term, value: Local, scope: Scope, k: () => void): void {
    if (this.#isUnbound(pattern, scope)) {
      this.#bind(pattern, value, scope, k);
      return;
    }
    if (pattern.kind === "array" && this.#hasUnbound(pattern, scope)) {
      this.#emit({ op: "check", fn: "rt_is_array_of", args: [value], ints: [pattern.items.length] });
      const step = (i: number) => {
        if (i === pattern.items.length) return k();
        const item = this.#local();
        this.#emit({ op: "call", fn: "rt_dot", args: [value, this.#const(String(i))], dst: item });
        this.#destructure(pattern.items[i] as Term, item, scope, () => step(i + 1));
      };
      step(0);
      return;
    }
    if (pattern.kind === "object" && this.#hasUnbound(pattern, scope)) {
      this.#emit({ op: "check", fn: "rt_is_object_of", args: [value], ints: [pattern.entries.length] });
      const step = (i: number) => {
        if (i === pattern.entries.length) return k();
        const [key, item] = pattern.entries[i] as [Term, Term];
        this.#term(key, scope, (keyLocal) => {
          const v = this.#local();
          this.#emit({ op: "call", fn: "rt_dot", args: [value, keyLocal], dst: v });
          this.#destructure(item, v, scope, () => step(i + 1));
        });
      };
      step(0);
      return;
    }
    this.#term(pattern, scope, (p) => {
      this.#emit({ op: "check", fn: "rt_equal", args: [p, value] });
      k();
    });
  }

  #bind(variable: Term, value: Local, scope: Scope, k: () => void): void {
    if (variable.kind === "var" && !isWildcard(variable.name)) {
      scope.vars.set(variable.name, value);
      scope.declared.delete(variable.name);
    }
    k();
  }

  #declare(name: string, scope: Scope): void {
    if (isWildcard(name)) return;
    scope.vars.delete(name);
    scope.declared.add(name);
  }

  #declarePattern(pattern: Term, scope: Scope): void {
    for (const name of patternVars(pattern)) this.#declare(name, scope);
  }

  #isUnbound(term: Term, scope: Scope): boolean {
    if (term.kind !== "var") return false;
    if (isWildcard(term.name)) return true;
    return !scope.vars.has(term.name) && this.#resolve(term.name, scope) === undefined;
  }

  /** Whether a pattern (array/object literal) holds variables that are not yet bound. */
  #hasUnbound(term: Term, scope: Scope): boolean {
    if (this.#isUnbound(term, scope)) return true;
    if (term.kind === "array") return term.items.some((t) => this.#hasUnbound(t, scope));
    if (term.kind === "object") return term.entries.some(([, v]) => this.#hasUnbound(v, scope));
    return false;
  }

  // ---- terms -------------------------------------------------------------------------------------

  #terms(terms: Term[], scope: Scope, k: (locals: Local[]) => void): void {
    const locals: Local[] = [];
    const step = (i: number) => {
      if (i === terms.length) return k(locals);
      this.#term(terms[i] as Term, scope, (l) => {
        locals.push(l);
        step(i + 1);
      });
    };
    step(0);
  }

  #term(term: Term, scope: Scope, k: (value: Local) => void): void {
    switch (term.kind) {
      case "null":
        k(this.#const("null"));
        return;
      case "boolean":
        k(this.#const(String(term.value)));
        return;
      case "number":
        k(this.#const(jsonNumber(term.text, term.loc)));
        return;
      case "string":
        k(this.#const(JSON.stringify(term.value)));
        return;
      case "var":
        this.#variable(term, scope, k);
        return;
      case "ref":
        this.#ref(term, scope, k);
        return;
      case "array":
        this.#terms(term.items, scope, (items) => k(this.#build("rt_array", "rt_array_append", items)));
        return;
      case "set":
        this.#terms(term.items, scope, (items) => k(this.#build("rt_set", "rt_set_add", items)));
        return;
      case "object": {
        this.#terms(term.entries.flat(), scope, (parts) => {
          const dst = this.#local();
          this.#emit({ op: "call", fn: "rt_object", args: [], dst });
          for (let i = 0; i < parts.length; i += 2) {
            this.#emit({ op: "call", fn: "rt_object_insert", args: [dst, parts[i] as Local, parts[i + 1] as Local] });
          }
          k(dst);
        });
        return;
      }
      case "call": {
        const target = this.#callee(term, scope);
        if (term.args.length > target.arity && term.name !== "print") {
          // Only an expression on its own may pass an output argument: `count(xs, n)`.
          throw new RegoError(
            "rego_type_error",
            `${term.name}: too many arguments: have ${term.args.length}, want ${target.arity}`,
            term.loc,
          );
        }
        this.#call(term, scope, target, term.args, k);
        return;
      }
      case "binary":
        this.#builtin(OPERATORS[term.op] as string, [term.left, term.right], scope, term.loc, k);
        return;
      case "unary":
        if (term.arg.kind === "number") {
          k(this.#const(jsonNumber(`-${term.arg.text}`, term.loc)));
          return;
        }
        throw new RegoError("rego_parse_error", "unary - can only be used with numeric literals", term.loc);
      case "membership":
        this.#builtin(
          term.key ? "internal.member_3" : "internal.member_2",
          term.key ? [term.key, term.value, term.collection] : [term.value, term.collection],
          scope,
          term.loc,
          k,
        );
        return;
      case "arraycomp":
      case "setcomp":
      case "objectcomp":
        this.#comprehension(term, scope, k);
        return;
    }
  }

  #variable(term: Extract<Term, { kind: "var" }>, scope: Scope, k: (value: Local) => void): void {
    const local = scope.vars.get(term.name);
    if (local !== undefined) {
      k(local);
      return;
    }
    const resolved = this.#resolve(term.name, scope);
    if (!resolved) throw new RegoError("rego_unsafe_var_error", `var ${displayName(term.name)} is unsafe`, term.loc);
    this.#document(resolved, [], scope, k);
  }

  #document(resolved: NonNullable<Resolved>, rest: Term[], scope: Scope, k: (value: Local) => void): void {
    const loc = rest[0]?.loc ?? { file: "", row: 0, col: 0 };
    const path = [...resolved.path.map((value) => ({ kind: "string" as const, value, loc })), ...rest];
    if (resolved.root === "data") {
      this.#data(path, scope, k);
      return;
    }
    const input = this.#local();
    this.#emit({ op: "global", dst: input, name: "input" });
    this.#path(input, path, 0, scope, k);
  }

  #ref(term: Extract<Term, { kind: "ref" }>, scope: Scope, k: (value: Local) => void): void {
    const head = term.head;
    if (head.kind === "var" && !scope.vars.has(head.name)) {
      const resolved = this.#resolve(head.name, scope);
      if (!resolved) throw new RegoError("rego_unsafe_var_error", `var ${displayName(head.name)} is unsafe`, head.loc);
      this.#document(resolved, term.path, scope, k);
      return;
    }
    this.#term(head, scope, (base) => this.#path(base, term.path, 0, scope, k));
  }

  /** Follows a reference's path from `base`: ground keys are lookups, unbound variables iterate. */
  #path(base: Local, path: Term[], i: number, scope: Scope, k: (value: Local) => void): void {
    if (i === path.length) {
      k(base);
      return;
    }
    const segment = path[i] as Term;
    if (this.#hasUnbound(segment, scope)) {
      if (segment.kind === "var") this.#declare(segment.name, scope);
      this.#scan(base, (key, value) =>
        this.#destructure(segment, key, scope, () => this.#path(value, path, i + 1, scope, k)),
      );
      return;
    }
    this.#term(segment, scope, (key) => {
      const dst = this.#local();
      this.#emit({ op: "call", fn: "rt_dot", args: [base, key], dst });
      this.#path(dst, path, i + 1, scope, k);
    });
  }

  /** A path into `data`: rules are called, packages become documents, the rest is base data. */
  #data(path: Term[], scope: Scope, k: (value: Local) => void): void {
    let node = this.#root;
    let i = 0;
    while (i < path.length) {
      const segment = path[i] as Term;
      const next = segment.kind === "string" ? node.children.get(segment.value) : undefined;
      if (!next) break;
      node = next;
      i++;
      if (node.group) {
        if (node.group.kind === "function") {
          throw unsupported(`reference to function ${pathKey(node.group.path)} without a call`, segment.loc);
        }
        const v = this.#local();
        this.#emit({ op: "callFunc", func: this.#ruleFunc(node.group), args: [], dst: v });
        if (node.children.size > 0) this.#mergeChildren(node, v);
        this.#path(v, path, i, scope, k);
        return;
      }
    }
    if (i < path.length && path[i]?.kind === "string") {
      // Below this point no rule exists: plain base data.
      const data = this.#local();
      this.#emit({ op: "global", dst: data, name: "data" });
      this.#path(data, path, 0, scope, k);
      return;
    }
    const v = this.#local();
    this.#emit({ op: "callFunc", func: this.#nodeFunc(node), args: [], dst: v });
    this.#path(v, path, i, scope, k);
  }

  #resolve(name: string, scope: Scope): Resolved {
    if (scope.declared.has(name) || isWildcard(name)) return undefined;
    if (name === "input" || name === "data") return { root: name, path: [] };
    // A rule of the package shadows an import of the same name.
    const pkg = scope.module.package;
    let node: DocNode | undefined = this.#root;
    for (const segment of [...pkg, name]) node = node?.children.get(segment);
    if (node?.group) return { root: "data", path: [...pkg, name] };
    for (const imp of scope.module.imports) {
      const path = staticPath(imp.path);
      if (!path || (path[0] !== "data" && path[0] !== "input")) continue;
      if ((imp.alias ?? path.at(-1)) === name) return { root: path[0] as "input" | "data", path: path.slice(1) };
    }
    if (node) return { root: "data", path: [...pkg, name] };
    return undefined;
  }

  #comprehension(
    term: Extract<Term, { kind: "arraycomp" | "setcomp" | "objectcomp" }>,
    scope: Scope,
    k: (value: Local) => void,
  ): void {
    const dst = this.#local();
    const fn = term.kind === "arraycomp" ? "rt_array" : term.kind === "setcomp" ? "rt_set" : "rt_object";
    this.#emit({ op: "call", fn, args: [], dst });
    this.#block(() => {
      const inner = scope.clone();
      this.#body(term.body, inner, () => {
        if (term.kind === "objectcomp") {
          this.#term(term.key, inner, (key) =>
            this.#term(term.value, inner, (value) =>
              this.#emit({ op: "call", fn: "rt_object_insert_unique", args: [dst, key, value] }),
            ),
          );
          return;
        }
        this.#term(term.term, inner, (v) =>
          this.#emit({ op: "call", fn: term.kind === "arraycomp" ? "rt_array_append" : "rt_set_add", args: [dst, v] }),
        );
      });
    });
    k(dst);
  }

  // ---- calls -------------------------------------------------------------------------------------

  #callee(term: Extract<Term, { kind: "call" }>, scope: Scope): { group?: RuleGroup; arity: number } {
    const parts = term.name.split(".");
    const candidates: string[][] = [];
    if (parts[0] === "data") candidates.push(parts);
    for (const imp of scope.module.imports) {
      const path = staticPath(imp.path);
      if (path?.[0] === "data" && (imp.alias ?? path.at(-1)) === parts[0])
        candidates.push([...path, ...parts.slice(1)]);
    }
    candidates.push(["data", ...scope.module.package, ...parts]);
    for (const candidate of candidates) {
      const group = this.#index.groups.get(pathKey(candidate));
      if (group?.kind === "function") return { group, arity: group.arity ?? 0 };
    }
    const arity = builtinArity(term.name);
    return { arity: typeof arity === "number" ? arity : term.args.length };
  }

  #call(
    term: Extract<Term, { kind: "call" }>,
    scope: Scope,
    target: { group?: RuleGroup; arity: number },
    args: Term[],
    k: (value: Local) => void,
  ): void {
    if (target.group) {
      const func = this.#ruleFunc(target.group);
      this.#terms(args, scope, (locals) => {
        const dst = this.#local();
        this.#emit({ op: "callFunc", func, args: locals, dst });
        k(dst);
      });
      return;
    }
    this.#builtin(term.name, args, scope, term.loc, k);
  }

  #builtin(name: string, args: Term[], scope: Scope, loc: Location, k: (value: Local) => void): void {
    if (name === "print") {
      k(this.#const("true"));
      return;
    }
    const native = this.#options.native.has(name);
    if (!native && !this.#options.host.has(name)) {
      throw unsupported(`built-in function ${name}`, loc);
    }
    this.#terms(args, scope, (locals) => {
      const dst = this.#local();
      if (native) this.#emit({ op: "call", fn: `b_${name.replaceAll(".", "_")}`, args: locals, dst });
      else {
        if (!this.#host.includes(name)) this.#host.push(name);
        this.#emit({ op: "host", name, args: locals, dst });
      }
      k(dst);
    });
  }

  // ---- emission helpers --------------------------------------------------------------------------

  #emit(stmt: Stmt): void {
    this.#out.push(stmt);
  }

  #into(body: Stmt[], fill: () => void): void {
    const saved = this.#out;
    const savedVars = this.#currentBodyVars;
    this.#out = body;
    try {
      fill();
    } finally {
      this.#out = saved;
      this.#currentBodyVars = savedVars;
    }
  }

  #block(fill: () => void, label?: string): void {
    const body: Stmt[] = [];
    this.#emit(label ? { op: "block", body, label } : { op: "block", body });
    this.#into(body, fill);
  }

  #scan(source: Local, fill: (key: Local, value: Local) => void): void {
    const key = this.#local();
    const value = this.#local();
    const body: Stmt[] = [];
    this.#emit({ op: "scan", source, key, value, body });
    this.#into(body, () => fill(key, value));
  }

  #local(): Local {
    return this.#locals++;
  }

  /** A new collection (`make`) holding `items` (added with `add`). */
  #build(make: string, add: string, items: Local[]): Local {
    const dst = this.#local();
    this.#emit({ op: "call", fn: make, args: [], dst });
    for (const item of items) this.#emit({ op: "call", fn: add, args: [dst, item] });
    return dst;
  }

  #label(): string {
    return `L${this.#labels++}`;
  }

  #const(json: string): Local {
    let index = this.#constantIndex.get(json);
    if (index === undefined) {
      index = this.#constants.length;
      this.#constants.push(json);
      this.#constantIndex.set(json, index);
    }
    const dst = this.#local();
    this.#emit({ op: "const", dst, index });
    return dst;
  }
}

// ---- helpers -------------------------------------------------------------------------------------

function emptyModule(): Module {
  return { file: "", package: [], imports: [], rules: [], v1: true };
}

function trueTerm(loc: Location): Term {
  return { kind: "boolean", value: true, loc };
}

function hasKeys(group: RuleGroup, staticLength: number): boolean {
  return group.rules.some((r) => refParts(r.head.ref).length > staticLength);
}

function unsupported(what: string, loc: Location | undefined): RegoError {
  return new RegoError("rego_compile_error", `unsupported: ${what} is not supported by Mandate's compiler`, loc);
}

function jsonNumber(text: string, loc: Location): string {
  // Rego numbers are JSON numbers; a leading "+" or "." form is normalised by JSON.parse's rules.
  if (!/^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(text)) {
    const n = Number(text);
    if (!Number.isFinite(n)) throw new RegoError("rego_parse_error", `invalid number ${text}`, loc);
    return String(n);
  }
  return text;
}

/** A variable, or an array/object literal whose values are patterns (keys may be any term). */
function isPattern(term: Term): boolean {
  if (term.kind === "var") return true;
  if (term.kind === "array") return term.items.every((t) => isPattern(t) || isConstant(t));
  if (term.kind === "object") return term.entries.every(([, v]) => isPattern(v) || isConstant(v));
  return false;
}

function isConstant(term: Term): boolean {
  switch (term.kind) {
    case "null":
    case "boolean":
    case "number":
    case "string":
      return true;
    case "array":
    case "set":
      return term.items.every(isConstant);
    case "object":
      return term.entries.every(([k, v]) => isConstant(k) && isConstant(v));
    default:
      return false;
  }
}

function isCollectionLiteral(term: Term): boolean {
  return term.kind === "array" || term.kind === "object" || term.kind === "set";
}

function canUnifyLiterals(a: Term, b: Term): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === "array" && b.kind === "array") return a.items.length === b.items.length;
  if (a.kind === "object" && b.kind === "object") {
    const ka = a.entries.map(([k]) => constantKey(k));
    const kb = b.entries.map(([k]) => constantKey(k));
    if (ka.some((k) => k === undefined) || kb.some((k) => k === undefined)) return true;
    return ka.length === kb.length && ka.every((k) => kb.includes(k));
  }
  return true;
}

function constantKey(term: Term): string | undefined {
  switch (term.kind) {
    case "string":
      return JSON.stringify(term.value);
    case "number":
      return String(Number(term.text));
    case "boolean":
      return String(term.value);
    case "null":
      return "null";
    default:
      return undefined;
  }
}

function sameConstantKeys(a: Extract<Term, { kind: "object" }>, b: Extract<Term, { kind: "object" }>): boolean {
  const ka = a.entries.map(([k]) => constantKey(k));
  const kb = b.entries.map(([k]) => constantKey(k));
  if (ka.some((k) => k === undefined) || kb.some((k) => k === undefined)) return false;
  return ka.length === kb.length && ka.every((k) => kb.includes(k));
}
