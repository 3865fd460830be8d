// Stage 3 (first part) of the Rego compiler: the rule index and the structural checks OPA's
// compiler makes before planning — import conflicts, rule kinds that conflict at one path, default
// rules, shadowing of input/data, and recursion between rules. Every problem found is reported
// (OPA reports them all), each as a positioned RegoError; unsafe-variable analysis comes next.
import type { Literal, Module, Rule, Term } from "./ast.ts";
import { builtinArity } from "./builtins.ts";
import { RegoError } from "./lexer.ts";

export type RuleKind = "complete" | "partial_set" | "partial_object" | "function";

/** All definitions of one rule path, e.g. data.authz.allow. */
export interface RuleGroup {
  /** The full path: ["data", "authz", "allow"]. */
  path: string[];
  kind: RuleKind;
  rules: Rule[];
  default: Rule | undefined;
  /** Head refs of the group's default rules, to refuse two defaults for the same key. */
  defaultKeys: Set<string>;
  /** Function arity, for functions. */
  arity: number | undefined;
  module: Module;
}

export interface RuleIndex {
  groups: Map<string, RuleGroup>;
  modules: Module[];
}

export class RegoCompileErrors extends Error {
  readonly errors: RegoError[];
  constructor(errors: RegoError[]) {
    super(errors.map((e) => e.message).join("\n"));
    this.name = "RegoCompileErrors";
    this.errors = errors;
  }
}

export function checkModules(modules: Module[]): RuleIndex {
  const errors: RegoError[] = [];
  for (const module of modules) checkImports(module, errors);
  const groups = indexRules(modules, errors);
  for (const module of modules) checkShadowing(module, errors);
  checkRecursion(groups, errors);
  for (const module of modules) checkCalls(module, groups, errors);
  if (errors.length > 0) throw new RegoCompileErrors(errors);
  return { groups, modules };
}

export const pathKey = (path: string[]): string => path.join(".");

// ---- imports -------------------------------------------------------------------------------------

function checkImports(module: Module, errors: RegoError[]): void {
  const names = new Map<string, string>();
  let keywordImport: string | undefined;
  for (const imp of module.imports) {
    const path = staticPath(imp.path) ?? [];
    const root = path[0];
    if (root === "rego" || root === "future") {
      // rego.v1 includes every future keyword: it conflicts with any other keyword import (or itself).
      const isRego = root === "rego";
      if (keywordImport && (isRego || keywordImport === "rego")) {
        errors.push(new RegoError("rego_compile_error", "this import shadows previous import", imp.loc));
      }
      keywordImport = keywordImport === "rego" || isRego ? "rego" : "future";
      continue;
    }
    const name = imp.alias ?? path.at(-1) ?? "";
    if (names.has(name)) {
      errors.push(new RegoError("rego_compile_error", `import must not shadow ${names.get(name)}`, imp.loc));
    }
    names.set(name, path.join("."));
  }
}

// ---- the rule index ------------------------------------------------------------------------------

function ruleKind(rule: Rule): { kind: RuleKind; staticPath: string[] } {
  const { head } = rule;
  const parts = refParts(head.ref);
  // The static prefix names the rule; a variable (or non-string) key after it makes an object rule.
  const firstDynamic = parts.findIndex((p) => p.kind !== "string");
  const staticPart = (firstDynamic < 0 ? parts : parts.slice(0, firstDynamic)).map((p) =>
    p.kind === "string" ? p.value : "",
  );
  if (head.args) return { kind: "function", staticPath: staticPart };
  if (head.contains) return { kind: "partial_set", staticPath: staticPart };
  if (firstDynamic >= 0) return { kind: "partial_object", staticPath: staticPart };
  return { kind: "complete", staticPath: staticPart };
}

