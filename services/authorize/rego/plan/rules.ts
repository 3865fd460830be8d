// Rules as planned functions: one per rule group (a function rule takes its arguments), memoised
// per evaluation unless it is a function. Every definition's branches feed the group's value — a
// set element, an object or tree entry, or the complete value (conflicts are the runtime's
// errors); else chains stop at the first branch with a solution; the default rule fills in when
// nothing else did.
import type { Literal, Rule, Term } from "../ast.ts";
import { pathKey, type RuleGroup, refParts } from "../check.ts";
import type { Local, Stmt } from "../ir.ts";
import { argNames } from "../vars.ts";
import { type FuncRef, type Planner, unsupported } from "./planner.ts";
import { declarePattern, Scope } from "./scope.ts";
import { isConstant, trueTerm } from "./term-shapes.ts";
import { isAffected, specialisedName } from "./with-context.ts";
import { EMPTY_CONTEXT } from "./with-mocks.ts";

/** One rule definition being planned into its group's value (`result`); `keys` are its head's dynamic keys. */
interface Definition {
  rule: Rule;
  group: RuleGroup;
  keys: Term[];
  result: Local;
}

/** A body and the value it gives: a rule's own, or an else clause's. */
interface Branch {
  body: Literal[];
  value: Term | undefined;
}

/**
 * The function computing a rule group's value; planned once, and once more per `with` context that
 * affects it (a copy planned in that context).
 */
export function ruleFunc(p: Planner, group: RuleGroup): FuncRef {
  const isFunction = group.kind === "function";
  const context = isAffected(p, group, p.context) ? p.context : EMPTY_CONTEXT;
  const name = specialisedName(`${isFunction ? "func" : "rule"}:${pathKey(group.path)}`, context);
  const params = isFunction ? (group.arity ?? 0) : 0;
  return p.define(name, params, !isFunction, (result) => planGroup(p, group, result), context);
}

function planGroup(p: Planner, group: RuleGroup, result: Local): void {
  const staticLength = group.path.length - 1 - group.module.package.length;
  if (group.kind === "partial_set" || group.kind === "partial_object") {
    const empty = group.kind === "partial_set" && !hasKeys(group, staticLength) ? "rt_set" : "rt_object";
    p.ir.emit({ op: "call", fn: empty, args: [], dst: result });
  }
  for (const rule of group.rules) {
    if (rule.default) planRefHeadDefault(p, rule, group, staticLength, result);
    else planRule(p, rule, group, staticLength, result);
  }
  planDefault(p, group, staticLength, result);
}

function hasKeys(group: RuleGroup, staticLength: number): boolean {
  return group.rules.some((r) => refParts(r.head.ref).length > staticLength);
}

/** OPA's default rule: only when no definition produced a value. */
function planDefault(p: Planner, group: RuleGroup, staticLength: number, result: Local): void {
  const fallback = group.default;
  if (!fallback || refParts(fallback.head.ref).length !== staticLength) return;
  p.ir.block(() => {
    p.ir.emit({ op: "checkZero", src: result });
    const value = fallback.head.value ?? trueTerm(fallback.loc);
    p.steps.term(p, value, new Scope(group.module), (v) => p.ir.emit({ op: "move", dst: result, src: v }));
  });
}

/** `default p["a"] := 1`: the key's value unless a definition gave one. */
function planRefHeadDefault(p: Planner, rule: Rule, group: RuleGroup, staticLength: number, result: Local): void {
  const keys = refParts(rule.head.ref).slice(staticLength);
  const scope = new Scope(group.module);
  p.ir.block(() => {
    p.steps.terms(p, keys, scope, (keyLocals) => {
      p.steps.term(p, rule.head.value ?? trueTerm(rule.loc), scope, (v) => {
        if (keyLocals.length !== 1) throw unsupported("default rules with nested reference heads", rule.loc);
        p.ir.emit({ op: "call", fn: "rt_object_insert_absent", args: [result, keyLocals[0] as Local, v] });
      });
    });
  });
}

