// Stage 5b of the Rego compiler: OPA's type checker (v1/ast/check.go), after safety, so that what
// OPA refuses as a `rego_type_error` is refused here too, in its words:
//
//   m.rego:3: rego_type_error: plus: invalid argument(s)
//   	have: (number, string, ???)
//   	want: (x: number, y: number, z: number)
//
// Types flow through each body in its safe order: constants and composites, built-in results by
// their declared types (builtin-types.ts), variables from what binds them, references into typed
// locals and rules. Rules are typed from their definitions (each checked once, those it reads
// first, as OPA's dependency order); functions from how their bodies use their arguments. Where
// OPA's answer depends on what this checker does not model, it types the value `any`, on which
// nothing ever fails (`input`, base documents under `data`, documents above rules), so it may miss
// an error OPA reports, never report one OPA does not.
import {
  type Literal,
  type LiteralOf,
  type Module,
  OPERATOR_BUILTINS,
  type Rule,
  type Term,
  type TermOf,
} from "./ast.ts";
import {
  ANY,
  arrayOf,
  BOOLEAN,
  builtinSignature,
  compareTypes,
  constantType,
  contains,
  formatNamed,
  formatType,
  isAny,
  keysOf,
  mergeTypes,
  objectOf,
  or,
  type RegoType,
  refSegmentText,
  type Signature,
  selectIndex,
  selectKey,
  setOf,
  type Type,
  termText,
  unifies,
  valuesOf,
} from "./builtin-types.ts";
import { callCandidates, pathKey, type RuleGroup, type RuleIndex, refParts, staticPath } from "./check.ts";
import { type Location, RegoError } from "./lexer.ts";
import { orderForSafety, type SafetyContext } from "./safety.ts";
import { bodyVars, isWildcard, varsOf } from "./vars.ts";

/** Every type error of the modules' rules, in OPA's order (by position). */
export function typeCheck(index: RuleIndex): RegoError[] {
  const errors: RegoError[] = [];
  const rules = new RuleTypes(index, errors);
  for (const module of index.modules) for (const rule of module.rules) rules.ruleType(rule);
  return errors.sort((a, b) => compareLocations(a.loc, b.loc));
}

function compareLocations(a: Location | undefined, b: Location | undefined): number {
  if (!a || !b) return 0;
  return a.file.localeCompare(b.file) || a.row - b.row || a.col - b.col;
}

// ---- rules ------------------------------------------------------------------------------------------

/** What one rule's definition gives its path: a value type, and argument types for a function. */
interface RuleType {
  value: Type;
  args: Type[] | undefined;
  /** The rule's bodies had a type error: OPA types its path any. */
  failed: boolean;
}

/** The rules' types, each rule checked once, on first use (a rule is typed before those that read it). */
class RuleTypes {
  readonly index: RuleIndex;
  readonly errors: RegoError[];
  readonly #moduleOf = new Map<Rule, Module>();
  readonly #checkers = new Map<Module, BodyChecker>();
  readonly #types = new Map<Rule, RuleType | "checking">();

  constructor(index: RuleIndex, errors: RegoError[]) {
    this.index = index;
    this.errors = errors;
    for (const module of index.modules) for (const rule of module.rules) this.#moduleOf.set(rule, module);
  }

  ruleType(rule: Rule): RuleType | undefined {
    const known = this.#types.get(rule);
    if (known === "checking") return undefined;
    if (known) return known;
    this.#types.set(rule, "checking");
    const module = this.#moduleOf.get(rule) as Module;
    let checker = this.#checkers.get(module);
    if (!checker) {
      checker = new BodyChecker(this, module);
      this.#checkers.set(module, checker);
    }
    const errorsBefore = this.errors.length;
    const type = checker.rule(rule);
    const result = { ...type, failed: this.errors.length > errorsBefore };
    this.#types.set(rule, result);
    return result;
  }