function indexRules(modules: Module[], errors: RegoError[]): Map<string, RuleGroup> {
  const groups = new Map<string, RuleGroup>();
  for (const module of modules) {
    for (const rule of module.rules) {
      const { kind, staticPath: local } = ruleKind(rule);
      const path = ["data", ...module.package, ...local];
      const key = pathKey(path);
      if (rule.default) checkDefault(rule, errors);
      let group = groups.get(key);
      if (!group) {
        group = {
          path,
          kind,
          rules: [],
          default: undefined,
          defaultKeys: new Set(),
          arity: rule.head.args?.length,
          module,
        };
        groups.set(key, group);
      } else if (
        group.kind !== kind &&
        !(rule.default && group.kind === "complete") &&
        !(group.rules.length === 0 && group.default)
      ) {
        errors.push(new RegoError("rego_type_error", `conflicting rules ${key} found`, rule.loc));
        continue;
      } else if (kind === "function" && group.arity !== rule.head.args?.length) {
        errors.push(new RegoError("rego_type_error", `conflicting rules ${key} found`, rule.loc));
        continue;
      }
      if (group.rules.length === 0 && group.default && !rule.default) group.kind = kind;
      if (rule.default) {
        // Defaults of ref-head rules are per key (default p["a"] := 1; default p["b"] := 2).
        const headKey = JSON.stringify(refParts(rule.head.ref).map(constantOf));
        if (group.defaultKeys.has(headKey)) {
          errors.push(new RegoError("rego_type_error", `multiple default rules ${key} found`, rule.loc));
          continue;
        }
        group.defaultKeys.add(headKey);
        group.default ??= rule;
        if (headKey !== JSON.stringify(local)) group.rules.push(rule);
      } else group.rules.push(rule);
    }
  }
  // A rule path may not also be the prefix of another rule's path with a value (data.p := 1, data.p.q := 2).
  const keys = [...groups.keys()].sort();
  for (let i = 0; i + 1 < keys.length; i++) {
    const a = keys[i] as string;
    const b = keys[i + 1] as string;
    const group = groups.get(a) as RuleGroup;
    if (b.startsWith(`${a}.`) && group.kind !== "partial_object") {
      errors.push(
        new RegoError(
          "rego_type_error",
          `rule ${a} conflicts with rule ${b}`,
          group.rules[0]?.loc ?? group.default?.loc,
        ),
      );
    }
  }
  return groups;
}

/** OPA: a default value must be ground — no variables or references (calls and comprehensions may compute it). */
function checkDefault(rule: Rule, errors: RegoError[]): void {
  const value = rule.head.value;
  if (!value) return;
  const bad = findTerm(
    value,
    (t) => t.kind === "var" || t.kind === "ref" || t.kind === "binary" || t.kind === "membership",
    true,
  );
  if (bad) {
    const kind =
      bad.kind === "binary"
        ? ["+", "-", "*", "/", "%"].includes(bad.op)
          ? "arithexpr"
          : ["|", "&"].includes(bad.op)
            ? "binexpr"
            : "boolexpr"
        : bad.kind;
    errors.push(new RegoError("rego_type_error", `invalid \`${kind}\` in default value`, bad.loc));
  }
}

// ---- shadowing -----------------------------------------------------------------------------------

/** Rego v1 (and v0 modules importing rego.v1) forbids declaring variables named input or data. */
function checkShadowing(module: Module, errors: RegoError[]): void {
  const strict = module.v1 || module.imports.some((i) => staticPath(i.path)?.join(".") === "rego.v1");
  if (!strict) return;
  for (const rule of module.rules) {
    const name =
      rule.head.ref.kind === "var"
        ? rule.head.ref.name
        : rule.head.ref.kind === "ref" && rule.head.ref.head.kind === "var"
          ? rule.head.ref.head.name
          : undefined;
    if (name === "input" || name === "data") {
      errors.push(new RegoError("rego_compile_error", `${name} cannot be shadowed`, rule.loc));
    }
    for (const body of [...rule.bodies, ...rule.elses.map((e) => e.body)]) {
      walkLiterals(body, (literal) => {
        const declared: Term[] = [];
        if (literal.kind === "unify" && literal.assign) declared.push(...varsIn(literal.left));
        if (literal.kind === "some") declared.push(...literal.vars);
        if (literal.kind === "somein" || literal.kind === "every") {
          if (literal.key) declared.push(...varsIn(literal.key));
          declared.push(...varsIn(literal.value));
        }
        for (const v of declared) {
          if (v.kind === "var" && (v.name === "input" || v.name === "data")) {
            errors.push(new RegoError("rego_compile_error", `${v.name} cannot be shadowed`, v.loc));
          }
        }
      });
    }
  }
}

// ---- calls ---------------------------------------------------------------------------------------

/**
 * Every call names a built-in or a function rule, with its number of arguments, or one more (the
 * extra one receives the result, as in `count(xs, n)`). Anything else is refused at compile time.
 */
