// Stage 2 of the Rego compiler: tokens to a module AST (Rego v1 by default; v0 syntax when asked,
// as `opa --v0-compatible` does). Precedence follows OPA's parser, lowest first: `in`, relations
// (== != < <= > >=), `|`, `&`, `+ -`, `* / %`. Unification and assignment exist only at literal level.
import type { BinaryOp, ElseClause, Import, Literal, Module, Rule, RuleHead, Term } from "./ast.ts";
import { type Location, RegoError, type Token, tokenize } from "./lexer.ts";

export interface ParseOptions {
  /** Read Rego v0 syntax (rules without `if`, `p[x]` partial sets, keywords only via imports). */
  v0?: boolean;
  file?: string;
}

const FUTURE_KEYWORDS = ["in", "every", "if", "contains"] as const;
const RELATIONS = new Set(["==", "!=", "<", "<=", ">", ">="]);

export function parseModule(source: string, options: ParseOptions = {}): Module {
  return new Parser(tokenize(source, options.file ?? "policy.rego"), options).module();
}

/** Parses a query such as `data.test.main` or `x := 1; x > 0`. */
export function parseQuery(source: string, options: ParseOptions = {}): Literal[] {
  const parser = new Parser(tokenize(source, options.file ?? "query.rego"), { ...options, v0: false });
  return parser.queryOnly();
}

class Parser {
  readonly #tokens: Token[];
  readonly #v1: boolean;
  #pos = 0;
  /** Bracket depth: newlines are insignificant inside (), [] and {} of terms. */
  #depth = 0;
  #keywords = new Set<string>();
  /** Rego v1, or v0 with `import rego.v1`: bodies need `if`, partial sets need `contains`. */
  #requireIf: boolean;

