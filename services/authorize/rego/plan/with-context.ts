// `with` contexts: what the `with` literals being planned replace beyond input and base data —
// functions and built-ins mocked, rules hidden under a replaced data path — and which rules that
// changes. As OPA's planner does, a rule (or document) a context affects is planned again as a copy
// for that context, once per distinct context (its key); a rule it does not affect is called as it
// is and keeps its per-evaluation memo. A copy's memo is its own: no value computed under one
// context is ever read under another. Values a mock takes from the `with` site (a variable, a
// comprehension) are the context's values, passed to every copy after its own arguments.
import { type BinaryOp, type Literal, type Module, OPERATOR_BUILTINS, type Rule, type Term } from "../ast.ts";
import { callCandidates, pathKey, type RuleGroup } from "../check.ts";
import { isWildcard } from "../vars.ts";
import type { DocNode } from "./doc-tree.ts";
import type { Planner } from "./planner.ts";
import { EMPTY_CONTEXT, type Mock, type WithContext } from "./with-mocks.ts";

/** The planner's one context for these replacements (a context with none is EMPTY_CONTEXT). */
export function contextFor(
  p: Planner,
  mocks: ReadonlyMap<string, Mock>,
  hidden: readonly string[][],
  values: number,
): WithContext {
  if (mocks.size === 0 && hidden.length === 0) return EMPTY_CONTEXT;
  const key = [
    ...[...mocks].map(([target, mock]) => `${target}=${describeMock(mock)}`).sort(),
    ...hidden.map((path) => `hide:${JSON.stringify(path)}`).sort(),
    `values:${values}`,
  ].join("\n");
  let context = p.contexts.get(key);
  if (!context) {
    context = { id: p.contexts.size + 1, key, mocks, hidden, values, affected: new Map() };
    p.contexts.set(key, context);
  }
  return context;
}

/** The context a mock function runs in: the same hidden rules, no mock (as OPA's planner). */
export function mockFreeContext(p: Planner): WithContext {
  return contextFor(p, new Map(), p.context.hidden, 0);
}

/** A planned function's name for a context: the name as written, or the copy's. */
export function specialisedName(name: string, context: WithContext): string {
  return context.id === 0 ? name : `${name}@with${context.id}`;
}

function describeMock(mock: Mock): string {
  switch (mock.kind) {
    case "function":
      return `function:${pathKey(mock.group.path)}`;
    case "builtin":
      return `builtin:${mock.name}`;
    case "document":
      return `document:${JSON.stringify(mock.path)}`;
    case "constant":
      return `constant:${constantText(mock.term)}`;
    case "value":
      return `value:${mock.index}`;
  }
}

/** A constant term's canonical text (constants only: scalars and collections of constants). */
function constantText(term: Term): string {
  switch (term.kind) {
    case "null":
      return "null";
    case "boolean":
      return String(term.value);
    case "number":
      return `n${term.text}`;
    case "string":
      return JSON.stringify(term.value);
    case "array":
      return `[${term.items.map(constantText).join(",")}]`;
    case "set":
      return `set(${term.items.map(constantText).sort().join(",")})`;
    case "object":
      return `{${term.entries.map(([k, v]) => `${constantText(k)}:${constantText(v)}`).join(",")}}`;
    default:
      return `?${term.kind}`;
  }
}

/** Whether a path under data lies at or below a path whose rules a `with` replaced. */
export function isHidden(context: WithContext, path: readonly string[]): boolean {
  return context.hidden.some((hidden) => isPrefix(hidden, path));
}

function isPrefix(prefix: readonly string[], path: readonly string[]): boolean {
  return prefix.length <= path.length && prefix.every((segment, i) => segment === path[i]);
}

function overlaps(a: readonly string[], b: readonly string[]): boolean {
  return isPrefix(a, b) || isPrefix(b, a);
}

/** Whether a rule group's value can differ in a context (so it needs a copy of its own there). */
export function isAffected(p: Planner, group: RuleGroup, context: WithContext): boolean {
  if (context.id === 0) return false;
  return affectedWalk(p, group, context, new Set()).affected;
}

/**
 * The walk over what a group depends on. Dependencies are read from the text, so a local variable
 * named like a rule can make a cycle that is not there: a group met again while it is being
 * walked counts as unaffected for that path only, and a "no" reached through such a cycle is not
 * remembered (it may be a "yes" by another path); a "yes", and any answer for the walk's start, is.
 */
function affectedWalk(
  p: Planner,
  group: RuleGroup,
  context: WithContext,
  walking: Set<RuleGroup>,
): { affected: boolean; cycle: boolean } {
  const known = context.affected.get(group);
  if (known !== undefined) return { affected: known, cycle: false };
  if (walking.has(group)) return { affected: false, cycle: true };
  walking.add(group);
  let cycle = false;
  const visit = (dependency: RuleGroup): boolean => {
    const result = affectedWalk(p, dependency, context, walking);
    cycle ||= result.cycle;
    return result.affected;
  };
  const deps = dependencies(p, group);
  const affected =
    [...deps.calls].some(([target, callee]) => context.mocks.has(target) || (callee !== undefined && visit(callee))) ||
    deps.reads.some(
      (path) => context.hidden.some((hidden) => overlaps(hidden, path)) || groupsOverlapping(p.root, path).some(visit),
    );
  walking.delete(group);
  if (affected || !cycle || walking.size === 0) context.affected.set(group, affected);
  return { affected, cycle: cycle && !affected };
}

