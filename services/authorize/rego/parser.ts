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
    if (isDefault) {
      if (!head.value) throw new RegoError("rego_parse_error", "default rules must have a value", loc);
      this.#endOfStatement();
      return [{ default: true, head, bodies: [[]], elses: [], loc }];
    }
    const bodies: Literal[][] = [];
    const elses: ElseClause[] = [];
    const hasIf = this.#atKeyword("if");
    if (hasIf) {
      this.#next();
      bodies.push(this.#ruleBody());
    } else if (this.#atPunct("{")) {
      if (this.#requireIf) throw this.#error("`if` keyword is required before rule body");
      bodies.push(this.#braceBody());
    } else {
      // A rule without a body: `p := 1`, `p contains "x"`, `f(x) := x`.
      if (!head.value && !head.contains && !head.args) {
        throw new RegoError("rego_parse_error", "rule must have a value or a body", head.loc);
      }
      bodies.push([]);
    }
    // v0: several bodies in a row define the same rule more than once (p { a } { b }).
    while (!this.#requireIf && this.#atPunct("{") && !hasIf) bodies.push(this.#braceBody());
    while (this.#nextLineStartsWith("else")) {
      this.#skipNewlines();
      const elseLoc = this.#next().loc;
      let value: Term | undefined;
      if (this.#atPunct("=") || this.#atPunct(":=")) {
        this.#next();
        value = this.#expr();
      }
      let body: Literal[] = [];
      if (this.#atKeyword("if")) {
        this.#next();
        body = this.#ruleBody();
      } else if (this.#atPunct("{")) {
        if (this.#requireIf) throw this.#error("`if` keyword is required before rule body");
        body = this.#braceBody();
      }
      elses.push({ value, body, loc: elseLoc });
    }
    this.#endOfStatement();
    if (bodies.length > 1) {
      return bodies.map((body) => ({ default: false, head, bodies: [body], elses: [], loc }));
    }
    return [{ default: false, head, bodies, elses, loc }];
  }

  #ruleHead(isDefault: boolean): RuleHead {
    const loc = this.#peek().loc;
    const name = this.#expectKind("ident");
    if (this.#isReservedName(name.text)) {
      throw new RegoError("rego_parse_error", `unexpected ${name.text} keyword`, name.loc);
    }
    let ref: Term = { kind: "var", name: name.text, loc: name.loc };
    let args: Term[] | undefined;
    let contains: Term | undefined;
    const path: Term[] = [];
    for (;;) {
      if (this.#atPunct(".")) {
        this.#next();
        const part = this.#expectKind("ident");
        path.push({ kind: "string", value: part.text, loc: part.loc });
        continue;
      }
      if (this.#atPunct("[") && this.#adjacent()) {
        this.#next();
        this.#depth++;
        path.push(this.#expr());
        this.#expectPunct("]");
        this.#depth--;
        continue;
      }
      break;
    }
    if (path.length > 0) ref = { kind: "ref", head: ref, path, loc };
    if (this.#atPunct("(") && this.#adjacent()) {
      this.#next();
      this.#depth++;
      args = [];
      while (!this.#atPunct(")")) {
        args.push(this.#term());
        if (!this.#atPunct(")")) this.#expectPunct(",");
      }
      this.#expectPunct(")");
      this.#depth--;
    }
    if (this.#atKeyword("contains")) {
      this.#next();
      contains = this.#expr();
    } else if (!this.#requireIf && ref.kind === "ref" && !args && !this.#atPunct("=") && !this.#atPunct(":=")) {
      // v0 `p[x] { ... }`: a partial set rule.
      const last = ref.path.at(-1) as Term;
      ref = ref.path.length === 1 ? ref.head : { ...ref, path: ref.path.slice(0, -1) };
      contains = last;
    }
    let value: Term | undefined;
    let assign = false;
    if (this.#atPunct("=") || this.#atPunct(":=")) {
      assign = this.#next().text === ":=";
      value = this.#expr();
    }
    // OPA allows default functions; a default partial set is an error.
    if (isDefault && contains) throw new RegoError("rego_parse_error", "default rules cannot be partial sets", loc);
    return { ref, args, contains, value, assign, loc };
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
    if (this.#atIdent("some")) {
      this.#next();
      const first = this.#termNoIn();
      const vars = [first];
      while (this.#atPunct(",")) {
        this.#next();
        vars.push(this.#termNoIn());
      }
      if (this.#atKeyword("in")) {
        this.#next();
        if (vars.length > 2) throw new RegoError("rego_parse_error", "unexpected , in some", loc);
        const collection = this.#exprRelation();
        return vars.length === 2
          ? { kind: "somein", key: vars[0], value: vars[1] as Term, collection, loc }
          : { kind: "somein", key: undefined, value: first, collection, loc };
      }
      for (const v of vars) {
        if (v.kind !== "var") throw new RegoError("rego_parse_error", "expected var in some declaration", v.loc);
      }
      return { kind: "some", vars, loc };
    }
    if (this.#atKeyword("every")) {
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
    let negated = false;
    if (this.#atIdent("not")) {
      this.#next();
      negated = true;
    }
    let left = this.#expr();
    if (this.#atPunct(",") && this.#keywords.has("in")) {
      // `k, v in xs` as an expression: key/value membership.
      this.#next();
      const value = this.#exprRelation();
      if (!this.#atKeyword("in")) throw this.#error("expected `in` after `k, v`");
      const inLoc = this.#next().loc;
      left = { kind: "membership", key: left, value, collection: this.#exprRelation(), loc: inLoc };
    }
    let literal: Literal;
    if (this.#atPunct("=") || this.#atPunct(":=")) {
      const assign = this.#next().text === ":=";
      const right = this.#expr();
      literal = { kind: "unify", assign, negated, left, right, with: [], loc };
    } else {
      literal = { kind: "expr", negated, expr: left, with: [], loc };
    }
    while (this.#atIdent("with")) {
      const withLoc = this.#next().loc;
      const target = this.#term();
      this.#expectIdent("as");
      const value = this.#term();
      literal.with.push({ target, value, loc: withLoc });
    }
    return literal;
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
    let term: Term;
    if (t.kind === "punct" && t.text === "-") {
      this.#next();
      this.#skipNewlines();
      const next = this.#peek();
      if (next.kind === "number") {
        this.#next();
        term = { kind: "number", text: `-${next.text}`, loc: t.loc };
      } else {
        term = { kind: "unary", op: "-", arg: this.#term(), loc: t.loc };
        return term;
      }
    } else if (t.kind === "number") {
      this.#next();
      term = { kind: "number", text: t.text, loc: t.loc };
    } else if (t.kind === "string" || t.kind === "rawstring") {
      this.#next();
      term = { kind: "string", value: t.text, loc: t.loc };
    } else if (t.kind === "ident") {
      this.#next();
      if (t.text === "null") term = { kind: "null", loc: t.loc };
      else if (t.text === "true" || t.text === "false")
        term = { kind: "boolean", value: t.text === "true", loc: t.loc };
      else {
        // `contains` is a keyword only in rule heads; `contains(s, x)` is still the string built-in.
        const builtinCall = t.text === "contains" && this.#peek().kind === "punct" && this.#peek().text === "(";
        if (this.#isReservedName(t.text) && !builtinCall)
          throw new RegoError("rego_parse_error", `unexpected ${t.text} keyword`, t.loc);
        term = { kind: "var", name: t.text, loc: t.loc };
      }
    } else if (t.kind === "punct" && t.text === "(") {
      this.#next();
      this.#depth++;
      const saved = this.#noUnion;
      this.#noUnion = false;
      term = this.#expr();
      this.#noUnion = saved;
      this.#expectPunct(")");
      this.#depth--;
    } else if (t.kind === "punct" && t.text === "[") {
      term = this.#arrayOrComprehension();
    } else if (t.kind === "punct" && t.text === "{") {
      term = this.#setObjectOrComprehension();
    } else {
      throw this.#error(`unexpected ${describe(t)}`);
    }
    return this.#postfix(term);
  }

  /** `.name`, `[expr]` and `(args)` directly after a term (no whitespace before `[` or `(`). */
  #postfix(start: Term): Term {
    let term = start;
    for (;;) {
      if (this.#atPunct(".") && this.#adjacent()) {
        this.#next();
        const part = this.#expectKind("ident");
        term = appendPath(term, { kind: "string", value: part.text, loc: part.loc });
        continue;
      }
      if (this.#atPunct("[") && this.#adjacent()) {
        this.#next();
        this.#depth++;
        const saved = this.#noUnion;
        this.#noUnion = false;
        const index = this.#expr();
        this.#noUnion = saved;
        this.#expectPunct("]");
        this.#depth--;
        term = appendPath(term, index);
        continue;
      }
      if (this.#atPunct("(") && this.#adjacent()) {
        const name = callName(term);
        if (name === undefined) throw this.#error("invalid function name");
        this.#next();
        this.#depth++;
        const args: Term[] = [];
        const saved = this.#noUnion;
        this.#noUnion = false;
        this.#skipNewlines();
        while (!this.#atPunct(")")) {
          args.push(this.#expr());
          this.#skipNewlines();
          if (!this.#atPunct(")")) {
            this.#expectPunct(",");
            this.#skipNewlines();
          }
        }
        this.#noUnion = saved;
        this.#expectPunct(")");
        this.#depth--;
        // `set()` is the empty set literal, not a call.
        term =
          name === "set" && args.length === 0
            ? { kind: "set", items: [], loc: term.loc }
            : { kind: "call", name, nameRef: term, args, loc: term.loc };
        continue;
      }
      return term;
    }
  }

  #arrayOrComprehension(): Term {
    const loc = this.#next().loc;
    this.#depth++;
    const items: Term[] = [];
    this.#skipNewlines();
    if (!this.#atPunct("]")) {
      const start = this.#pos;
      let first = this.#element();
      if (this.#atPunct("|")) {
        const comprehension = this.#tryComprehension("]");
        if (comprehension) {
          this.#depth--;
          return { kind: "arraycomp", term: first, body: comprehension, loc };
        }
        first = this.#unionElement(start);
      }
      items.push(first);
      this.#skipNewlines();
      while (this.#atPunct(",")) {
        this.#next();
        this.#skipNewlines();
        if (this.#atPunct("]")) break;
        items.push(this.#element());
        this.#skipNewlines();
      }
    }
    this.#expectPunct("]");
    this.#depth--;
    return { kind: "array", items, loc };
  }

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
    if (this.#atPunct(":")) {
      this.#next();
      this.#skipNewlines();
      const firstValue = this.#element();
      if (this.#atPunct("|")) {
        this.#next();
        const body = this.#compBody("}");
        this.#depth--;
        return { kind: "objectcomp", key: first, value: firstValue, body, loc };
      }
      const entries: Array<[Term, Term]> = [[first, firstValue]];
      this.#skipNewlines();
      while (this.#atPunct(",")) {
        this.#next();
        this.#skipNewlines();
        if (this.#atPunct("}")) break;
        const key = this.#element();
        this.#expectPunct(":");
        this.#skipNewlines();
        entries.push([key, this.#element()]);
        this.#skipNewlines();
      }
      this.#expectPunct("}");
      this.#depth--;
      return { kind: "object", entries, loc };
    }
    let element = first;
    if (this.#atPunct("|")) {
      const comprehension = this.#tryComprehension("}");
      if (comprehension) {
        this.#depth--;
        return { kind: "setcomp", term: first, body: comprehension, loc };
      }
      element = this.#unionElement(start);
    }
    const items = [element];
    this.#skipNewlines();
    while (this.#atPunct(",")) {
      this.#next();
      this.#skipNewlines();
      if (this.#atPunct("}")) break;
      items.push(this.#element());
      this.#skipNewlines();
    }
    this.#expectPunct("}");
    this.#depth--;
    return { kind: "set", items, loc };
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
