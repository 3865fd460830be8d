// What a `with` names, resolved as OPA's compiler does (rewriteWithModifiers, validateWith): its
// target is input or a path under data (a base document, a rule or package, or a function), or a
// built-in; a mock's value is a function, a built-in, a document, a constant or any other value.
// OPA's compile errors for targets it refuses are raised here, with OPA's messages.
import type { Literal, Module, Term, With } from "../ast.ts";
import { builtinArity } from "../builtins.ts";
import { pathKey, type RuleGroup, staticPath } from "../check.ts";
import { RegoError } from "../lexer.ts";
import { declaredBy } from "../vars.ts";
import type { DocNode } from "./doc-tree.ts";
import { type Planner, unsupported } from "./planner.ts";
import type { Scope } from "./scope.ts";
import { isConstant } from "./term-shapes.ts";
import type { Mock } from "./with-mocks.ts";

export type WithTarget =
  /** input, or a path under data; `hides` when rules lie at or below it (they are not evaluated). */
  | { kind: "document"; root: "input" | "data"; path: string[]; hides: boolean }
  /** A function (key: its path) or a built-in (key: its name), and the arity a mock must have. */
  | { kind: "mock"; key: string; arity: number };

/** Built-ins a `with` may not replace, as OPA's validateWithBuiltinTarget. */
const IRREPLACEABLE = new Set(["eq", "rego.metadata.chain", "rego.metadata.rule"]);
const RELATIONS = new Set(["walk"]);
const VOID = new Set(["print"]);

/** What a `with` replaces; a local variable (in `scope`) is no target, even named like a built-in. */
export function withTarget(p: Planner, w: With, module: Module, scope?: Scope): WithTarget {
  const path = namePath(w.target);
  if (!path) throw invalidTarget(w);
  const [head, ...rest] = path as [string, ...string[]];
  if (head !== "input" && (scope?.vars.has(head) || scope?.declared.has(head))) throw invalidTarget(w);
  const resolved = head === "input" || head === "data" ? { root: head, path: [] } : p.resolveInModule(head, module);
  if (resolved?.root === "input") {
    return { kind: "document", root: "input", path: [...resolved.path, ...rest], hides: false };
  }
  if (resolved) return dataTarget(p, w, [...resolved.path, ...rest]);
  return builtinTarget(w, path.join("."));
}

/** A var or a reference of constant strings (`data.a.b`, `time.now_ns`), as its names. */
function namePath(term: Term): string[] | undefined {
  if (term.kind === "var") return [term.name];
  if (term.kind !== "ref" || term.head.kind !== "var") return undefined;
  return staticPath(term);
}

function invalidTarget(w: With): RegoError {
  return new RegoError(
    "rego_type_error",
    "with keyword target must reference existing input, data, or a function",
    w.target.loc,
  );
}

function dataTarget(p: Planner, w: With, path: string[]): WithTarget {
  let node: DocNode | undefined = p.root;
  for (const [i, segment] of path.entries()) {
    node = node.children.get(segment);
    if (!node) break;
    if (node.group && i < path.length - 1) {
      throw new RegoError(
        "rego_compile_error",
        "with keyword cannot partially replace virtual document(s)",
        w.target.loc,
      );
    }
  }
  const group = node?.group;
  if (group?.kind === "function") return { kind: "mock", key: pathKey(group.path), arity: group.arity ?? 0 };
  return { kind: "document", root: "data", path, hides: node !== undefined };
}

function builtinTarget(w: With, name: string): WithTarget {
  const replacing = "with keyword replacing built-in function";
  const refuse = (message: string) => new RegoError("rego_compile_error", `${replacing}: ${message}`, w.target.loc);
  if (IRREPLACEABLE.has(name)) throw refuse(`replacement of ${JSON.stringify(name)} invalid`);
  const arity = builtinArity(name);
  if (arity === undefined) throw invalidTarget(w);
  if (name.startsWith("internal.")) throw refuse(`replacement of internal function ${JSON.stringify(name)} invalid`);
  if (RELATIONS.has(name)) throw refuse("target must not be a relation");
  if (VOID.has(name) || arity === "variadic") throw refuse("target must not be a void function");
  return { kind: "mock", key: name, arity };
}