/** Whether reading data at `path` (or anything below it) can give another value in a context. */
export function isReadAffected(p: Planner, path: readonly string[], context: WithContext): boolean {
  if (context.id === 0) return false;
  if (context.hidden.some((hidden) => overlaps(hidden, path))) return true;
  return groupsOverlapping(p.root, path).some((group) => isAffected(p, group, context));
}

/** The rule groups at a path's prefixes and below it. */
function groupsOverlapping(root: DocNode, path: readonly string[]): RuleGroup[] {
  const out: RuleGroup[] = [];
  let node = root;
  for (const segment of path) {
    if (node.group) out.push(node.group);
    const next = node.children.get(segment);
    if (!next) return out;
    node = next;
  }
  const below = (n: DocNode): void => {
    if (n.group) out.push(n.group);
    for (const child of n.children.values()) below(child);
  };
  below(node);
  return out;
}

/** What a rule group's definitions call (function path keys or built-in names) and read under data. */
interface Dependencies {
  calls: Map<string, RuleGroup | undefined>;
  reads: string[][];
}

/** The built-in an operator calls. */
export function operatorBuiltin(op: BinaryOp): string {
  return OPERATOR_BUILTINS[op];
}

const dependencyCache = new WeakMap<RuleGroup, Dependencies>();

function dependencies(p: Planner, group: RuleGroup): Dependencies {
  const cached = dependencyCache.get(group);
  if (cached) return cached;
  const deps: Dependencies = { calls: new Map(), reads: [] };
  const visit = (term: Term): void => visitTerm(p, group.module, term, deps, visit);
  for (const rule of group.rules) {
    for (const t of headTerms(rule)) visit(t);
    for (const body of [...rule.bodies, ...rule.elses.map((e) => e.body)]) visitLiterals(body, visit);
  }
  dependencyCache.set(group, deps);
  return deps;
}

function headTerms({ head, elses }: Rule): Term[] {
  const terms = [head.value, head.contains, ...(head.args ?? []), ...elses.map((e) => e.value)];
  if (head.ref.kind === "ref") terms.push(...head.ref.path);
  return terms.filter((t) => t !== undefined);
}

function visitLiterals(body: Literal[], visit: (term: Term) => void): void {
  for (const literal of body) {
    for (const t of literalTerms(literal)) visit(t);
    if (literal.kind === "every") visitLiterals(literal.body, visit);
  }
}

/** The terms a literal evaluates, its `with` values included (an `every` body's are its own literals'). */
function literalTerms(literal: Literal): Term[] {
  switch (literal.kind) {
    case "expr":
      return [literal.expr, ...literal.with.map((w) => w.value)];
    case "unify":
      return [literal.left, literal.right, ...literal.with.map((w) => w.value)];
    case "some":
      return literal.vars;
    case "somein":
      return [literal.key, literal.value, literal.collection].filter((t) => t !== undefined);
    case "every":
      return [literal.key, literal.value, literal.domain].filter((t) => t !== undefined);
  }
}

function visitTerm(p: Planner, module: Module, term: Term, deps: Dependencies, visit: (t: Term) => void): void {
  switch (term.kind) {
    case "var":
      read(p, module, term.name, [], deps);
      return;
    case "ref":
      if (term.head.kind === "var") read(p, module, term.head.name, term.path, deps);
      else visit(term.head);
      for (const t of term.path) visit(t);
      return;
    case "call": {
      const callee = calledGroup(p, term.name, module);
      deps.calls.set(callee ? pathKey(callee.path) : term.name, callee);
      for (const t of term.args) visit(t);
      return;
    }
    case "binary":
      deps.calls.set(operatorBuiltin(term.op), undefined);
      visit(term.left);
      visit(term.right);
      return;
    case "arraycomp":
    case "setcomp":
      visit(term.term);
      visitLiterals(term.body, visit);
      return;
    case "objectcomp":
      visit(term.key);
      visit(term.value);
      visitLiterals(term.body, visit);
      return;
    case "array":
    case "set":
      for (const t of term.items) visit(t);
      return;
    case "object":
      for (const t of term.entries.flat()) visit(t);
      return;
    case "unary":
      visit(term.arg);
      return;
    case "membership":
      for (const t of [term.key, term.value, term.collection]) if (t) visit(t);
      return;
    default:
      return;
  }
}

/** A name read in a body: when it names a document under data, that path and its constant continuation. */
function read(p: Planner, module: Module, name: string, path: Term[], deps: Dependencies): void {
  if (isWildcard(name)) return;
  const resolved = p.resolveInModule(name, module);
  if (resolved?.root !== "data") return;
  const rest: string[] = [];
  for (const segment of path) {
    if (segment.kind !== "string") break;
    rest.push(segment.value);
  }
  deps.reads.push([...resolved.path, ...rest]);
}

/** The function rule a call names, if it names one (else it names a built-in). */
export function calledGroup(p: Planner, name: string, module: Module): RuleGroup | undefined {
  for (const candidate of callCandidates(name, module)) {
    const group = p.index.groups.get(pathKey(candidate));
    if (group?.kind === "function") return group;
  }
  return undefined;
}