  /** A group's definitions, or undefined when one of them cannot be typed (a failure, a cycle). */
  #definitions(group: RuleGroup): RuleType[] | undefined {
    const rules = group.default && !group.rules.includes(group.default) ? [...group.rules, group.default] : group.rules;
    const types = rules.map((rule) => this.ruleType(rule));
    return types.every((t) => t !== undefined && !t.failed) ? (types as RuleType[]) : undefined;
  }

  /** The type of a rule's document: its definitions' values merged. */
  groupType(group: RuleGroup): Type {
    const definitions = this.#definitions(group);
    if (!definitions) return ANY;
    return definitions.reduce<Type>((acc, d) => mergeTypes(acc, d.value), undefined) ?? ANY;
  }

  /** A function's signature: each argument's and the result's types across its definitions. */
  functionSignature(group: RuleGroup): Signature | undefined {
    const definitions = this.#definitions(group);
    if (!definitions) return undefined;
    const unnamed = (type: Type) => ({ name: undefined, type: type ?? ANY });
    const args = Array.from({ length: group.arity ?? 0 }, (_, i) =>
      definitions.reduce<Type>((acc, d) => or(acc, d.args?.[i]), undefined),
    );
    const result = definitions.reduce<Type>((acc, d) => or(acc, d.value), undefined);
    return { args: args.map(unnamed), variadic: undefined, result: unnamed(result) };
  }
}

// ---- type operations ---------------------------------------------------------------------------------

/** The type of t's element at a constant key (types.Select); undefined when it has none. */
function selectConstant(t: Type, key: Term): Type {
  if (!t) return undefined;
  switch (t.kind) {
    case "array":
      return selectArrayIndex(t, key);
    case "object":
      return selectObjectKey(t, key);
    case "set":
      return selectSetElement(t, key);
    case "any":
      return isAny(t) ? ANY : t.of.reduce<Type>((acc, m) => or(selectConstant(m, key), acc), undefined);
    default:
      return undefined;
  }
}

function selectArrayIndex(t: RegoType & { kind: "array" }, key: Term): Type {
  if (key.kind !== "number" || !/^\d+$/.test(key.text)) return undefined;
  return selectIndex(t, Number(key.text));
}

function selectObjectKey(t: RegoType & { kind: "object" }, key: Term): Type {
  if (key.kind === "string") return selectKey(t, key.value);
  const keyType = constantType(key);
  return t.dynamic?.key && keyType && contains(t.dynamic.key, keyType) ? t.dynamic.value : undefined;
}

function selectSetElement(t: RegoType & { kind: "set" }, key: Term): Type {
  const keyType = constantType(key);
  if (compareTypes(t.of, keyType) === 0) return t.of;
  return t.of?.kind === "any" && keyType && contains(t.of, keyType) ? keyType : undefined;
}

// ---- bodies ----------------------------------------------------------------------------------------

/** Variables' types in a body, with the enclosing body's as fallback (a comprehension's closure). */
class Env {
  readonly #types = new Map<string, Type>();
  readonly #parent: Env | undefined;
  readonly #documents: ReadonlySet<string>;
  /** `documents`: the names that refer to documents where no local variable shadows them. */
  constructor(parent: Env | ReadonlySet<string>) {
    this.#parent = parent instanceof Env ? parent : undefined;
    this.#documents = parent instanceof Env ? parent.#documents : parent;
  }
  /** Whether a name refers to a document (a rule, an import, input, data) here, not a variable. */
  isDocument(name: string): boolean {
    return !this.has(name) && this.#documents.has(name);
  }
  get(name: string): Type {
    return this.#types.has(name) ? this.#types.get(name) : this.#parent?.get(name);
  }
  has(name: string): boolean {
    return this.#types.has(name) || (this.#parent?.has(name) ?? false);
  }
  /** Declares (or types) a variable of this scope. */
  set(name: string, type: Type): void {
    this.#types.set(name, type);
  }
}

/** The error, for one expression: OPA reports the first only. */
class ExprError extends Error {
  readonly error: RegoError;
  constructor(error: RegoError) {
    super(error.message);
    this.error = error;
  }
}

const typeError = (message: string, loc: Location | undefined, details: string[] = []): ExprError =>
  new ExprError(new RegoError("rego_type_error", [message, ...details].join("\n\t"), loc));