function checkCalls(module: Module, groups: Map<string, RuleGroup>, errors: RegoError[]): void {
  const pkg = ["data", ...module.package];
  const aliases = new Map<string, string[]>();
  for (const imp of module.imports) {
    const path = staticPath(imp.path);
    if (path && path[0] === "data") aliases.set(imp.alias ?? (path.at(-1) as string), path);
  }
  for (const rule of module.rules) {
    for (const term of allTerms(rule)) {
      if (term.kind !== "call") continue;
      const parts = term.name.split(".");
      const candidates = [
        parts[0] === "data" ? parts : undefined,
        aliases.has(parts[0] as string)
          ? [...(aliases.get(parts[0] as string) as string[]), ...parts.slice(1)]
          : undefined,
        [...pkg, ...parts],
      ];
      const group = candidates.map((c) => (c ? groups.get(pathKey(c)) : undefined)).find((g) => g !== undefined);
      let arity: number | "variadic" | undefined;
      if (group) {
        arity = group.kind === "function" ? (group.arity as number) : undefined;
        if (arity === undefined) {
          errors.push(new RegoError("rego_type_error", `${term.name} is not a function`, term.loc));
          continue;
        }
      } else arity = builtinArity(term.name);
      if (arity === undefined) {
        errors.push(new RegoError("rego_type_error", `undefined function ${term.name}`, term.loc));
        continue;
      }
      if (arity !== "variadic" && term.args.length !== arity && term.args.length !== arity + 1) {
        errors.push(
          new RegoError(
            "rego_type_error",
            `${term.name}: arity mismatch: have ${term.args.length} argument(s), want ${arity}`,
            term.loc,
          ),
        );
      }
    }
  }
}

// ---- recursion -----------------------------------------------------------------------------------

function checkRecursion(groups: Map<string, RuleGroup>, errors: RegoError[]): void {
  const edges = new Map<string, Set<string>>();
  for (const [key, group] of groups) {
    const targets = new Set<string>();
    const local = new Set<string>();
    const aliases = new Map<string, string[]>();
    for (const imp of group.module.imports) {
      const path = staticPath(imp.path);
      if (path && path[0] === "data") aliases.set(imp.alias ?? (path.at(-1) as string), path);
    }
    const pkg = ["data", ...group.module.package];
    for (const rule of [...group.rules, ...(group.default ? [group.default] : [])]) {
      for (const arg of rule.head.args ?? []) for (const v of varsIn(arg)) if (v.kind === "var") local.add(v.name);
      for (const literal of allLiterals(rule)) {
        if (literal.kind === "somein" || literal.kind === "every") {
          for (const t of [literal.key, literal.value])
            if (t) for (const v of varsIn(t)) if (v.kind === "var") local.add(v.name);
        }
        if (literal.kind === "unify" && literal.assign)
          for (const v of varsIn(literal.left)) if (v.kind === "var") local.add(v.name);
        if (literal.kind === "some") for (const v of literal.vars) if (v.kind === "var") local.add(v.name);
      }
      for (const term of allTerms(rule)) {
        const path = referencedPath(term, pkg, aliases, local);
        if (!path) continue;
        // The longest rule path that the reference reaches.
        for (let n = path.length; n > 1; n--) {
          const target = pathKey(path.slice(0, n));
          if (groups.has(target)) {
            targets.add(target);
            break;
          }
        }
      }
    }
    edges.set(key, targets);
  }
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const reported = new Set<string>();
  const visit = (node: string): void => {
    if (state.get(node) === "done") return;
    if (state.get(node) === "visiting") {
      const cycle = [...stack.slice(stack.indexOf(node)), node];
      const first = cycle[0] as string;
      if (!reported.has(first)) {
        reported.add(first);
        const group = groups.get(first) as RuleGroup;
        errors.push(
          new RegoError(
            "rego_recursion_error",
            `rule ${first} is recursive: ${cycle.join(" -> ")}`,
            group.rules[0]?.loc ?? group.default?.loc,
          ),
        );
      }
      return;
    }
    state.set(node, "visiting");
    stack.push(node);
    for (const next of edges.get(node) ?? []) visit(next);
    stack.pop();
    state.set(node, "done");
  };
  for (const key of edges.keys()) visit(key);
}

/** The data path a term refers to: `data.a.b`, a rule of the same package by name, or an import alias. */
function referencedPath(
  term: Term,
  pkg: string[],
  aliases: Map<string, string[]>,
  local: Set<string>,
): string[] | undefined {
  const head = term.kind === "ref" ? term.head : term.kind === "call" ? term.nameRef : term;
  if (term.kind === "call") {
    const parts = term.name.split(".");
    if (parts[0] === "data") return parts;
    const alias = aliases.get(parts[0] as string);
    if (alias) return [...alias, ...parts.slice(1)];
    return [...pkg, ...parts];
  }
  if (head.kind !== "var") return undefined;
  const rest = term.kind === "ref" ? term.path : [];
  const staticRest: string[] = [];
  for (const p of rest) {
    if (p.kind !== "string") break;
    staticRest.push(p.value);
  }
  if (head.name === "data") return ["data", ...staticRest];
  if (local.has(head.name) || head.name === "input") return undefined;
  const alias = aliases.get(head.name);
  if (alias) return [...alias, ...staticRest];
  return [...pkg, head.name, ...staticRest];
}