  constructor(tokens: Token[], options: ParseOptions) {
    this.#tokens = tokens;
    this.#v1 = !options.v0;
    this.#requireIf = this.#v1;
    if (this.#v1) this.#keywords = new Set(FUTURE_KEYWORDS);
  }

  module(): Module {
    this.#skipNewlines();
    this.#expectIdent("package");
    const pkgRef = this.#ref();
    const pkg = this.#refPath(pkgRef, "package");
    const imports: Import[] = [];
    const rules: Rule[] = [];
    this.#endOfStatement();
    for (;;) {
      this.#skipNewlines();
      if (this.#atIdent("import")) {
        const imp = this.#import();
        imports.push(imp);
        this.#enableKeywords(imp);
        this.#endOfStatement();
        continue;
      }
      break;
    }
    for (;;) {
      this.#skipNewlines();
      if (this.#peek().kind === "eof") break;
      if (this.#atIdent("import")) throw this.#error("imports must come before rules");
      if (this.#atIdent("package")) throw this.#error("a module has one package");
      rules.push(...this.#rule());
    }
    return { file: this.#peek().loc.file, package: pkg, imports, rules, v1: this.#v1 };
  }

  queryOnly(): Literal[] {
    this.#skipNewlines();
    const body = this.#queryUntil((t) => t.kind === "eof");
    if (this.#peek().kind !== "eof") throw this.#error("unexpected token after query");
    return body;
  }

  // ---- imports and keywords --------------------------------------------------------------------

  #import(): Import {
    const loc = this.#next().loc;
    const path = this.#ref();
    let alias: string | undefined;
    if (this.#atIdent("as")) {
      this.#next();
      alias = this.#expectKind("ident").text;
    }
    const head = path.kind === "ref" ? path.head : path;
    const root = head.kind === "var" ? head.name : "";
    if (!["data", "input", "future", "rego"].includes(root)) {
      throw new RegoError("rego_parse_error", "invalid import path: must begin with input or data", loc);
    }
    return { path, alias, loc };
  }

  #enableKeywords(imp: Import): void {
    const path = this.#refPath(imp.path, "import");
    if (path[0] === "rego" && path[1] === "v1") {
      for (const k of FUTURE_KEYWORDS) this.#keywords.add(k);
      this.#requireIf = true;
    } else if (path[0] === "future" && path[1] === "keywords") {
      if (path.length === 2) for (const k of FUTURE_KEYWORDS) this.#keywords.add(k);
      else if ((FUTURE_KEYWORDS as readonly string[]).includes(path[2] as string))
        this.#keywords.add(path[2] as string);
      else throw new RegoError("rego_parse_error", `unexpected keyword: ${path[2]}`, imp.loc);
    }
  }

  // ---- rules -----------------------------------------------------------------------------------

  #rule(): Rule[] {
    const loc = this.#peek().loc;
    const isDefault = this.#atIdent("default");
    if (isDefault) this.#next();
    const head = this.#ruleHead(isDefault);
    if (isDefault) return [this.#defaultRule(head, loc)];
    const hasIf = this.#atKeyword("if");
    const bodies = [this.#firstBody(head, hasIf)];
    // v0: several bodies in a row define the same rule more than once (p { a } { b }).
    while (!this.#requireIf && this.#atPunct("{") && !hasIf) bodies.push(this.#braceBody());
    const elses = this.#elses();
    this.#endOfStatement();
    if (bodies.length > 1) {
      return bodies.map((body) => ({ default: false, head, bodies: [body], elses: [], loc }));
    }
    return [{ default: false, head, bodies, elses, loc }];
  }

  #defaultRule(head: RuleHead, loc: Location): Rule {
    if (!head.value) throw new RegoError("rego_parse_error", "default rules must have a value", loc);
    this.#endOfStatement();
    return { default: true, head, bodies: [[]], elses: [], loc };
  }

  /** The body after the head: after `if`, in braces (v0), or none at all (`p := 1`, `f(x) := x`). */
  #firstBody(head: RuleHead, hasIf: boolean): Literal[] {
    if (hasIf) {
      this.#next();
      return this.#ruleBody();
    }
    if (this.#atPunct("{")) return this.#v0Body();
    if (!head.value && !head.contains && !head.args) {
      throw new RegoError("rego_parse_error", "rule must have a value or a body", head.loc);
    }
    return [];
  }

  /** `{ … }` without `if`, which only Rego v0 reads. */
  #v0Body(): Literal[] {
    if (this.#requireIf) throw this.#error("`if` keyword is required before rule body");
    return this.#braceBody();
  }

  /** `else [= value] [if] { … }` clauses, each beginning a line of its own or not. */
  #elses(): ElseClause[] {
    const elses: ElseClause[] = [];
    while (this.#nextLineStartsWith("else")) {
      this.#skipNewlines();
      const loc = this.#next().loc;
      const value = this.#assignment()?.value;
      elses.push({ value, body: this.#elseBody(), loc });
    }
    return elses;
  }

  #elseBody(): Literal[] {
    if (this.#atKeyword("if")) {
      this.#next();
      return this.#ruleBody();
    }
    return this.#atPunct("{") ? this.#v0Body() : [];
  }

  /** `= value` or `:= value`, if there. */
  #assignment(): { assign: boolean; value: Term } | undefined {
    if (!this.#atPunct("=") && !this.#atPunct(":=")) return undefined;
    const assign = this.#next().text === ":=";
    return { assign, value: this.#expr() };
  }

  #ruleHead(isDefault: boolean): RuleHead {
    const loc = this.#peek().loc;
    const name = this.#expectKind("ident");
    if (this.#isReservedName(name.text)) {
      throw new RegoError("rego_parse_error", `unexpected ${name.text} keyword`, name.loc);
    }
    const path = this.#headPath();
    const named: Term = { kind: "var", name: name.text, loc: name.loc };
    const args = this.#headArgs();
    const { ref, contains } = this.#headElement(
      path.length > 0 ? { kind: "ref", head: named, path, loc } : named,
      args,
    );
    const { assign, value } = this.#assignment() ?? { assign: false, value: undefined };
    // OPA allows default functions; a default partial set is an error.
    if (isDefault && contains) throw new RegoError("rego_parse_error", "default rules cannot be partial sets", loc);
    return { ref, args, contains, value, assign, loc };
  }

  /** `.a` and `[expr]` after a rule's name: a ref head. */
  #headPath(): Term[] {
    const path: Term[] = [];
    for (;;) {
      if (this.#atPunct(".")) {
        this.#next();
        const part = this.#expectKind("ident");
        path.push({ kind: "string", value: part.text, loc: part.loc });
      } else if (this.#atPunct("[") && this.#adjacent()) {
        this.#next();
        this.#depth++;
        path.push(this.#expr());
        this.#expectPunct("]");
        this.#depth--;
      } else {
        return path;
      }
    }
  }

  /** A function's parameters: `(a, [b, c])`. */
  #headArgs(): Term[] | undefined {
    if (!this.#atPunct("(") || !this.#adjacent()) return undefined;
    this.#next();
    this.#depth++;
    const args: Term[] = [];
    while (!this.#atPunct(")")) {
      args.push(this.#term());
      if (!this.#atPunct(")")) this.#expectPunct(",");
    }
    this.#expectPunct(")");
    this.#depth--;
    return args;
  }

  /** A partial set's element: `p contains x`, or v0's `p[x] { … }` (the last key is the element). */
  #headElement(ref: Term, args: Term[] | undefined): { ref: Term; contains: Term | undefined } {
    if (this.#atKeyword("contains")) {
      this.#next();
      return { ref, contains: this.#expr() };
    }
    if (this.#requireIf || ref.kind !== "ref" || args || this.#atPunct("=") || this.#atPunct(":=")) {
      return { ref, contains: undefined };
    }
    const contains = ref.path.at(-1) as Term;
    return { ref: ref.path.length === 1 ? ref.head : { ...ref, path: ref.path.slice(0, -1) }, contains };
  }

  /** After `if`: a braced body (OPA reads `{` there as a body, never a set or object), or one literal. */
  #ruleBody(): Literal[] {
    return this.#atPunct("{") ? this.#braceBody() : [this.#literal()];
  }

  #braceBody(): Literal[] {
    this.#expectPunct("{");
    const saved = this.#depth;
    this.#depth = 0; // newlines separate literals inside a body
    this.#skipSeparators();
    const body = this.#queryUntil((t) => t.kind === "punct" && t.text === "}");
    this.#expectPunct("}");
    this.#depth = saved;
    if (body.length === 0) throw this.#error("found empty body");
    return body;
  }

  #queryUntil(stop: (t: Token) => boolean): Literal[] {
    const literals: Literal[] = [];
    this.#skipSeparators();
    while (!stop(this.#peek())) {
      literals.push(this.#literal());
      const t = this.#peek();
      if (stop(t)) break;
      if (!(t.kind === "newline" || (t.kind === "punct" && t.text === ";"))) {
        throw this.#error(`unexpected ${describe(t)}`);
      }
      this.#skipSeparators();
    }
    return literals;
  }

  // ---- literals --------------------------------------------------------------------------------

  #literal(): Literal {
    const loc = this.#peek().loc;
    if (this.#atIdent("some")) return this.#some(loc);
    if (this.#atKeyword("every")) return this.#every(loc);
    const negated = this.#atIdent("not");
    if (negated) this.#next();
    const left = this.#keyValueMembership(this.#expr());
    const assignment = this.#assignment();
    const literal: Literal = assignment
      ? { kind: "unify", assign: assignment.assign, negated, left, right: assignment.value, with: [], loc }
      : { kind: "expr", negated, expr: left, with: [], loc };
    while (this.#atIdent("with")) {
      const withLoc = this.#next().loc;
      const target = this.#term();
      this.#expectIdent("as");
      const value = this.#term();
      literal.with.push({ target, value, loc: withLoc });
    }
    return literal;
  }

  /** `some x, y` declares; `some v in xs` and `some k, v in xs` iterate. */
  #some(loc: Location): Literal {
    this.#next();
    const vars = [this.#termNoIn()];
    while (this.#atPunct(",")) {
      this.#next();
      vars.push(this.#termNoIn());
    }
    if (this.#atKeyword("in")) {
      this.#next();
      if (vars.length > 2) throw new RegoError("rego_parse_error", "unexpected , in some", loc);
      const collection = this.#exprRelation();
      const [key, value] = vars.length === 2 ? vars : [undefined, vars[0]];
      return { kind: "somein", key, value: value as Term, collection, loc };
    }
    const notVar = vars.find((v) => v.kind !== "var");
    if (notVar) throw new RegoError("rego_parse_error", "expected var in some declaration", notVar.loc);
    return { kind: "some", vars, loc };
  }

  /** `every v in xs { … }`, `every k, v in xs { … }`. */
  #every(loc: Location): Literal {
    this.#next();
    const first = this.#termNoIn();
    let key: Term | undefined;
    let value = first;
    if (this.#atPunct(",")) {
      this.#next();
      key = first;
      value = this.#termNoIn();
    }
    if (!this.#atKeyword("in")) throw this.#error("expected `in` after every");
    this.#next();
    const domain = this.#exprRelation();
    const body = this.#braceBody();
    return { kind: "every", key, value, domain, body, loc };
  }

  /** `k, v in xs` as an expression (key/value membership), when `left` is followed by a comma. */
  #keyValueMembership(left: Term): Term {
    if (!this.#atPunct(",") || !this.#keywords.has("in")) return left;
    this.#next();
    const value = this.#exprRelation();
    if (!this.#atKeyword("in")) throw this.#error("expected `in` after `k, v`");
    const inLoc = this.#next().loc;
    return { kind: "membership", key: left, value, collection: this.#exprRelation(), loc: inLoc };
  }

  // ---- expressions -----------------------------------------------------------------------------

  #expr(): Term {
    return this.#exprIn();
  }

  /** The lowest level: membership `x in xs`, `k, v in xs` (only where a comma cannot mean something else). */
  #exprIn(): Term {
    let left = this.#exprRelation();
    while (this.#atKeyword("in")) {
      const loc = this.#next().loc;
      const collection = this.#exprRelation();
      left = { kind: "membership", key: undefined, value: left, collection, loc };
    }
    return left;
  }

  #exprRelation(): Term {
    let left = this.#exprOr();
    while (this.#peek().kind === "punct" && RELATIONS.has(this.#peek().text)) {
      const op = this.#next();
      left = { kind: "binary", op: op.text as BinaryOp, left, right: this.#exprOr(), loc: op.loc };
    }
    return left;
  }

  #noUnion = false;

  #exprOr(): Term {
    let left = this.#exprAnd();
    while (this.#atPunct("|") && !this.#noUnion) {
      const op = this.#next();
      left = { kind: "binary", op: "|", left, right: this.#exprAnd(), loc: op.loc };
    }
    return left;
  }

  #exprAnd(): Term {
    let left = this.#exprArith();
    while (this.#atPunct("&")) {
      const op = this.#next();
      left = { kind: "binary", op: "&", left, right: this.#exprArith(), loc: op.loc };
    }
    return left;
  }

  #exprArith(): Term {
    let left = this.#exprFactor();
    while (this.#atPunct("+") || this.#atPunct("-")) {
      const op = this.#next();
      left = { kind: "binary", op: op.text as BinaryOp, left, right: this.#exprFactor(), loc: op.loc };
    }
    return left;
  }

  #exprFactor(): Term {
    let left = this.#term();
    while (this.#atPunct("*") || this.#atPunct("/") || this.#atPunct("%")) {
      const op = this.#next();
      left = { kind: "binary", op: op.text as BinaryOp, left, right: this.#term(), loc: op.loc };
    }
    return left;
  }

  /** A term for a `some`/`every` declaration: no `in` at its top level. */
  #termNoIn(): Term {
    return this.#exprRelation();
  }

  // ---- terms -----------------------------------------------------------------------------------

  #term(): Term {
    const t = this.#peek();
    if (t.kind !== "punct" || t.text !== "-") return this.#postfix(this.#operand(t));
    // `-1` is a number literal; `-x` a negation of the whole term that follows.
    this.#next();
    this.#skipNewlines();
    const next = this.#peek();
    if (next.kind !== "number") return { kind: "unary", op: "-", arg: this.#term(), loc: t.loc };
    this.#next();
    return this.#postfix({ kind: "number", text: `-${next.text}`, loc: t.loc });
  }

  /** A term before any `.name`, `[index]` or `(args)` after it. */
  #operand(t: Token): Term {
    switch (t.kind) {
      case "number":
        this.#next();
        return { kind: "number", text: t.text, loc: t.loc };
      case "string":
      case "rawstring":
        this.#next();
        return { kind: "string", value: t.text, loc: t.loc };
      case "ident":
        this.#next();
        return this.#named(t);
      default:
        if (t.kind === "punct" && t.text === "(") return this.#parenthesized();
        if (t.kind === "punct" && t.text === "[") return this.#arrayOrComprehension();
        if (t.kind === "punct" && t.text === "{") return this.#setObjectOrComprehension();
        throw this.#error(`unexpected ${describe(t)}`);
    }
  }

  /** null, true, false, or a variable (a reserved word is not one). */
  #named(t: Token): Term {
    if (t.text === "null") return { kind: "null", loc: t.loc };
    if (t.text === "true" || t.text === "false") return { kind: "boolean", value: t.text === "true", loc: t.loc };
    // `contains` is a keyword only in rule heads; `contains(s, x)` is still the string built-in.
    const builtinCall = t.text === "contains" && this.#peek().kind === "punct" && this.#peek().text === "(";
    if (this.#isReservedName(t.text) && !builtinCall) {
      throw new RegoError("rego_parse_error", `unexpected ${t.text} keyword`, t.loc);
    }
    return { kind: "var", name: t.text, loc: t.loc };
  }

  #parenthesized(): Term {
    this.#next();
    this.#depth++;
    const term = this.#withUnion(() => this.#expr());
    this.#expectPunct(")");
    this.#depth--;
    return term;
  }

  /** Parses with `|` as set union again (inside parentheses, brackets and call arguments). */
  #withUnion<T>(parse: () => T): T {
    const saved = this.#noUnion;
    this.#noUnion = false;
    const result = parse();
    this.#noUnion = saved;
    return result;
  }

  /** `.name`, `[expr]` and `(args)` directly after a term (no whitespace before `[` or `(`). */
  #postfix(start: Term): Term {
    let term = start;
    for (;;) {
      if (this.#atPunct(".") && this.#adjacent()) term = this.#field(term);
      else if (this.#atPunct("[") && this.#adjacent()) term = this.#index(term);
      else if (this.#atPunct("(") && this.#adjacent()) term = this.#call(term);
      else return term;
    }
  }

  #field(term: Term): Term {
    this.#next();
    const part = this.#expectKind("ident");
    return appendPath(term, { kind: "string", value: part.text, loc: part.loc });
  }

  #index(term: Term): Term {
    this.#next();
    this.#depth++;
    const index = this.#withUnion(() => this.#expr());
    this.#expectPunct("]");
    this.#depth--;
    return appendPath(term, index);
  }

  #call(callee: Term): Term {
    const name = callName(callee);
    if (name === undefined) throw this.#error("invalid function name");
    this.#next();
    this.#depth++;
    const args = this.#withUnion(() => this.#callArgs());
    this.#expectPunct(")");
    this.#depth--;
    // `set()` is the empty set literal, not a call.
    if (name === "set" && args.length === 0) return { kind: "set", items: [], loc: callee.loc };
    return { kind: "call", name, nameRef: callee, args, loc: callee.loc };
  }

  #callArgs(): Term[] {
    const args: Term[] = [];
    this.#skipNewlines();
    while (!this.#atPunct(")")) {
      args.push(this.#expr());
      this.#skipNewlines();
      if (!this.#atPunct(")")) {
        this.#expectPunct(",");
        this.#skipNewlines();
      }
    }
    return args;
  }

  /** `[a, b]`, or `[x | body]`. */
  #arrayOrComprehension(): Term {
    const loc = this.#next().loc;
    this.#depth++;
    this.#skipNewlines();
    let term: Term = { kind: "array", items: [], loc };
    if (!this.#atPunct("]")) {
      const start = this.#pos;
      const { item, body } = this.#afterFirst(start, this.#element(), "]");
      if (body) {
        this.#depth--;
        return { kind: "arraycomp", term: item, body, loc };
      }
      term = { kind: "array", items: this.#moreItems([item], "]", () => this.#element()), loc };
    }
    this.#expectPunct("]");
    this.#depth--;
    return term;
  }

  /** `{}` (an empty object), `{k: v}`, `{k: v | body}`, `{a, b}` or `{x | body}`. */
  #setObjectOrComprehension(): Term {
    const loc = this.#next().loc;
    this.#depth++;
    this.#skipNewlines();
    if (this.#atPunct("}")) {
      this.#next();
      this.#depth--;
      return { kind: "object", entries: [], loc };
    }
    const start = this.#pos;
    const first = this.#element();
    const term = this.#atPunct(":") ? this.#objectRest(first, loc) : this.#setRest(start, first, loc);
    this.#depth--;
    return term;
  }

  /** After `{key`: `: value`, then more entries, or `| body` for an object comprehension. */
  #objectRest(key: Term, loc: Location): Term {
    this.#next(); // :
    this.#skipNewlines();
    const value = this.#element();
    if (this.#atPunct("|")) {
      this.#next();
      return { kind: "objectcomp", key, value, body: this.#compBody("}"), loc };
    }
    const entries = this.#moreItems<[Term, Term]>([[key, value]], "}", () => {
      const next = this.#element();
      this.#expectPunct(":");
      this.#skipNewlines();
      return [next, this.#element()];
    });
    this.#expectPunct("}");
    return { kind: "object", entries, loc };
  }