class BodyChecker {
  readonly #rules: RuleTypes;
  readonly #module: Module;
  readonly #errors: RegoError[];
  /** Names that refer to documents rather than local variables, and the paths they name. */
  readonly #documents = new Map<string, string[]>([
    ["input", ["input"]],
    ["data", ["data"]],
  ]);

  constructor(rules: RuleTypes, module: Module) {
    this.#rules = rules;
    this.#module = module;
    this.#errors = rules.errors;
    const prefix = pathKey(["data", ...module.package]);
    for (const key of rules.index.groups.keys()) {
      if (!key.startsWith(`${prefix}.`)) continue;
      const name = key.slice(prefix.length + 1).split(".")[0] as string;
      this.#documents.set(name, ["data", ...module.package, name]);
    }
    for (const imp of module.imports) {
      const path = staticPath(imp.path);
      const name = imp.alias ?? (path?.at(-1) as string);
      if (path && (path[0] === "data" || path[0] === "input") && !this.#documents.has(name)) {
        this.#documents.set(name, path);
      }
    }
  }

  /** Checks a rule's bodies; the types its definition gives its path. */
  rule(rule: Rule): Omit<RuleType, "failed"> {
    const argNames = (rule.head.args ?? []).flatMap((a) => varsOf(a).map((v) => v.name));
    const definitions = [
      ...rule.bodies.map((body) => ({ body, value: rule.head.value })),
      ...rule.elses.map((clause) => ({ body: clause.body, value: clause.value })),
    ];
    let value: Type;
    let args: Type[] | undefined;
    for (const { body, value: valueTerm } of definitions) {
      const env = new Env(new Set(this.#documents.keys()));
      this.#body(body, env, argNames);
      const type = this.#guarded(() => this.#definitionType(rule, valueTerm, env));
      value = mergeTypes(value, type);
      const argTypes = rule.head.args?.map((a) => this.#guarded(() => this.#typeOf(a, env)));
      args = argTypes && (args ? args.map((t, i) => or(t, argTypes[i])) : argTypes);
    }
    return { value, args };
  }

  /** The value one definition gives: a complete rule's or function's value, a set's or object's. */
  #definitionType(rule: Rule, valueTerm: Term | undefined, env: Env): Type {
    const value = valueTerm ? this.#typeOf(valueTerm, env) : BOOLEAN;
    if (rule.head.args) return value;
    const parts = refParts(rule.head.ref);
    const firstDynamic = parts.findIndex((p) => p.kind !== "string");
    if (rule.head.contains) {
      const element = setOf(this.#typeOf(rule.head.contains, env));
      if (firstDynamic < 0) return element;
      // `p[k] contains x`: OPA files the set under the variable keys themselves; any, to be safe.
      for (const key of parts.slice(firstDynamic)) this.#typeOf(key, env);
      return ANY;
    }
    if (firstDynamic < 0) return value;
    // `p[k].q := v`: an object nested per key after the first that is not a constant string.
    return parts
      .slice(firstDynamic)
      .reduceRight<Type>((inner, key) => objectOf([], { key: this.#typeOf(key, env), value: inner }), value);
  }

  /** Checks a body in its safe order. */
  #body(literals: Literal[], env: Env, bound: string[]): void {
    const vars = bodyVars(literals);
    let ordered: Literal[];
    try {
      ordered = orderForSafety(literals, { bound, declared: [], bodyVars: vars }, this.#safety(env));
    } catch {
      ordered = literals; // unsafe bodies are the planner's to report
    }
    for (const literal of ordered) this.#guard(() => this.#literal(literal, env));
  }

  #safety(env: Env): SafetyContext {
    return {
      isDocument: (name) => env.isDocument(name),
      arity: (call) => this.#arity(call),
    };
  }

  #arity(call: TermOf<"call">): number {
    const group = this.#function(call);
    if (group) return group.arity ?? 0;
    const signature = builtinSignature(call.name);
    return signature && !signature.variadic ? signature.args.length : call.args.length;
  }

  #function(call: TermOf<"call">): RuleGroup | undefined {
    return callCandidates(call.name, this.#module)
      .map((path) => this.#rules.index.groups.get(pathKey(path)))
      .find((g) => g?.kind === "function");
  }

  #guard(check: () => void): void {
    try {
      check();
    } catch (error) {
      if (error instanceof ExprError) this.#errors.push(error.error);
      else throw error;
    }
  }

  #literal(literal: Literal, env: Env): void {
    switch (literal.kind) {
      case "expr":
        this.#expression(literal.expr, env);
        return;
      case "unify":
        this.#unify(literal, env);
        return;
      case "somein":
        this.#iteration(literal, env);
        return;
      case "every": {
        const domain = this.#typeOf(literal.domain, env);
        const inner = new Env(env);
        if (literal.key) bindPattern(literal.key, keysOf(domain) ?? ANY, inner);
        bindPattern(literal.value, valuesOf(domain) ?? ANY, inner);
        this.#body(literal.body, inner, boundIn(literal.body, inner));
        return;
      }
      case "some":
        for (const v of literal.vars.flatMap(varsOf)) if (!isWildcard(v.name)) env.set(v.name, undefined);
        return;
    }
  }

  /** An expression on its own: a call (its output argument, if any, included), or any term. */
  #expression(term: Term, env: Env): void {
    if (term.kind === "call") this.#call(term, term.args, env, false);
    else if (term.kind === "binary") this.#call(operatorCall(term), [term.left, term.right], env, false);
    else this.#typeOf(term, env);
  }

  /** `a = b` and `a := b`: OPA's checkExprEq. */
  #unify(literal: LiteralOf<"unify">, env: Env): void {
    // `:=` declares its variables here, shadowing any of an enclosing body.
    if (literal.assign) for (const v of varsOf(literal.left)) if (!isWildcard(v.name)) env.set(v.name, undefined);
    const left = this.#typeOf(literal.left, env, true);
    const right = this.#typeOf(literal.right, env, true);
    if (!unify2(env, literal.left, left, literal.right, right)) {
      throw typeError("match error", literal.loc, [`left  : ${formatType(left)}`, `right : ${formatType(right)}`]);
    }
  }

  /** `some k, v in xs`: the key and value take the collection's key and value types. */
  #iteration(literal: LiteralOf<"somein">, env: Env): void {
    const collection = this.#typeOf(literal.collection, env);
    if (literal.key) bindPattern(literal.key, keysOf(collection) ?? ANY, env);
    bindPattern(literal.value, valuesOf(collection) ?? ANY, env);
  }

  /**
   * A call checked against its callee's signature (OPA's checkExprBuiltin); `asValue` when its
   * result is used, which OPA's rewriting gives an output variable not typed yet (`???`).
   */
  #call(term: TermOf<"call">, args: Term[], env: Env, asValue: boolean): Type {
    const argTypes = args.map((a) => this.#typeOf(a, env));
    const group = this.#function(term);
    const signature = group ? this.#rules.functionSignature(group) : builtinSignature(term.name);
    if (!signature) return ANY;
    // OPA names a function by its full path: data.pkg.f.
    const name = group ? pathKey(group.path) : term.name;
    const want = [...signature.args, ...(signature.result ? [signature.result] : [])];
    const operands = asValue ? [...args, undefined] : args;
    const have = asValue ? [...argTypes, undefined] : argTypes;
    checkArgumentCount(name, term.loc, signature, operands.length, have);
    for (let i = 0; i < operands.length; i++) {
      const declared = i < want.length ? want[i]?.type : signature.variadic;
      const operand = operands[i];
      const ok = operand ? unify1(env, operand, have[i], declared, false) : true;
      if (!ok) {
        // OPA reports the operands' types after unifying them (an output variable may be typed now).
        const post = operands.map((o, j) => (o?.kind === "var" && !env.isDocument(o.name) ? env.get(o.name) : have[j]));
        throw argumentError(name, "invalid argument(s)", post, want, term.loc);
      }
    }
    return signature.result?.type ?? ANY;
  }

  /**
   * A term's type, checking the calls in it as OPA does once its compiler has pulled each into
   * an expression of its own. `pattern`: the term is a side of a unification, where a variable
   * not typed yet stays untyped (unification types it) instead of becoming any.
   */
  #typeOf(term: Term, env: Env, pattern = false): Type {
    switch (term.kind) {
      case "null":
      case "boolean":
      case "number":
      case "string":
        return constantType(term);
      case "var":
        return this.#varType(term, env, pattern);
      case "array":
      case "set":
      case "object":
        return this.#compositeType(term, env, pattern);
      case "ref":
        return this.#refType(term, env);
      case "call":
        return this.#call(term, term.args, env, true);
      case "binary":
        return this.#call(operatorCall(term), [term.left, term.right], env, true);
      case "membership":
        for (const t of [term.key, term.value, term.collection]) if (t) this.#typeOf(t, env);
        return BOOLEAN;
      case "unary":
        this.#typeOf(term.arg, env);
        return ANY;
      default:
        return this.#comprehensionType(term, env);
    }
  }

  /** A variable not typed yet is any, except as a pattern, where unification will type it. */
  #varType(term: TermOf<"var">, env: Env, pattern: boolean): Type {
    const untyped = pattern ? undefined : ANY;
    if (isWildcard(term.name)) return untyped;
    if (env.isDocument(term.name)) return this.#documentType(term, env);
    return env.get(term.name) ?? untyped;
  }

  #compositeType(term: TermOf<"array" | "set" | "object">, env: Env, pattern: boolean): Type {
    if (term.kind === "object") return this.#objectType(term, env, pattern);
    if (term.kind === "set") {
      return setOf(term.items.reduce<Type>((acc, t) => or(acc, this.#typeOf(t, env)), undefined) ?? ANY);
    }
    const items = term.items.map((t) => this.#typeOf(t, env, pattern));
    return arrayOf(items.length === 0 ? ANY : undefined, items);
  }

  #comprehensionType(term: TermOf<"arraycomp" | "setcomp" | "objectcomp">, env: Env): Type {
    if (term.kind === "objectcomp") {
      const [key, value] = this.#comprehension(term.body, [term.key, term.value], env);
      return objectOf([], { key: key ?? ANY, value: value ?? ANY });
    }
    const [element] = this.#comprehension(term.body, [term.term], env);
    return term.kind === "arraycomp" ? arrayOf(element ?? ANY) : setOf(element ?? ANY);
  }

  #objectType(term: TermOf<"object">, env: Env, pattern: boolean): Type {
    const props: Array<{ key: string; value: Type }> = [];
    let dynamic: { key: Type; value: Type } | undefined;
    for (const [k, v] of term.entries) {
      const keyType = this.#typeOf(k, env);
      const valueType = this.#typeOf(v, env, pattern);
      if (k.kind === "string") props.push({ key: k.value, value: valueType });
      else dynamic = { key: keyType, value: valueType };
    }
    // Keys that are other constants (numbers, booleans) are left dynamic: OPA's keys are JSON text.
    return objectOf(props, props.length === 0 && !dynamic ? { key: ANY, value: ANY } : dynamic);
  }

  /** A comprehension's body in a scope of its own; the types of its head terms. */
  #comprehension(body: Literal[], heads: Term[], env: Env): Type[] {
    const inner = new Env(env);
    const errorsBefore = this.#errors.length;
    this.#body(body, inner, boundIn(body, inner));
    if (this.#errors.length > errorsBefore) return heads.map(() => ANY);
    return heads.map((h) => this.#guarded(() => this.#typeOf(h, inner)));
  }

  #guarded(typeOf: () => Type): Type {
    let type: Type = ANY;
    this.#guard(() => {
      type = typeOf();
    });
    return type;
  }

  #documentType(term: TermOf<"ref" | "var">, env: Env): Type {
    const head = term.kind === "ref" ? (term.head as TermOf<"var">) : term;
    const ref = documentRef(term, this.#documents.get(head.name) as string[]);
    const found = this.#ruleAt(ref);
    if (!found) return untypedRef(ref, env);
    const { group, depth } = found;
    const type = this.#rules.groupType(group);
    return ref.path.slice(depth).reduce<Type>((t, segment, i) => selectSegment(ref, depth + i, segment, t, env), type);
  }

  /**
   * The rule a document reference reaches, and how many of its path's terms name it; undefined
   * where OPA's type would be more than the rule's own (rules below it, a function's).
   */
  #ruleAt(ref: TermOf<"ref">): { group: RuleGroup; depth: number } | undefined {
    if (ref.head.kind !== "var" || ref.head.name !== "data") return undefined;
    const staticEnd = ref.path.findIndex((p) => p.kind !== "string");
    const names = (staticEnd < 0 ? ref.path : ref.path.slice(0, staticEnd)).map((p) => (p as { value: string }).value);
    const { groups } = this.#rules.index;
    for (let depth = names.length; depth >= 1; depth--) {
      const key = pathKey(["data", ...names.slice(0, depth)]);
      const group = groups.get(key);
      if (!group) continue;
      const below = [...groups.keys()].some((k) => k.startsWith(`${key}.`));
      const perKeyDefault = group.kind === "partial_object" && group.default !== undefined;
      return group.kind === "function" || below || perKeyDefault ? undefined : { group, depth };
    }
    return undefined;
  }

  /**
   * A reference's type, checked as OPA's refChecker does: into a typed local or a rule's value.
   * What a call or composite returns is any here.
   */
  #refType(term: TermOf<"ref">, env: Env): Type {
    const { head, path } = term;
    for (const p of path) if (p.kind !== "var") this.#typeOf(p, env);
    if (head.kind !== "var") {
      this.#typeOf(head, env);
      return untypedRef(term, env);
    }
    if (env.isDocument(head.name)) return this.#documentType(term, env);
    const type = env.get(head.name);
    if (type === undefined) {
      if (!isWildcard(head.name)) env.set(head.name, ANY);
      return untypedRef(term, env);
    }
    return path.reduce<Type>((t, segment, i) => selectSegment(term, i, segment, t, env), type);
  }
}

