// Stage 4 of the Rego compiler, as OPA's compiler has it: safety. Before a body is planned, its
// literals are put in a safe order — a literal runs once every variable it reads is bound — and a
// variable that no literal can bind is reported as unsafe (`var x is unsafe`), with its position.
// OPA's declaration check (`var x referenced above`) runs first. Both are pure functions of the
// AST; what lies outside the body (which names are documents, what arity a call has, what is
// already bound) comes in as a SafetyContext and a BodyScope.
import { type Comprehension, type Literal, type LiteralOf, subterms, type Term, type TermOf } from "./ast.ts";
import { RegoError } from "./lexer.ts";
import {
  comprehensionFreeVars,
  declaredBy,
  displayName,
  isComprehension,
  isWildcard,
  literalTerms,
  patternVars,
  type Var,
  varsOf,
} from "./vars.ts";

/** What the safety stage needs to know about the names around a body. */
export interface SafetyContext {
  /** Whether a name that is not declared local refers to a document: input, data, an import, a rule or a package. */
  isDocument(name: string): boolean;
  /** The arity of the function or built-in a call names: one argument more is an output (`count(xs, n)`). */
  arity(call: TermOf<"call">): number;
}

/** The body's surroundings when it starts. */
export interface BodyScope {
  /** Variables already bound. */
  bound: Iterable<string>;
  /** Names declared local (`some x`, `x :=`) that shadow documents. */
  declared: Iterable<string>;
  /** Variables of the enclosing bodies and of this one: closures (comprehensions, `every`, `not`) capture these. */
  bodyVars: ReadonlySet<string>;
}

/**
 * OPA: `x := ...`, `some x` and `some x in ...` declare x; declaring a variable that an earlier
 * literal (or a function argument, `args`) already uses is an error ("var x referenced above").
 */
export function checkDeclarations(literals: Literal[], args: string[] = []): void {
  const seen = new Set(args);
  for (const literal of literals) {
    const redeclared = declaredBy(literal).find((v) => !isWildcard(v.name) && seen.has(v.name));
    if (redeclared) {
      throw new RegoError("rego_compile_error", `var ${redeclared.name} referenced above`, redeclared.loc);
    }
    const mentioned = literal.kind === "some" ? literal.vars : literalTerms(literal);
    for (const v of mentioned.flatMap(varsOf)) seen.add(v.name);
  }
}

/**
 * OPA's reordering for safety: repeatedly takes the first literal whose inputs are bound. A
 * literal that can never run reports its first unbound variable as unsafe.
 */
export function orderForSafety(literals: Literal[], scope: BodyScope, context: SafetyContext): Literal[] {
  return new SafetyOrder(scope, context).order(literals, new Set(scope.bound));
}

class SafetyOrder {
  readonly #declared: Set<string>;
  readonly #bodyVars: ReadonlySet<string>;
  readonly #context: SafetyContext;

  constructor(scope: BodyScope, context: SafetyContext) {
    this.#declared = new Set(scope.declared);
    this.#bodyVars = scope.bodyVars;
    this.#context = context;
  }

  order(literals: Literal[], bound: Set<string>): Literal[] {
    const remaining = [...literals];
    const ordered: Literal[] = [];
    while (remaining.length > 0) {
      const index = remaining.findIndex((literal) => this.#firstUnbound(literal, bound) === undefined);
      if (index < 0) throw this.#unsafe(remaining[0] as Literal, bound);
      const [literal] = remaining.splice(index, 1) as [Literal];
      ordered.push(literal);
      this.#run(literal, bound);
    }
    return ordered;
  }

  #unsafe(literal: Literal, bound: Set<string>): RegoError {
    const unsafe = this.#firstUnbound(literal, bound);
    const name = displayName(unsafe?.name ?? "?");
    return new RegoError("rego_unsafe_var_error", `var ${name} is unsafe`, unsafe?.loc ?? literal.loc);
  }

  /** Records what a literal declares and binds once it has run. */
  #run(literal: Literal, bound: Set<string>): void {
    if (literal.kind === "some")
      for (const v of literal.vars) for (const name of patternVars(v)) this.#declared.add(name);
    if (literal.kind === "unify" && literal.assign)
      for (const name of patternVars(literal.left)) this.#declared.add(name);
    for (const name of this.#outputs(literal, bound)) bound.add(name);
  }