/**
 * Built-ins named as a mock's value (`with count as object.union_n`) are no variables: before the
 * safety stage reads a body, such a value is replaced by a marker term holding the built-in's name.
 */
const builtinValues = new WeakMap<Term, string>();

export function markBuiltinValues(p: Planner, literals: Literal[], scope: Scope): Literal[] {
  if (!literals.some((l) => (l.kind === "expr" || l.kind === "unify") && l.with.length > 0)) return literals;
  // A declared or bound variable (`:=`, `some`, an argument) named like a built-in is that variable
  // (OPA renames declared variables before it reads `with` values).
  const declared = new Set([
    ...scope.declared,
    ...scope.vars.keys(),
    ...literals.flatMap(declaredBy).map((v) => v.name),
  ]);
  return literals.map((literal) => {
    if ((literal.kind !== "expr" && literal.kind !== "unify") || literal.with.length === 0) return literal;
    let changed = false;
    const withs = literal.with.map((w) => {
      const name = builtinValueName(p, w, scope.module, declared);
      if (name === undefined) return w;
      changed = true;
      const marker: Term = { kind: "string", value: name, loc: w.value.loc };
      builtinValues.set(marker, name);
      return { ...w, value: marker };
    });
    return changed ? { ...literal, with: withs } : literal;
  });
}

/** The built-in a mock's value names: a name no declared variable, rule or import claims (OPA resolves those first). */
function builtinValueName(p: Planner, w: With, module: Module, declared: Set<string>): string | undefined {
  const path = namePath(w.value);
  if (!path || builtinArity(path.join(".")) === undefined) return undefined;
  if (declared.has(path[0] as string) || p.resolveInModule(path[0] as string, module)) return undefined;
  let target: WithTarget;
  try {
    target = withTarget(p, w, module);
  } catch {
    return undefined; // the planner reports the target's error
  }
  return target.kind === "mock" ? path.join(".") : undefined;
}

/**
 * What replaces a mocked function or built-in: a function or built-in (whose arity must match the
 * target's), a rule or package document (evaluated at each call), a constant, or — `dynamic` — a
 * value computed at the `with` (a variable, a comprehension, base data).
 */
export function mockValue(p: Planner, w: With, target: WithTarget & { kind: "mock" }, scope: Scope): Mock | "dynamic" {
  const builtin = builtinValues.get(w.value);
  if (builtin !== undefined) {
    if (RELATIONS.has(builtin)) throw unsupported(`replacing a function by the relation ${builtin}`, w.value.loc);
    checkArity(w, target, builtinArity(builtin));
    return { kind: "builtin", name: builtin };
  }
  if (isConstant(w.value)) return { kind: "constant", term: w.value };
  const documentPath = valueDocument(p, w.value, scope);
  const node = documentPath && nodeAt(p.root, documentPath);
  if (!documentPath || !node) return "dynamic";
  if (node.group?.kind === "function") {
    checkArity(w, target, node.group.arity ?? 0);
    return { kind: "function", group: node.group };
  }
  return { kind: "document", path: documentPath };
}

/** The data path a value names (a rule, import or `data.…` reference of constant strings). */
function valueDocument(p: Planner, value: Term, scope: Scope): string[] | undefined {
  const path = namePath(value);
  if (!path) return undefined;
  const resolved = p.resolve(path[0] as string, scope);
  if (resolved?.root !== "data") return undefined;
  return [...resolved.path, ...path.slice(1)];
}

function nodeAt(root: DocNode, path: string[]): DocNode | undefined {
  let node: DocNode | undefined = root;
  for (const segment of path) node = node?.children.get(segment);
  return node;
}

function checkArity(w: With, target: { key: string; arity: number }, arity: number | "variadic" | undefined): void {
  if (arity === target.arity) return;
  const name = target.key;
  throw new RegoError(
    "rego_type_error",
    `${name}: arity mismatch: have ${typeof arity === "number" ? arity : "any number of"} argument(s), want ${target.arity}`,
    w.loc,
  );
}

/** The function a value names, if it names one (no value: a function is only called or mocked). */
export function isFunctionDocument(p: Planner, value: Term, scope: Scope): RuleGroup | undefined {
  const path = valueDocument(p, value, scope);
  const group = path && nodeAt(p.root, path)?.group;
  return group?.kind === "function" ? group : undefined;
}