/**
 * A reference to a document (`data.p.q[x]`, a rule of the package, an import): the type of the rule
 * it reaches, then down the rest of the reference. Documents above rules and base documents are any.
 */
function documentRef(term: TermOf<"ref" | "var">, root: string[]): TermOf<"ref"> {
  const head = term.kind === "ref" ? term.head : term;
  const rootTerms = root.slice(1).map((value) => ({ kind: "string" as const, value, loc: head.loc }));
  return {
    kind: "ref",
    head: { kind: "var", name: root[0] as string, loc: head.loc },
    path: [...rootTerms, ...(term.kind === "ref" ? term.path : [])],
    loc: term.loc,
  };
}

/** A reference into what is any: its variables are any (OPA's checkRefLeaf on any). */
function untypedRef(term: TermOf<"ref">, env: Env): Type {
  for (const p of term.path) if (p.kind === "var" && !env.has(p.name) && !isWildcard(p.name)) env.set(p.name, ANY);
  return ANY;
}

/** One step down a typed reference: an error where OPA's refChecker reports one. */
function selectSegment(term: TermOf<"ref">, i: number, segment: Term, type: Type, env: Env): Type {
  const keys = keysOf(type);
  if (!keys) throw refError(term, i, [`have: ${formatType(type)}`], true);
  if (segment.kind === "var") {
    const exist = env.get(segment.name);
    if (exist !== undefined && !unifies(exist, keys)) throw invalidRef(term, i, exist, keys, type);
    if (exist === undefined && !isWildcard(segment.name)) env.set(segment.name, keys);
    return valuesOf(type);
  }
  if (constantType(segment) === undefined) return valuesOf(type);
  const child = selectConstant(type, segment);
  if (!child) throw invalidRef(term, i, undefined, keys, type);
  return child;
}

