// The `data` document as the planner sees it: a tree of package and rule paths, each node holding
// the rule group defined at its path. References into `data` walk it; names in a module resolve
// against it.
import type { Module } from "../ast.ts";
import { type RuleGroup, type RuleIndex, staticPath } from "../check.ts";

export interface DocNode {
  path: string[];
  children: Map<string, DocNode>;
  group: RuleGroup | undefined;
}

/** Where a name in a query points: a document (input / data) path; undefined for a local variable. */
export type Resolved = { root: "input" | "data"; path: string[] } | undefined;

export function documentTree(index: RuleIndex): DocNode {
  const root: DocNode = { path: [], children: new Map(), group: undefined };
  for (const group of index.groups.values()) nodeAt(root, group.path.slice(1)).group = group;
  // Packages without rules are still documents (an empty object).
  for (const module of index.modules) nodeAt(root, module.package);
  return root;
}

/** The node at `path` below `node`, created on the way. */
function nodeAt(node: DocNode, path: string[]): DocNode {
  let current = node;
  for (const segment of path) {
    let next = current.children.get(segment);
    if (!next) {
      next = { path: [...current.path, segment], children: new Map(), group: undefined };
      current.children.set(segment, next);
    }
    current = next;
  }
  return current;
}

/** A name in a module: input, data, a rule of its package, an import, or a package below it. */
export function resolveName(root: DocNode, module: Module, name: string): Resolved {
  if (name === "input" || name === "data") return { root: name, path: [] };
  const pkg = module.package;
  let node: DocNode | undefined = root;
  for (const segment of [...pkg, name]) node = node?.children.get(segment);
  // A rule of the package shadows an import of the same name.
  if (node?.group) return { root: "data", path: [...pkg, name] };
  return importedAs(module, name) ?? (node ? { root: "data", path: [...pkg, name] } : undefined);
}

function importedAs(module: Module, name: string): Resolved {
  for (const imp of module.imports) {
    const path = staticPath(imp.path);
    if (!path || (path[0] !== "data" && path[0] !== "input")) continue;
    if ((imp.alias ?? path.at(-1)) === name) return { root: path[0], path: path.slice(1) };
  }
  return undefined;
}

/** Whether a path under `data` reaches a rule, or lies above one. */
export function touchesRules(root: DocNode, path: string[]): boolean {
  let node = root;
  for (const segment of path) {
    const next = node.children.get(segment);
    if (!next) return false;
    if (next.group) return true;
    node = next;
  }
  return true;
}
