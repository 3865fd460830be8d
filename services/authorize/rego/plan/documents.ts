// Documents under `data`: an entrypoint is the document at its path; a package (or any path with
// rules below it) is a function building the base document with every rule below it merged in;
// a reference into `data` calls the rule it reaches, builds the package document, or reads plain
// base data where no rule lies below.
import type { Module, Term } from "../ast.ts";
import type { RuleGroup } from "../check.ts";
import type { Local } from "../ir.ts";
import type { Location } from "../lexer.ts";
import type { DocNode } from "./doc-tree.ts";
import { type FuncRef, functionAsValue, type Planner } from "./planner.ts";
import { Scope } from "./scope.ts";
import { isHidden, isReadAffected, specialisedName } from "./with-context.ts";
import { EMPTY_CONTEXT } from "./with-mocks.ts";

type Value = (value: Local) => void;

/** The function an entrypoint (`pkg/rule`, or "" for all of data) evaluates. */
export function entrypointFunc(p: Planner, name: string): string {
  const func = `entry:${name}`;
  const loc: Location = { file: "entrypoint", row: 1, col: 1 };
  const path = (name === "" ? [] : name.split("/")).map((value) => ({ kind: "string" as const, value, loc }));
  p.define(func, 0, false, (result) => {
    const scope = new Scope(p.index.modules[0] ?? emptyModule());
    p.ir.block(() => planData(p, path, scope, (v) => p.ir.emit({ op: "move", dst: result, src: v })));
  });
  return func;
}

function emptyModule(): Module {
  return { file: "", package: [], imports: [], rules: [], v1: true };
}

/**
 * A path into `data`: rules are called, packages become documents, the rest is base data (as is
 * everything at or below a path whose rules a `with` replaced: the replacement is in base data).
 */
export function planData(p: Planner, path: Term[], scope: Scope, k: Value): void {
  const { node, depth } = walkToRule(p.root, path);
  if (isHidden(p.context, node.path)) {
    planBaseData(p, path, scope, k);
  } else if (holdsRule(node)) {
    planRuleDocument(p, node, path, depth, scope, k);
  } else if (depth < path.length && path[depth]?.kind === "string") {
    // Below this point no rule exists: plain base data.
    planBaseData(p, path, scope, k);
  } else {
    const v = p.callFunc(nodeFunc(p, node), []);
    p.steps.path(p, v, path, depth, scope, k);
  }
}

function planBaseData(p: Planner, path: Term[], scope: Scope, k: Value): void {
  const data = p.ir.local();
  p.ir.emit({ op: "global", dst: data, name: "data" });
  p.steps.path(p, data, path, 0, scope, k);
}

/** Follows the path's leading constant strings down the document tree, stopping at the first rule. */
function walkToRule(root: DocNode, path: Term[]): { node: DocNode; depth: number } {
  let node = root;
  let depth = 0;
  while (depth < path.length && !node.group) {
    const segment = path[depth] as Term;
    const next = segment.kind === "string" ? node.children.get(segment.value) : undefined;
    if (!next) break;
    node = next;
    depth++;
  }
  return { node, depth };
}

type RuleNode = DocNode & { group: RuleGroup };

function holdsRule(node: DocNode): node is RuleNode {
  return node.group !== undefined;
}

/** A rule reached by a reference: its value (with rules below it merged in), then the rest of the path. */
function planRuleDocument(p: Planner, node: RuleNode, path: Term[], depth: number, scope: Scope, k: Value): void {
  const { group } = node;
  if (group.kind === "function") throw functionAsValue(group, (path[depth - 1] as Term).loc);
  const v = p.callFunc(p.steps.ruleFunc(p, group), []);
  if (node.children.size > 0) mergeChildren(p, node, v);
  p.steps.path(p, v, path, depth, scope, k);
}

/**
 * The function building the document at a node: its base data with every rule below merged in
 * (in a `with` context that affects it, a copy leaving out the rules the context replaced).
 */
function nodeFunc(p: Planner, node: DocNode): FuncRef {
  const context = isReadAffected(p, node.path, p.context) ? p.context : EMPTY_CONTEXT;
  const name = specialisedName(`doc:${["data", ...node.path].join(".")}`, context);
  const build = (result: Local) => {
    copyBaseDocument(p, node.path, result);
    for (const [key, child] of node.children) {
      if (child.group?.kind === "function" || isHidden(p.context, child.path)) continue;
      p.ir.block(() => {
        const v = p.callFunc(documentFunc(p, child), []);
        if (child.group && child.children.size > 0) mergeChildren(p, child, v);
        p.ir.emit({ op: "call", fn: "rt_object_merge_at", args: [result, p.ir.const(JSON.stringify(key)), v] });
      });
    }
  };
  return p.define(name, 0, true, build, context);
}

function documentFunc(p: Planner, node: DocNode): FuncRef {
  return node.group ? p.steps.ruleFunc(p, node.group) : nodeFunc(p, node);
}

/** The base document under `path`, copied into `result` for the rules to merge into. */
function copyBaseDocument(p: Planner, path: string[], result: Local): void {
  const data = p.ir.local();
  p.ir.emit({ op: "global", dst: data, name: "data" });
  const base = p.ir.local();
  p.ir.emit({ op: "move", dst: base, src: data });
  for (const segment of path) {
    const key = p.ir.const(JSON.stringify(segment));
    p.ir.emit({ op: "call", fn: "rt_dot", args: [base, key], dst: base, maybe: true });
  }
  p.ir.emit({ op: "call", fn: "rt_object_copy", args: [base], dst: result });
}

/** A rule whose path also has rules below it (p[x] := ... and p.q := ...): merges those in. */
function mergeChildren(p: Planner, node: DocNode, value: Local): void {
  for (const [key, child] of node.children) {
    if (isHidden(p.context, child.path)) continue;
    p.ir.block(() => {
      const v = p.callFunc(documentFunc(p, child), []);
      p.ir.emit({ op: "call", fn: "rt_object_merge_rule", args: [value, p.ir.const(JSON.stringify(key)), v] });
    });
  }
}