/** The variables of a closure's body that the enclosing bodies bind. */
const boundIn = (body: Literal[], env: Env): string[] => [...bodyVars(body)].filter((name) => env.has(name));

const operatorCall = (term: TermOf<"binary">): TermOf<"call"> => ({
  kind: "call",
  name: OPERATOR_BUILTINS[term.op],
  nameRef: { kind: "var", name: OPERATOR_BUILTINS[term.op], loc: term.loc },
  args: [term.left, term.right],
  loc: term.loc,
});

function checkArgumentCount(name: string, loc: Location, signature: Signature, count: number, have: Type[]): void {
  const want = [...signature.args, ...(signature.result ? [signature.result] : [])];
  if (count > want.length && !signature.variadic) throw argumentError(name, "too many arguments", have, want, loc);
  if (count < signature.args.length) throw argumentError(name, "too few arguments", have, want, loc);
}

function argumentError(name: string, message: string, have: Type[], want: Signature["args"], loc: Location) {
  return typeError(`${name}: ${message}`, loc, [
    `have: (${have.map(formatType).join(", ")})`,
    `want: (${want.map(formatNamed).join(", ")})`,
  ]);
}

// ---- unification (check.go's unify1 and unify2) ----------------------------------------------------

/** Whether a term can take a value of type `type`; types the variables in it. */
function unify1(env: Env, term: Term, termType: Type, type: Type, union: boolean): boolean {
  switch (term.kind) {
    case "array":
      if (type?.kind !== "array") return unify1Any(env, term, type, term.items);
      if (term.items.length !== type.items.length && !type.dynamic) return false;
      return term.items.every((item, i) => unify1(env, item, undefined, selectIndex(type, i), union));
    case "object":
      if (type?.kind !== "object") return unify1Any(env, term, type, term.entries.flat());
      return unify1Object(env, term, type, union);
    case "set":
      if (type?.kind !== "set") return unify1Any(env, term, type, term.items);
      return term.items.every((item) => unify1(env, item, undefined, type.of, union));
    case "var":
      return unify1Var(env, term, termType, type, union);
    default:
      // References, calls, comprehensions and constants: their own type must unify.
      return unifies(termType ?? constantType(term) ?? ANY, type);
  }
}