/** One rule definition, with its else chain: each branch's solutions feed the group's value. */
function planRule(p: Planner, rule: Rule, group: RuleGroup, staticLength: number, result: Local): void {
  const definition: Definition = { rule, group, keys: refParts(rule.head.ref).slice(staticLength), result };
  const branches: Branch[] = rule.bodies.map((body) => ({ body, value: rule.head.value }));
  if (rule.elses.length === 0) {
    planBranches(p, definition, branches);
  } else {
    const elses = rule.elses.map((e): Branch => ({ body: e.body, value: e.value }));
    planElseChain(p, definition, [...branches, ...elses]);
  }
}

/** Without else, every branch contributes all of its solutions. */
function planBranches(p: Planner, definition: Definition, branches: Branch[]): void {
  const { rule, group, keys } = definition;
  // OPA's early exit: when every solution yields the same constant head, the first one is enough.
  const constantHead =
    group.kind !== "function" &&
    [...keys, rule.head.contains, rule.head.value].every((t) => t === undefined || isConstant(t));
  for (const branch of branches) {
    const label = p.ir.label();
    const exitEarly = () => {
      if (constantHead) p.ir.emit({ op: "br", label });
    };
    p.ir.block(() => planBranch(p, definition, branch, exitEarly), label);
  }
}

/** else: the first branch with a solution decides (all of its solutions must agree). */
function planElseChain(p: Planner, definition: Definition, branches: Branch[]): void {
  const hit = p.ir.local();
  const done = p.ir.label();
  p.ir.emit({ op: "flag", dst: hit, value: 0 });
  const outer: Stmt[] = [];
  p.ir.emit({ op: "block", body: outer, label: done });
  p.ir.into(outer, () => {
    for (const branch of branches) {
      p.ir.block(() => planBranch(p, definition, branch, () => p.ir.emit({ op: "flag", dst: hit, value: 1 })));
      p.ir.emit({ op: "brIf", src: hit, label: done });
    }
  });
}

/** A branch in a scope of its own: arguments bound, the body, then per solution its value added and `then`. */
function planBranch(p: Planner, definition: Definition, branch: Branch, then: () => void): void {
  const { rule, group } = definition;
  const scope = new Scope(group.module);
  const addSolution = () => {
    accumulate(p, definition, scope, branch.value);
    then();
  };
  bindArgs(p, rule, scope, () => p.steps.body(p, branch.body, scope, addSolution, argNames(rule)));
}

/** A function's arguments (locals 0…n-1) bound to, or matched against, its parameter patterns. */
function bindArgs(p: Planner, rule: Rule, scope: Scope, k: () => void): void {
  const params = rule.head.args ?? [];
  const step = (i: number) => {
    if (i === params.length) return k();
    declarePattern(params[i] as Term, scope);
    p.steps.destructure(p, params[i] as Term, i, scope, () => step(i + 1));
  };
  step(0);
}

/** Adds one solution to the group's value: a set element, an object or tree entry, or the complete value. */
function accumulate(p: Planner, definition: Definition, scope: Scope, value: Term | undefined): void {
  const { rule, group, keys: keyTerms, result } = definition;
  if (group.kind === "partial_set") {
    p.steps.terms(p, keyTerms, scope, (keys) =>
      p.steps.term(p, rule.head.contains as Term, scope, (element) => {
        if (keys.length === 0) p.ir.emit({ op: "call", fn: "rt_set_add", args: [result, element] });
        else treeInsert(p, result, keys, element, 1);
      }),
    );
    return;
  }
  p.steps.terms(p, keyTerms, scope, (keys) =>
    p.steps.term(p, value ?? trueTerm(rule.head.loc), scope, (v) => {
      if (keys.length > 0) treeInsert(p, result, keys, v, 0);
      else {
        const fn = group.kind === "function" ? "rt_merge_function" : "rt_merge_complete";
        p.ir.emit({ op: "call", fn, args: [result, v], dst: result });
      }
    }),
  );
}

/** A value at a key path (p.a[x].b := v); mode 1 adds to a set there, 0 sets the value. */
function treeInsert(p: Planner, result: Local, keys: Local[], leaf: Local, mode: 0 | 1): void {
  const path = p.ir.build("rt_array", "rt_array_append", keys);
  p.ir.emit({ op: "call", fn: "rt_tree_insert", args: [result, path, leaf], ints: [mode] });
}
