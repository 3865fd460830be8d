// Stage 3 (first part) of the Rego compiler: the rule index and the structural checks OPA's
// compiler makes before planning — import conflicts, rule kinds that conflict at one path, default
// rules, shadowing of input/data, and recursion between rules. Every problem found is reported
// (OPA reports them all), each as a positioned RegoError; unsafe-variable analysis comes next.
import { type Import, type Literal, type Module, type Rule, subterms, type Term, type TermOf } from "./ast.ts";
import { ANY, builtinSignature, formatNamed, formatType, literalType, termText } from "./builtin-types.ts";
import { builtinArity } from "./builtins.ts";
import { RegoError } from "./lexer.ts";
import { isComprehension } from "./vars.ts";

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
  let keywordImport: "rego" | "future" | undefined;
  for (const imp of module.imports) {
    const path = staticPath(imp.path) ?? [];
    const root = path[0];
    if (root === "rego" || root === "future") {
      keywordImport = checkKeywordImport(root, keywordImport, imp, errors);
      continue;
    }
    const name = imp.alias ?? path.at(-1) ?? "";
    if (names.has(name)) {
      errors.push(new RegoError("rego_compile_error", `import must not shadow ${names.get(name)}`, imp.loc));
    }
    names.set(name, path.join("."));
  }
}

/** rego.v1 includes every future keyword: it conflicts with any other keyword import (or itself). */
function checkKeywordImport(
  root: "rego" | "future",
  previous: "rego" | "future" | undefined,
  imp: Import,
  errors: RegoError[],
): "rego" | "future" {
  const isRego = root === "rego";
  if (previous && (isRego || previous === "rego")) {
    errors.push(new RegoError("rego_compile_error", "this import shadows previous import", imp.loc));
  }
  return previous === "rego" || isRego ? "rego" : "future";
}

/** Imports of `data` documents, by the name they are imported as. */
function dataImports(module: Module): Map<string, string[]> {
  const aliases = new Map<string, string[]>();
  for (const imp of module.imports) {
    const path = staticPath(imp.path);
    if (path && path[0] === "data") aliases.set(imp.alias ?? (path.at(-1) as string), path);
  }
  return aliases;
}

/**
 * The rule paths a called name may refer to, in OPA's order: a `data.` path, a name imported from
 * `data`, a rule of the caller's package.
 */
export function callCandidates(name: string, module: Module): string[][] {
  const parts = name.split(".");
  const imported = dataImports(module).get(parts[0] as string);
  return [
    ...(parts[0] === "data" ? [parts] : []),
    ...(imported ? [[...imported, ...parts.slice(1)]] : []),
    ["data", ...module.package, ...parts],
  ];
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
  for (const module of modules) for (const rule of module.rules) addRule(groups, module, rule, errors);
  checkPrefixConflicts(groups, errors);
  return groups;
}

function addRule(groups: Map<string, RuleGroup>, module: Module, rule: Rule, errors: RegoError[]): void {
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
  } else if (conflicts(group, kind, rule)) {
    errors.push(new RegoError("rego_type_error", `conflicting rules ${key} found`, rule.loc));
    return;
  }
  // A group holding only a default takes the kind of the first rule it defaults.
  if (group.rules.length === 0 && group.default && !rule.default) group.kind = kind;
  if (rule.default) addDefault(group, rule, local, errors);
  else group.rules.push(rule);
}

/** Rules of another kind at one path (a default may come before the rules it defaults), or functions of another arity. */
function conflicts(group: RuleGroup, kind: RuleKind, rule: Rule): boolean {
  const defaultFirst = (rule.default && group.kind === "complete") || (group.rules.length === 0 && group.default);
  if (group.kind !== kind && !defaultFirst) return true;
  return kind === "function" && group.arity !== rule.head.args?.length;
}

function addDefault(group: RuleGroup, rule: Rule, local: string[], errors: RegoError[]): void {
  // Defaults of ref-head rules are per key (default p["a"] := 1; default p["b"] := 2).
  const headKey = JSON.stringify(refParts(rule.head.ref).map(constantOf));
  if (group.defaultKeys.has(headKey)) {
    const first = group.default?.loc;
    const at = [first, rule.loc].map((l) => `${l?.file}:${l?.row}`).join(", ");
    errors.push(
      new RegoError("rego_type_error", `multiple default rules ${pathKey(group.path)} found at ${at}`, first),
    );
    return;
  }
  group.defaultKeys.add(headKey);
  group.default ??= rule;
  if (headKey !== JSON.stringify(local)) group.rules.push(rule);
}