function unify1Object(env: Env, term: TermOf<"object">, type: RegoType & { kind: "object" }, union: boolean): boolean {
  if (term.entries.length !== type.props.length && !type.dynamic) return false;
  return term.entries.every(([key, value]) => {
    // OPA does not infer a value under a key that is not constant: it is any.
    if (constantType(key) === undefined) return unify1(env, value, undefined, ANY, union) || true;
    const child = selectConstant(type, key);
    return child !== undefined && unify1(env, value, undefined, child, union);
  });
}

function unify1Var(env: Env, term: TermOf<"var">, termType: Type, type: Type, union: boolean): boolean {
  if (isWildcard(term.name)) return true;
  // A document's name is a reference to it: its own type must unify (unknown here: it does).
  if (env.isDocument(term.name)) return termType === undefined || unifies(termType, type);
  if (union) {
    env.set(term.name, or(env.get(term.name), type));
    return true;
  }
  const exist = env.get(term.name);
  if (exist !== undefined) return unifies(exist, type);
  env.set(term.name, type);
  return true;
}

/** A composite literal against `any` (every element any) or a union (some member fits). */
function unify1Any(env: Env, term: Term, type: Type, elements: Term[]): boolean {
  if (type?.kind !== "any") return false;
  if (type.of.length === 0) {
    for (const element of elements) unify1(env, element, undefined, ANY, true);
    return true;
  }
  let ok = false;
  for (const member of type.of) ok = unify1(env, term, undefined, member, true) || ok;
  return ok;
}