// ---- AST walking ---------------------------------------------------------------------------------

export function refParts(ref: Term): Term[] {
  if (ref.kind === "ref") {
    const head =
      ref.head.kind === "var" ? [{ kind: "string" as const, value: ref.head.name, loc: ref.head.loc }] : [ref.head];
    return [...head, ...ref.path];
  }
  if (ref.kind === "var") return [{ kind: "string", value: ref.name, loc: ref.loc }];
  return [ref];
}

function constantOf(term: Term): unknown {
  switch (term.kind) {
    case "string":
      return term.value;
    case "boolean":
      return term.value;
    case "number":
      return Number(term.text);
    case "null":
      return null;
    default:
      return { dynamic: term.kind };
  }
}

export function staticPath(term: Term): string[] | undefined {
  const parts = refParts(term);
  if (parts.some((p) => p.kind !== "string")) return undefined;
  return parts.map((p) => (p as { value: string }).value);
}

function allLiterals(rule: Rule): Literal[] {
  const out: Literal[] = [];
  for (const body of [...rule.bodies, ...rule.elses.map((e) => e.body)]) walkLiterals(body, (l) => out.push(l));
  return out;
}

function walkLiterals(body: Literal[], visit: (literal: Literal) => void): void {
  for (const literal of body) {
    visit(literal);
    if (literal.kind === "every") walkLiterals(literal.body, visit);
    for (const term of literalTerms(literal)) {
      findTerm(term, (t) => {
        if (t.kind === "arraycomp" || t.kind === "setcomp" || t.kind === "objectcomp") walkLiterals(t.body, visit);
        return false;
      });
    }
  }
}

function literalTerms(literal: Literal): Term[] {
  switch (literal.kind) {
    case "expr":
      return [literal.expr, ...literal.with.flatMap((w) => [w.target, w.value])];
    case "unify":
      return [literal.left, literal.right, ...literal.with.flatMap((w) => [w.target, w.value])];
    case "some":
      return literal.vars;
    case "somein":
      return [...(literal.key ? [literal.key] : []), literal.value, literal.collection];
    case "every":
      return [...(literal.key ? [literal.key] : []), literal.value, literal.domain];
  }
}

function allTerms(rule: Rule): Term[] {
  const out: Term[] = [];
  const collect = (t: Term) => {
    findTerm(t, (x) => {
      out.push(x);
      return false;
    });
  };
  const { head } = rule;
  for (const t of [head.value, head.contains, ...(head.args ?? [])]) if (t) collect(t);
  if (head.ref.kind === "ref") for (const p of head.ref.path) collect(p);
  for (const e of rule.elses) if (e.value) collect(e.value);
  for (const literal of allLiterals(rule)) for (const t of literalTerms(literal)) collect(t);
  return out;
}

/** Depth-first search over a term and its sub-terms (not into comprehension bodies). */
export function findTerm(term: Term, match: (t: Term) => boolean, skipComprehensions = false): Term | undefined {
  if (skipComprehensions && (term.kind === "arraycomp" || term.kind === "setcomp" || term.kind === "objectcomp"))
    return undefined;
  if (match(term)) return term;
  const children: Term[] = [];
  switch (term.kind) {
    case "ref":
      children.push(term.head, ...term.path);
      break;
    case "array":
    case "set":
      children.push(...term.items);
      break;
    case "object":
      for (const [k, v] of term.entries) children.push(k, v);
      break;
    case "call":
      children.push(...term.args);
      break;
    case "binary":
      children.push(term.left, term.right);
      break;
    case "unary":
      children.push(term.arg);
      break;
    case "membership":
      children.push(...(term.key ? [term.key] : []), term.value, term.collection);
      break;
    case "arraycomp":
    case "setcomp":
      children.push(term.term);
      break;
    case "objectcomp":
      children.push(term.key, term.value);
      break;
    default:
      break;
  }
  for (const child of children) {
    const found = findTerm(child, match, skipComprehensions);
    if (found) return found;
  }
  return undefined;
}

export function varsIn(term: Term): Term[] {
  const out: Term[] = [];
  findTerm(term, (t) => {
    if (t.kind === "var") out.push(t);
    return false;
  });
  return out;
}