/**
 * OPA: a rule whose reference is ground (`p`, `p.q`, `f(x)`, `p contains x`) may have no other rule
 * below it (`p := 1` with `p.q := 2`); one with a variable (`p[x]`, `p[x].q`) may.
 */
function checkPrefixConflicts(groups: Map<string, RuleGroup>, errors: RegoError[]): void {
  for (const [key, group] of groups) {
    const below = [...groups.keys()].filter((k) => k.startsWith(`${key}.`)).sort();
    const rules = [...group.rules, ...(group.default ? [group.default] : [])];
    if (below.length === 0 || !rules.some((r) => refParts(r.head.ref).every((p) => p.kind === "string"))) continue;
    const loc = group.rules[0]?.loc ?? group.default?.loc;
    errors.push(new RegoError("rego_type_error", `rule ${key} conflicts with [${below.join(" ")}]`, loc));
  }
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
  const isDocumentName = (name: string | undefined) => name === "input" || name === "data";
  for (const rule of module.rules) {
    const name = ruleName(rule);
    if (isDocumentName(name)) errors.push(new RegoError("rego_compile_error", `${name} cannot be shadowed`, rule.loc));
    for (const literal of allLiterals(rule)) {
      for (const v of declaredTerms(literal)) {
        if (v.kind === "var" && isDocumentName(v.name)) {
          errors.push(new RegoError("rego_compile_error", `${v.name} cannot be shadowed`, v.loc));
        }
      }
    }
  }
}

/** The name a rule's head starts with: `p` of `p`, `p.q`, `p[x]`. */
function ruleName(rule: Rule): string | undefined {
  const { ref } = rule.head;
  if (ref.kind === "var") return ref.name;
  return ref.kind === "ref" && ref.head.kind === "var" ? ref.head.name : undefined;
}

/** The variables (and, for `some`, the terms) a literal declares local: `x :=`, `some x`, `some … in`, `every`. */
function declaredTerms(literal: Literal): Term[] {
  switch (literal.kind) {
    case "unify":
      return literal.assign ? varsIn(literal.left) : [];
    case "some":
      return literal.vars;
    case "somein":
    case "every":
      return [...(literal.key ? varsIn(literal.key) : []), ...varsIn(literal.value)];
    default:
      return [];
  }
}

// ---- calls ---------------------------------------------------------------------------------------

/**
 * Every call names a built-in or a function rule, with its number of arguments; a call that is an
 * expression on its own may pass one more (the extra one receives the result, as in
 * `count(xs, n)`). Anything else is refused at compile time, in OPA's words.
 */
function checkCalls(module: Module, groups: Map<string, RuleGroup>, errors: RegoError[]): void {
  for (const rule of module.rules) {
    const statements = new Set(
      allLiterals(rule).flatMap((l) => (l.kind === "expr" && l.expr.kind === "call" ? [l.expr] : [])),
    );
    for (const term of allTerms(rule)) {
      const error = term.kind === "call" ? callError(term, statements.has(term), module, groups) : undefined;
      if (error) errors.push(error);
    }
  }
}

function callError(
  term: TermOf<"call">,
  statement: boolean,
  module: Module,
  groups: Map<string, RuleGroup>,
): RegoError | undefined {
  const group = callCandidates(term.name, module)
    .map((candidate) => groups.get(pathKey(candidate)))
    .find((g) => g !== undefined);
  const arity = group ? (group.kind === "function" ? group.arity : undefined) : builtinArity(term.name);
  const name = group ? pathKey(group.path) : term.name;
  // OPA: a rule that is no function has no function type, where the type checker looks for one.
  if (arity === undefined) return new RegoError("rego_type_error", `undefined function ${name}`, term.loc);
  if (group) return functionArityError(name, arity as number, term, statement);
  // OPA's CheckVoidCalls: a built-in without a result (print) cannot give a value.
  const signature = builtinSignature(term.name);
  if (signature && !signature.result && !statement) {
    return new RegoError("rego_type_error", `${termText(term)} used as value`, term.loc);
  }
  const count = term.args.length;
  if (arity === "variadic" || count === arity || (statement && count === arity + 1)) return undefined;
  // A call used as a value has an output variable by then, not typed yet.
  const have = [...term.args.map(literalType), ...(statement ? [] : [undefined])];
  const want = signature?.args ?? Array.from({ length: arity }, () => ({ name: undefined, type: ANY }));
  const details = [`have: (${have.map(formatType).join(", ")})`, `want: (${want.map(formatNamed).join(", ")})`];
  return new RegoError("rego_type_error", [`${name}: arity mismatch`, ...details].join("\n\t"), term.loc);
}