/** Whether two sides of `=` can ever be equal, given what is known of their types. */
function unify2(env: Env, a: Term, typeA: Type, b: Term, typeB: Type): boolean {
  const nilA = isNil(typeA);
  const nilB = isNil(typeB);
  if (nilA && !nilB) return unify1(env, a, typeA, typeB, false);
  if (nilB && !nilA) return unify1(env, b, typeB, typeA, false);
  if (!nilA && !nilB) return unifies(typeA, typeB);
  if (a.kind === "array" || a.kind === "object") return unify2Composite(env, a, b);
  if (a.kind === "var" && (b.kind === "array" || b.kind === "object")) return unify2Composite(env, b, a);
  if (a.kind === "var" && b.kind === "var") {
    return unify1(env, a, undefined, ANY, false) && unify1(env, b, undefined, env.get(a.name), false);
  }
  // OPA fails here; these shapes are the planner's to judge (its `match error`), so no error.
  return true;
}

function unify2Composite(env: Env, a: TermOf<"array" | "object">, b: Term): boolean {
  if (b.kind === "var") {
    return unify1(env, a, undefined, ANY, false) && unify1(env, b, undefined, typeOfPattern(a, env), false);
  }
  if (a.kind === "array" && b.kind === "array" && a.items.length === b.items.length) {
    return a.items.every((x, i) => {
      const y = b.items[i] as Term;
      return unify2(env, x, typeOfPattern(x, env), y, typeOfPattern(y, env));
    });
  }
  if (a.kind === "object" && b.kind === "object" && a.entries.length === b.entries.length) {
    return a.entries.every(([k, v]) => {
      const match = b.entries.find(([k2]) => sameConstant(k, k2));
      return match !== undefined && unify2(env, v, typeOfPattern(v, env), match[1], typeOfPattern(match[1], env));
    });
  }
  return true;
}