  /** After `{first`: more elements of a set, or `| body` for a set comprehension. */
  #setRest(start: number, first: Term, loc: Location): Term {
    const { item, body } = this.#afterFirst(start, first, "}");
    if (body) return { kind: "setcomp", term: item, body, loc };
    const items = this.#moreItems([item], "}", () => this.#element());
    this.#expectPunct("}");
    return { kind: "set", items, loc };
  }

  /** A first element followed by `|`: a comprehension's body, or else the element re-read with `|` as set union. */
  #afterFirst(start: number, first: Term, close: "]" | "}"): { item: Term; body?: Literal[] } {
    if (!this.#atPunct("|")) return { item: first };
    const body = this.#tryComprehension(close);
    return body ? { item: first, body } : { item: this.#unionElement(start) };
  }

  /** `, item` repeated after the first items (a trailing comma allowed), up to `close`. */
  #moreItems<T>(items: T[], close: "]" | "}", item: () => T): T[] {
    this.#skipNewlines();
    while (this.#atPunct(",")) {
      this.#next();
      this.#skipNewlines();
      if (this.#atPunct(close)) break;
      items.push(item());
      this.#skipNewlines();
    }
    return items;
  }

  /**
   * `[x | body]` is a comprehension when what follows `|` is a query closed by the bracket; otherwise
   * (`[x | y, 5]`) the `|` was set union inside an array, as OPA's parser decides by backtracking.
   */
  #tryComprehension(close: "]" | "}"): Literal[] | undefined {
    const mark = { pos: this.#pos, depth: this.#depth, noUnion: this.#noUnion };
    try {
      this.#next();
      return this.#compBody(close);
    } catch (error) {
      if (!(error instanceof RegoError)) throw error;
      this.#pos = mark.pos;
      this.#depth = mark.depth;
      this.#noUnion = mark.noUnion;
      return undefined;
    }
  }

  /** Re-reads the element starting at `start` with `|` as the union operator. */
  #unionElement(start: number): Term {
    this.#pos = start;
    return this.#element(true);
  }

  /** A collection element: `|` ends it (comprehension) unless `union`, when it is set union. */
  #element(union = false): Term {
    this.#skipNewlines();
    const saved = this.#noUnion;
    this.#noUnion = !union;
    const term = this.#expr();
    this.#noUnion = saved;
    this.#skipNewlines();
    return term;
  }

  #compBody(close: "]" | "}"): Literal[] {
    const saved = this.#depth;
    const savedUnion = this.#noUnion;
    this.#depth = 0;
    this.#noUnion = false;
    const body = this.#queryUntil((t) => t.kind === "punct" && t.text === close);
    this.#expectPunct(close);
    this.#depth = saved;
    this.#noUnion = savedUnion;
    if (body.length === 0) throw this.#error("found empty body");
    return body;
  }

  // ---- helpers ---------------------------------------------------------------------------------

  #ref(): Term {
    const name = this.#expectKind("ident");
    let term: Term = { kind: "var", name: name.text, loc: name.loc };
    for (;;) {
      if (this.#atPunct(".")) {
        this.#next();
        const part = this.#expectKind("ident");
        term = appendPath(term, { kind: "string", value: part.text, loc: part.loc });
      } else if (this.#atPunct("[") && this.#adjacent()) {
        this.#next();
        const t = this.#next();
        if (t.kind !== "string") throw new RegoError("rego_parse_error", "expected string in ref", t.loc);
        term = appendPath(term, { kind: "string", value: t.text, loc: t.loc });
        this.#expectPunct("]");
      } else return term;
    }
  }

  #refPath(ref: Term, what: string): string[] {
    const head = ref.kind === "ref" ? ref.head : ref;
    if (head.kind !== "var") throw new RegoError("rego_parse_error", `invalid ${what} path`, ref.loc);
    const rest = ref.kind === "ref" ? ref.path : [];
    return [head.name, ...rest.map((p) => (p.kind === "string" ? p.value : ""))];
  }

  #isReservedName(name: string): boolean {
    return (
      this.#keywords.has(name) ||
      name === "some" ||
      name === "not" ||
      name === "with" ||
      name === "default" ||
      name === "else"
    );
  }

  #peek(): Token {
    // Newlines inside brackets are whitespace.
    if (this.#depth > 0) while (this.#tokens[this.#pos]?.kind === "newline") this.#pos++;
    return this.#tokens[this.#pos] as Token;
  }

  #next(): Token {
    const t = this.#peek();
    if (t.kind !== "eof") this.#pos++;
    return t;
  }

  /** Whether the next token directly follows the previous one (no whitespace): `a[0]` vs `a [0]`. */
  #adjacent(): boolean {
    const prev = this.#tokens[this.#pos - 1];
    const next = this.#tokens[this.#pos];
    if (!prev || !next || prev.kind === "newline") return false;
    return prev.loc.row === next.loc.row && prev.loc.col + prev.length === next.loc.col;
  }

  /** `else` may begin the next line of a rule. */
  #nextLineStartsWith(word: string): boolean {
    let k = this.#pos;
    while (this.#tokens[k]?.kind === "newline") k++;
    const t = this.#tokens[k];
    return t?.kind === "ident" && t.text === word;
  }

  #skipNewlines(): void {
    while (this.#tokens[this.#pos]?.kind === "newline") this.#pos++;
  }

  #skipSeparators(): void {
    while (
      this.#tokens[this.#pos]?.kind === "newline" ||
      (this.#tokens[this.#pos]?.kind === "punct" && this.#tokens[this.#pos]?.text === ";")
    )
      this.#pos++;
  }

  #endOfStatement(): void {
    const t = this.#peek();
    if (t.kind === "eof" || t.kind === "newline") return;
    if (t.kind === "punct" && t.text === ";") return void this.#next();
    throw this.#error(`unexpected ${describe(t)}`);
  }

  #atIdent(text: string): boolean {
    const t = this.#peek();
    return t.kind === "ident" && t.text === text;
  }

  #atKeyword(text: (typeof FUTURE_KEYWORDS)[number]): boolean {
    return this.#keywords.has(text) && this.#atIdent(text);
  }

  #atPunct(text: string): boolean {
    const t = this.#peek();
    return t.kind === "punct" && t.text === text;
  }

  #expectPunct(text: string): Token {
    if (!this.#atPunct(text)) throw this.#error(`expected ${JSON.stringify(text)}, found ${describe(this.#peek())}`);
    return this.#next();
  }

  #expectIdent(text: string): Token {
    if (!this.#atIdent(text)) throw this.#error(`expected ${text}, found ${describe(this.#peek())}`);
    return this.#next();
  }

  #expectKind(kind: Token["kind"]): Token {
    const t = this.#peek();
    if (t.kind !== kind) throw this.#error(`expected ${kind}, found ${describe(t)}`);
    return this.#next();
  }

  #error(message: string, loc: Location = this.#peek().loc): RegoError {
    return new RegoError("rego_parse_error", message, loc);
  }
}

function appendPath(term: Term, part: Term): Term {
  if (term.kind === "ref") return { ...term, path: [...term.path, part] };
  return { kind: "ref", head: term, path: [part], loc: term.loc };
}

/** The dotted name of a callee (`count`, `io.jwt.decode`, `data.lib.f`), or undefined if it has none. */
function callName(term: Term): string | undefined {
  if (term.kind === "var") return term.name;
  if (term.kind === "ref" && term.head.kind === "var" && term.path.every((p) => p.kind === "string")) {
    return [term.head.name, ...term.path.map((p) => (p as { value: string }).value)].join(".");
  }
  return undefined;
}

function describe(t: Token): string {
  if (t.kind === "eof") return "end of file";
  if (t.kind === "newline") return "newline";
  if (t.kind === "punct") return `token ${JSON.stringify(t.text)}`;
  return `${t.kind} ${JSON.stringify(t.text)}`;
}