function functionArityError(name: string, arity: number, term: TermOf<"call">, statement: boolean) {
  const count = term.args.length;
  if (count === arity || (statement && count === arity + 1)) return undefined;
  const message = `function ${name} has arity ${arity}, got ${count} argument${count === 1 ? "" : "s"}`;
  return new RegoError("rego_type_error", message, term.loc);
}

// ---- recursion -----------------------------------------------------------------------------------

function checkRecursion(groups: Map<string, RuleGroup>, errors: RegoError[]): void {
  const edges = new Map<string, Set<string>>();
  for (const [key, group] of groups) edges.set(key, ruleReferences(group, groups));
  reportCycles(edges, groups, errors);
}

/** The rule groups a group's definitions refer to: for each reference, the longest rule path it reaches. */
function ruleReferences(group: RuleGroup, groups: Map<string, RuleGroup>): Set<string> {
  const aliases = dataImports(group.module);
  const targets = new Set<string>();
  // Names declared so far in the group's definitions: local variables, not rules.
  const local = new Set<string>();
  for (const rule of [...group.rules, ...(group.default ? [group.default] : [])]) {
    addLocalNames(rule, local);
    for (const term of allTerms(rule)) {
      const path = referencedPath(term, group.module, aliases, local);
      const target = path && longestRulePath(path, groups);
      if (target) targets.add(target);
    }
  }
  return targets;
}

function addLocalNames(rule: Rule, local: Set<string>): void {
  const declared = [...(rule.head.args ?? []).flatMap(varsIn), ...allLiterals(rule).flatMap(declaredTerms)];
  for (const v of declared) if (v.kind === "var") local.add(v.name);
}

function longestRulePath(path: string[], groups: Map<string, RuleGroup>): string | undefined {
  for (let n = path.length; n > 1; n--) {
    const target = pathKey(path.slice(0, n));
    if (groups.has(target)) return target;
  }
  return undefined;
}

/** Reports each cycle of references once, from the rule where the search first meets it. */
function reportCycles(edges: Map<string, Set<string>>, groups: Map<string, RuleGroup>, errors: RegoError[]): void {
  const done = new Set<string>();
  const stack: string[] = [];
  const reported = new Set<string>();
  const visit = (node: string): void => {
    if (done.has(node)) return;
    if (stack.includes(node)) {
      const cycle = [...stack.slice(stack.indexOf(node)), node];
      const first = cycle[0] as string;
      if (!reported.has(first)) {
        reported.add(first);
        errors.push(recursionError(first, cycle, groups.get(first) as RuleGroup));
      }
      return;
    }
    stack.push(node);
    for (const next of edges.get(node) ?? []) visit(next);
    stack.pop();
    done.add(node);
  };
  for (const key of edges.keys()) visit(key);
}

function recursionError(first: string, cycle: string[], group: RuleGroup): RegoError {
  const loc = group.rules[0]?.loc ?? group.default?.loc;
  return new RegoError("rego_recursion_error", `rule ${first} is recursive: ${cycle.join(" -> ")}`, loc);
}

/** The data path a term refers to: `data.a.b`, a rule of the same package by name, or an import alias. */
function referencedPath(
  term: Term,
  module: Module,
  aliases: Map<string, string[]>,
  local: Set<string>,
): string[] | undefined {
  if (term.kind === "call") return callCandidates(term.name, module)[0];
  const head = term.kind === "ref" ? term.head : term;
  if (head.kind !== "var") return undefined;
  const rest = leadingStrings(term.kind === "ref" ? term.path : []);
  if (head.name === "data") return ["data", ...rest];
  if (local.has(head.name) || head.name === "input") return undefined;
  const alias = aliases.get(head.name);
  if (alias) return [...alias, ...rest];
  return ["data", ...module.package, head.name, ...rest];
}

/** A reference path's constant prefix: `a.b[x].c` → a, b. */
function leadingStrings(path: Term[]): string[] {
  const end = path.findIndex((p) => p.kind !== "string");
  return (end < 0 ? path : path.slice(0, end)).map((p) => (p as { value: string }).value);
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
    for (const term of termsIn(literal)) {
      findTerm(term, (t) => {
        if (isComprehension(t)) walkLiterals(t.body, visit);
        return false;
      });
    }
  }
}

/** Every term a literal holds, `with` targets and values included (an `every` body's are its own literals'). */
function termsIn(literal: Literal): Term[] {
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
  for (const literal of allLiterals(rule)) for (const t of termsIn(literal)) collect(t);
  return out;
}

/** Depth-first search over a term and its sub-terms (not into comprehension bodies). */
export function findTerm(term: Term, match: (t: Term) => boolean, skipComprehensions = false): Term | undefined {
  if (skipComprehensions && isComprehension(term)) return undefined;
  if (match(term)) return term;
  for (const child of subterms(term)) {
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