/** A pattern's type from the variables typed so far (OPA's env.Get); untyped variables are nil. */
function typeOfPattern(term: Term, env: Env): Type {
  switch (term.kind) {
    case "var":
      return isWildcard(term.name) ? undefined : env.get(term.name);
    case "array":
      return arrayOf(
        term.items.length === 0 ? ANY : undefined,
        term.items.map((t) => typeOfPattern(t, env)),
      );
    case "object": {
      const props = term.entries.flatMap(([k, v]) =>
        k.kind === "string" ? [{ key: k.value, value: typeOfPattern(v, env) }] : [],
      );
      return objectOf(props, props.length === term.entries.length ? undefined : { key: ANY, value: ANY });
    }
    default:
      return constantType(term) ?? ANY;
  }
}

function sameConstant(a: Term, b: Term): boolean {
  if (a.kind === "string" && b.kind === "string") return a.value === b.value;
  if (a.kind === "number" && b.kind === "number") return Number(a.text) === Number(b.text);
  return a.kind === b.kind && (a.kind === "null" || (a.kind === "boolean" && a.value === (b as typeof a).value));
}

/** Whether a type is not fully known (types.Nil): nil, or nil somewhere inside. */
function isNil(t: Type): boolean {
  if (!t) return true;
  switch (t.kind) {
    case "array":
      return t.items.some(isNil) || (t.dynamic !== undefined && isNil(t.dynamic));
    case "object":
      return (
        t.props.some((p) => isNil(p.value)) ||
        (t.dynamic !== undefined && (isNil(t.dynamic.key) || isNil(t.dynamic.value)))
      );
    case "set":
      return isNil(t.of);
    default:
      return false;
  }
}

/** Binds an iteration's pattern: a variable takes the type; a composite's variables any. */
function bindPattern(pattern: Term, type: RegoType, env: Env): void {
  if (pattern.kind === "var") {
    if (!isWildcard(pattern.name)) env.set(pattern.name, type);
    return;
  }
  unify1(env, pattern, undefined, ANY, true);
}

// ---- reference errors (check.go's refChecker) -----------------------------------------------------

/** How OPA prints a reference: `x.a`, `x[0]`, `x[y]`, `x["a b"]`. */
function formatRef(term: TermOf<"ref">, upTo = term.path.length): string {
  return termText(term.head) + term.path.slice(0, upTo).map(refSegmentText).join("");
}

/** `undefined ref: x.a.b`, with the position of the element at fault. */
function refError(term: TermOf<"ref">, index: number, lines: string[], underline: boolean): ExprError {
  const text = formatRef(term);
  const marker = underline
    ? "^".repeat(formatRef(term, index).length)
    : `${" ".repeat(formatRef(term, index).length + 1)}^`;
  return typeError(`undefined ref: ${text}`, term.head.loc, [text, marker, ...lines]);
}

function invalidRef(term: TermOf<"ref">, index: number, have: Type, want: Type, of: Type): ExprError {
  const pad = " ".repeat(formatRef(term, index).length + 1);
  const segment = term.path[index] as Term;
  const oneOf = of?.kind === "object" ? of.props.map((p) => JSON.stringify(p.key)) : [];
  const haveLine = have !== undefined ? `have (type): ${formatType(have)}` : `have: ${termText(segment)}`;
  const wantLine = oneOf.length > 0 ? `want (one of): [${oneOf.join(" ")}]` : `want (type): ${formatType(want)}`;
  return refError(term, index, [pad + haveLine, pad + wantLine], false);
}