  /** A variable name that is local here (not input/data, an import or a rule). */
  #isLocalName(name: string): boolean {
    return this.#declared.has(name) || isWildcard(name) || !this.#context.isDocument(name);
  }

  #isUnboundLocal(name: string, bound: Set<string>): boolean {
    return !isWildcard(name) && !bound.has(name) && this.#isLocalName(name);
  }

  /** The first variable a literal needs that `bound` does not bind, if any. */
  #firstUnbound(literal: Literal, bound: Set<string>): Var | undefined {
    const missing: Var[] = [];
    const withValues = literal.kind === "expr" || literal.kind === "unify" ? literal.with.map((w) => w.value) : [];
    for (const value of withValues) this.#needs(value, bound, missing);
    switch (literal.kind) {
      case "some":
        break;
      case "somein":
        this.#needs(literal.collection, bound, missing);
        break;
      case "every":
        this.#everyNeeds(literal, bound, missing);
        break;
      case "unify":
        this.#unifyNeeds(literal, bound, missing);
        break;
      case "expr":
        this.#exprNeeds(literal, bound, missing);
        break;
    }
    return missing[0];
  }

  /** `every`: its domain, and the enclosing body's variables its body reads (its own key and value aside). */
  #everyNeeds(literal: LiteralOf<"every">, bound: Set<string>, missing: Var[]): void {
    this.#needs(literal.domain, bound, missing);
    const own = new Set([...(literal.key ? patternVars(literal.key) : []), ...patternVars(literal.value)]);
    for (const term of literal.body.flatMap(literalTerms)) {
      for (const v of this.#needsOf(term, bound)) if (!own.has(v.name) && this.#bodyVars.has(v.name)) missing.push(v);
    }
  }

  #unifyNeeds(literal: LiteralOf<"unify">, bound: Set<string>, missing: Var[]): void {
    if (literal.negated) {
      for (const term of [literal.left, literal.right]) this.#negatedNeeds(term, bound, missing);
    } else if (literal.assign) {
      this.#needs(literal.right, bound, missing);
      this.#patternNeeds(literal.left, bound, missing);
    } else {
      missing.push(...this.#unificationNeeds(literal.left, literal.right, bound));
    }
  }

  /** `a = b` runs when both sides can be evaluated, or one side is a pattern the other fills. */
  #unificationNeeds(left: Term, right: Term, bound: Set<string>): Var[] {
    const leftMissing = this.#needsOf(left, bound);
    const rightMissing = this.#needsOf(right, bound);
    if (leftMissing.length === 0 && rightMissing.length === 0) return [];
    if (rightMissing.length === 0 && this.#patternNeedsOf(left, bound).length === 0) return [];
    if (leftMissing.length === 0 && this.#patternNeedsOf(right, bound).length === 0) return [];
    if (left.kind === "array" && right.kind === "array" && this.#pairwiseReady(left.items, right.items, bound)) {
      return [];
    }
    return [...leftMissing, ...rightMissing];
  }

  /** `[a, b] = [1, a]`: the items unify one pair at a time, each binding what the next needs. */
  #pairwiseReady(left: Term[], right: Term[], bound: Set<string>): boolean {
    if (left.length !== right.length) return true;
    const pairBound = new Set(bound);
    const pending = left.map((l, i): Literal => {
      const r = right[i] as Term;
      return { kind: "unify", assign: false, negated: false, left: l, right: r, with: [], loc: l.loc };
    });
    let ready = pending.findIndex((pair) => this.#firstUnbound(pair, pairBound) === undefined);
    while (ready >= 0) {
      const [pair] = pending.splice(ready, 1) as [Literal];
      for (const name of this.#outputs(pair, pairBound)) pairBound.add(name);
      ready = pending.findIndex((p) => this.#firstUnbound(p, pairBound) === undefined);
    }
    return pending.length === 0;
  }

  /** An expression; a call with one argument too many binds that last argument as a pattern. */
  #exprNeeds(literal: LiteralOf<"expr">, bound: Set<string>, missing: Var[]): void {
    const { expr } = literal;
    if (literal.negated) {
      this.#negatedNeeds(expr, bound, missing);
    } else if (expr.kind === "call" && expr.args.length === this.#context.arity(expr) + 1) {
      for (const arg of expr.args.slice(0, -1)) this.#needs(arg, bound, missing);
      this.#patternNeeds(expr.args.at(-1) as Term, bound, missing);
    } else {
      this.#needs(expr, bound, missing);
    }
  }

  #needsOf(term: Term, bound: Set<string>): Var[] {
    const out: Var[] = [];
    this.#needs(term, bound, out);
    return out;
  }

  /** Variables a term reads that must be bound (ref-path variables and patterns excluded). */
  #needs(term: Term, bound: Set<string>, out: Var[], pattern = false): void {
    if (term.kind === "var") {
      if (!pattern && this.#isUnboundLocal(term.name, bound)) out.push(term);
    } else if (isComprehension(term)) {
      this.#closureNeeds(term, bound, out);
    } else {
      for (const [part, isPattern] of partsRead(term, pattern)) this.#needs(part, bound, out, isPattern);
    }
  }

  /** A comprehension captures the variables of the enclosing body: those must be bound first. */
  #closureNeeds(term: Comprehension, bound: Set<string>, out: Var[]): void {
    for (const v of comprehensionFreeVars(term)) {
      if (!bound.has(v.name) && this.#bodyVars.has(v.name) && this.#isLocalName(v.name)) out.push(v);
    }
  }

  #patternNeedsOf(pattern: Term, bound: Set<string>): Var[] {
    const out: Var[] = [];
    this.#patternNeeds(pattern, bound, out);
    return out;
  }

  /** For a pattern: the refs and calls inside it must be evaluable; its variables may be unbound. */
  #patternNeeds(pattern: Term, bound: Set<string>, out: Var[]): void {
    if (pattern.kind === "var") return;
    if (pattern.kind === "array") {
      for (const item of pattern.items) this.#patternNeeds(item, bound, out);
    } else if (pattern.kind === "object") {
      for (const [key, value] of pattern.entries) {
        this.#needs(key, bound, out);
        this.#patternNeeds(value, bound, out);
      }
    } else {
      this.#needs(pattern, bound, out);
    }
  }

  /** `not`: every variable that the enclosing body binds must be bound first. */
  #negatedNeeds(term: Term, bound: Set<string>, out: Var[]): void {
    const inner = this.#needsOf(term, bound);
    for (const v of varsOf(term)) {
      if (!bound.has(v.name) && this.#bodyVars.has(v.name) && this.#isLocalName(v.name)) out.push(v);
    }
    for (const v of inner) if (this.#bodyVars.has(v.name)) out.push(v);
  }

  /** Variables a literal binds when run with `bound` already bound. */
  #outputs(literal: Literal, bound: Set<string>): string[] {
    return bindingCandidates(literal)
      .map((v) => v.name)
      .filter((name) => !isWildcard(name) && !bound.has(name) && this.#isLocalName(name));
  }
}

/**
 * A term's sub-terms, each with whether it is read as a pattern (its variables bound, not read):
 * a reference's path iterates; collection items inherit; object keys are always read.
 */
function partsRead(term: Term, pattern: boolean): Array<[Term, boolean]> {
  switch (term.kind) {
    case "ref":
      return [[term.head, false], ...term.path.map((segment): [Term, boolean] => [segment, true])];
    case "array":
    case "set":
      return term.items.map((item) => [item, pattern]);
    case "object":
      return term.entries.flatMap(
        ([key, value]): Array<[Term, boolean]> => [
          [key, false],
          [value, pattern],
        ],
      );
    default:
      return subterms(term).map((operand) => [operand, false]);
  }
}

/** The variables a literal may bind: a negated literal, `some` and `every` bind none outside. */
function bindingCandidates(literal: Literal): Var[] {
  switch (literal.kind) {
    case "somein":
      return [literal.key, literal.value].filter((t) => t !== undefined).flatMap(varsOf);
    case "unify":
      return literal.negated ? [] : [...varsOf(literal.left), ...varsOf(literal.right)];
    case "expr":
      return literal.negated ? [] : varsOf(literal.expr);
    default:
      return [];
  }
}
