// Stage 2 of the Rego compiler: tokens to a module AST (Rego v1 by default; v0 syntax when asked,
// as `opa --v0-compatible` does). The grammar, its precedence (lowest first: `in`, relations
// (== != < <= > >=), `|`, `&`, `+ -`, `* / %`) and its ambiguities are resolved as OPA's parser
// (v1/ast/parser.go) resolves them:
// - newlines are whitespace; one only ends a body literal where the next token cannot continue it
//   (`x := 1` newline `+ 2` is `x := 1 + 2`), and `.`, `[` and `(` only extend a term they touch;
// - `k, v in xs` is key/value membership wherever a whole expression is read (literals, `:=`
//   right-hand sides, parentheses, brackets, rule values), never inside collections or arguments,
//   where the comma separates items (`[1, 2 in xs]` is `[1, (2 in xs)]`);
// - in `[a | b]` and `{a | b}` a comprehension wins only when its head is a single term; a failed
//   body followed by a comma makes it a collection with set union (`[x | y, 5]`);
// - a statement without a body (`p := 1`, `f(x) := x`, `a.b.c`, `p contains x`) is a rule as OPA
//   reads such statements, and v1 rules (and v0 ones under `import rego.v1`) must use `if` and
//   `contains`.

import {
  type BinaryOp,
  type ElseClause,
  type Import,
  type Literal,
  type Module,
  type Rule,
  type RuleHead,
  subterms,
  type Term,
  type With,
} from "./ast.ts";
import { builtinArity } from "./builtins.ts";
import { type Location, RegoError, type Token, tokenize } from "./lexer.ts";

export interface ParseOptions {
  /** Read Rego v0 syntax (rules without `if`, `p[x]` partial sets, keywords only via imports). */
  v0?: boolean;
  /** With `v0`: every future keyword on from the start, as OPA's WithAllFutureKeywords (and regorus) read v0. */
  allFutureKeywords?: boolean;
  file?: string;
}

const FUTURE_KEYWORDS = ["contains", "every", "if", "in"] as const;
type FutureKeyword = (typeof FUTURE_KEYWORDS)[number];
/** Rego's keywords in every version (OPA's tokens.Keywords). */
const KEYWORDS = new Set([
  "package",
  "import",
  "as",
  "default",
  "else",
  "not",
  "some",
  "with",
  "null",
  "true",
  "false",
]);
/** Brackets nested deeper than this are refused (each level costs JavaScript stack frames). */
const MAX_NESTING = 300;
const MAX_NESTING_MESSAGE = "max parsing recursion depth exceeded";
const RELATIONS = new Set(["==", "!=", "<", "<=", ">", ">="]);
const HEAD_OPERATORS = new Set(["+", "-", "*", "/", "%", "&", "|", ...RELATIONS]);
/** OPA's names for punctuation tokens in "unexpected X token". */
const TOKEN_NAMES: Record<string, string> = {
  "+": "plus",
  "-": "minus",
  "*": "mul",
  "/": "div",
  "%": "rem",
  "&": "and",
  "|": "or",
  "=": "eq",
  "==": "equal",
  ":=": "assign",
  "!=": "neq",
  ">": "gt",
  "<": "lt",
  ">=": "gte",
  "<=": "lte",
};

export function parseModule(source: string, options: ParseOptions = {}): Module {
  return new Parser(tokenize(source, options.file ?? "policy.rego"), options).module();
}

/** Parses a query such as `data.test.main` or `x := 1; x > 0`. */
export function parseQuery(source: string, options: ParseOptions = {}): Literal[] {
  const parser = new Parser(tokenize(source, options.file ?? "query.rego"), { ...options, v0: false });
  return parser.queryOnly();
}

/** What a rule's declaration said, for OPA's Rego v1 checks. */
interface Declared {
  rule: Rule;
  usesIf: boolean;
  usesContains: boolean;
  generatedBody: boolean;
  generatedValue: boolean;
  /** A v0 `p[x]` (or bodyless `a.b`) partial set, declared without `contains`. */
  multiValue: boolean;
}

class Parser {
  /** Tokens without newlines; `#newlineBefore[i]` says whether a newline preceded token i. */
  readonly #tokens: Token[] = [];
  readonly #newlineBefore: boolean[] = [];
  readonly #file: string;
  readonly #v1: boolean;
  #pos = 0;
  /** How many brackets enclose the term being read. */
  #nesting = 0;
  #keywords = new Set<string>();
  /** Rego v1, or v0 with `import rego.v1`: OPA's v1 checks (`if`, `contains`, ...) apply. */
  #v1Checks: boolean;
  readonly #declared: Declared[] = [];
  /** OPA's parsed-term cache: the term at a token position and where it ends (backtracking re-reads). */
  readonly #termCache = new Map<number, { term: Term; end: number }>();

  constructor(tokens: Token[], options: ParseOptions) {
    let newline = false;
    for (const token of tokens) {
      if (token.kind === "newline") {
        newline = true;
        continue;
      }
      this.#tokens.push(token);
      this.#newlineBefore.push(newline);
      newline = false;
    }
    this.#file = options.file ?? tokens[0]?.loc.file ?? "policy.rego";
    this.#v1 = !options.v0;
    this.#v1Checks = this.#v1;
    if (this.#v1 || options.allFutureKeywords) this.#keywords = new Set(FUTURE_KEYWORDS);
  }

  module(): Module {
    if (this.#peek().kind === "eof") throw new RegoError("rego_parse_error", "empty module", this.#peek().loc);
    if (!this.#atKeyword("package")) throw this.#error("package expected");
    const pkg = this.#package();
    const imports: Import[] = [];
    const rules: Rule[] = [];
    for (this.#endOfStatement(); this.#peek().kind !== "eof"; this.#endOfStatement()) {
      if (this.#atKeyword("package")) throw this.#error("unexpected package");
      if (this.#atKeyword("import")) imports.push(this.#import());
      else rules.push(...this.#statement());
    }
    if (this.#v1Checks) this.#checkRegoV1();
    return { file: this.#peek().loc.file, package: pkg, imports, rules, v1: this.#v1 };
  }

  /**
   * A query: literals separated by `;` or newlines. (OPA also reads `1 2` as two statements;
   * Mandate refuses literals that run together on one line, as regorus does.)
   */
  queryOnly(): Literal[] {
    const body: Literal[] = [];
    while (this.#peek().kind !== "eof") {
      body.push(this.#literal());
      if (this.#atPunct(";")) this.#next();
      else if (this.#peek().kind !== "eof" && !this.#newlineBefore[this.#pos]) throw this.#illegal("expected \\n or ;");
    }
    return body;
  }

  /**
   * OPA lets statements run on along one line (`p := 1 q := 2`); Mandate wants a newline between
   * them, because in v0 that reading turns `p := x if { … }` without `import future.keywords.if`
   * into two rules, `p := x` and one named `if`.
   */
  #endOfStatement(): void {
    const t = this.#peek();
    if (t.kind === "eof" || this.#newlineBefore[this.#pos]) return;
    const hint =
      t.kind === "ident" && !this.#isKeyword(t.text) && (FUTURE_KEYWORDS as readonly string[]).includes(t.text);
    const note = "expected a newline before the next statement";
    throw this.#illegal(hint ? `${note} (hint: \`import future.keywords.${t.text}\` to use it as a keyword)` : note);
  }

  // ---- package and imports ---------------------------------------------------------------------

  #package(): string[] {
    this.#next();
    const path = this.#staticPath();
    return path.map((part) => part.text);
  }

  /** `a.b["c"]`: a name, then `.name` or `["string"]` parts (OPA: "expecting string" otherwise). */
  #staticPath(): Token[] {
    const first = this.#peek();
    if (first.kind !== "ident") throw this.#illegal("expected var");
    this.#next();
    const parts = [first];
    for (let part = this.#staticPart(); part; part = this.#staticPart()) parts.push(part);
    return parts;
  }

  /** The next `.name` or `["string"]` of a static path, if there is one. */
  #staticPart(): Token | undefined {
    if (!this.#adjacent()) return undefined;
    if (this.#atPunct(".")) {
      this.#next();
      if (this.#peek().kind !== "ident" || !this.#adjacent()) throw this.#illegal("expected identifier");
      return this.#next();
    }
    if (!this.#atPunct("[")) return undefined;
    this.#next();
    const part = this.#peek();
    if (part.kind !== "string" && part.kind !== "rawstring") {
      throw this.#error(`unexpected ${valueNameOfToken(part)} token: expecting string`);
    }
    this.#next();
    this.#expectPunct("]");
    return part;
  }

  #import(): Import {
    const loc = this.#next().loc;
    const pathLoc = this.#peek().loc;
    const parts = this.#staticPath();
    const names = parts.map((p) => p.text);
    const root = names[0] as string;
    if (!["data", "input", "future", "rego"].includes(root)) {
      throw new RegoError(
        "rego_parse_error",
        `unexpected import path, must begin with one of: {data, future, input, rego}, got: ${root} (hint: if this is unexpected, try updating OPA)`,
        pathLoc,
      );
    }
    let alias: string | undefined;
    if (this.#atKeyword("as")) {
      this.#next();
      if (this.#peek().kind !== "ident" || this.#isKeyword(this.#peek().text)) throw this.#illegal("expected var");
      alias = this.#next().text;
    }
    const path = staticRef(parts);
    if (root === "future") this.#futureImport(names, alias, pathLoc);
    else if (root === "rego") this.#regoImport(names, alias, pathLoc);
    else if (alias === undefined) this.#checkImportEnd(parts);
    return { path, alias, loc };
  }

  /** Without an alias, an import's last name may not be a keyword (it would name the import). */
  #checkImportEnd(parts: Token[]): void {
    const last = parts.at(-1) as Token;
    const keyword = this.#v1 ? this.#isV1Keyword(last.text) : KEYWORDS.has(last.text);
    if (keyword) {
      throw new RegoError(
        "rego_parse_error",
        `unexpected import path, must not end with a keyword, got: ${last.text} (hint: import a different path or use an alias)`,
        last.loc,
      );
    }
  }

  #futureImport(path: string[], alias: string | undefined, loc: Location): void {
    if (path.length === 1 || path[1] !== "keywords") {
      throw new RegoError("rego_parse_error", "invalid import, must be `future.keywords`", loc);
    }
    if (alias !== undefined) throw new RegoError("rego_parse_error", "`future` imports cannot be aliased", loc);
    const keyword = path[2];
    if (path.length === 3 && !(FUTURE_KEYWORDS as readonly string[]).includes(keyword as string)) {
      throw new RegoError("rego_parse_error", `unexpected keyword, must be one of [${FUTURE_KEYWORDS.join(" ")}]`, loc);
    }
    const imported = path.length === 3 ? [keyword as string] : FUTURE_KEYWORDS;
    for (const k of imported) this.#keywords.add(k);
    // OPA: importing `every` imports `in` too.
    if (this.#keywords.has("every")) this.#keywords.add("in");
  }

  #regoImport(path: string[], alias: string | undefined, loc: Location): void {
    if (path.length !== 2 || path[1] !== "v1") {
      throw new RegoError("rego_parse_error", `invalid import \`${path.join(".")}\`, must be \`rego.v1\``, loc);
    }
    if (this.#v1) return;
    if (alias !== undefined) throw new RegoError("rego_parse_error", "`rego` imports cannot be aliased", loc);
    for (const k of FUTURE_KEYWORDS) this.#keywords.add(k);
    this.#v1Checks = true;
  }

  // ---- rules -----------------------------------------------------------------------------------

  /** One statement: a rule with a body, a default rule, or a bodyless statement read as a rule. */
  #statement(): Rule[] {
    const start = this.#pos;
    const rules = this.#rules();
    if (rules) return rules;
    this.#pos = start;
    return [this.#ruleFromStatement()];
  }

  /** OPA's parseRules: undefined when the statement has no body (it is then re-read as a literal). */
  #rules(): Rule[] | undefined {
    const loc = this.#peek().loc;
    const isDefault = this.#atKeyword("default");
    if (isDefault) this.#next();
    if (this.#peek().kind !== "ident" || this.#isKeyword(this.#peek().text)) return undefined;
    const { head, usesContains } = this.#head(isDefault, loc);
    if (isDefault) return [this.#defaultRule(head, loc)];
    const usesIf = this.#atKeyword("if");
    const refLength = refLengthOf(head.ref);
    let generatedValue = !head.value && !usesContains && (refLength !== 2 || head.args !== undefined);
    let multiValue = false;
    if (usesIf && !usesContains && refLength === 2) generatedValue = !head.value;
    if (!usesIf && !usesContains && !head.args && refLength === 2 && !head.value) {
      // v0's `p[x] { … }`: a partial set with element x.
      multiValue = true;
      const ref = head.ref as Extract<Term, { kind: "ref" }>;
      head.contains = ref.path[0];
      head.ref = ref.head;
    }
    const body = this.#ruleBody(usesIf, usesContains);
    if (body === undefined) return undefined;
    const rule: Rule = { default: false, head, bodies: [body.literals], elses: [], loc };
    this.#declare(rule, { usesIf, usesContains, generatedBody: body.generated, generatedValue, multiValue });
    if (body.generated) return [rule];
    if (this.#atKeyword("else")) rule.elses = this.#elses(head, usesIf);
    return [rule, ...this.#chainedBodies(rule, { usesIf, usesContains, generatedValue, multiValue })];
  }

  /** After the head: `if` and a literal or braced body, a braced body, or none for `p contains x`. */
  #ruleBody(usesIf: boolean, usesContains: boolean): { literals: Literal[]; generated: boolean } | undefined {
    if (usesIf) {
      this.#next();
      return { literals: this.#ifBody(), generated: false };
    }
    if (this.#atPunct("{")) return { literals: this.#braceBody(), generated: false };
    if (usesContains) return { literals: [], generated: true };
    return undefined;
  }

  /** After `if`: one literal, unless it is a set literal (`if { a }` is a body, as in OPA). */
  #ifBody(): Literal[] {
    const start = this.#pos;
    try {
      const literal = this.#literal();
      if (!(literal.kind === "expr" && literal.expr.kind === "set")) return [literal];
    } catch (error) {
      if (!isSyntaxError(error) || !this.#tokenAt(start, "{")) throw error;
    }
    this.#pos = start;
    return this.#braceBody();
  }

  /** v0: `p { a } { b }` defines p once per body; each is a rule of its own with the same head. */
  #chainedBodies(first: Rule, flags: Omit<Declared, "rule" | "generatedBody">): Rule[] {
    const rules: Rule[] = [];
    while (this.#atPunct("{")) {
      if (first.elses.length > 0) throw this.#error("expected else keyword");
      const loc = this.#peek().loc;
      const rule: Rule = { default: false, head: first.head, bodies: [this.#braceBody()], elses: [], loc };
      this.#declare(rule, { ...flags, generatedBody: false });
      rules.push(rule);
    }
    return rules;
  }

  #defaultRule(head: RuleHead, loc: Location): Rule {
    // OPA: `default a` (a name, or a function, without a value) is `default a := true`; `default a[0]` has none.
    if (!head.value && (refLengthOf(head.ref) !== 2 || head.args)) head.value = { kind: "boolean", value: true, loc };
    if (!head.value) throw new RegoError("rego_parse_error", "illegal default rule (must have a value)", loc);
    const bad = findOutsideComprehensions(head.value, (t) => t.kind === "var" || t.kind === "ref" || isCall(t));
    if (bad) {
      const kind = bad.kind === "var" ? "var" : bad.kind === "ref" ? "ref" : "call";
      throw new RegoError("rego_parse_error", `illegal default rule (value cannot contain ${kind})`, loc);
    }
    checkDefaultArgs(head.args ?? [], loc);
    return { default: true, head, bodies: [[]], elses: [], loc };
  }

  /** `else [= value] [if] body`, repeated; OPA refuses them on multi-value rules and variable heads. */
  #elses(head: RuleHead, usesIf: boolean): ElseClause[] {
    if (head.ref.kind === "ref" && head.ref.path.some((p) => !isGround(p))) {
      throw this.#error("else keyword cannot be used on rules with variables in head");
    }
    // OPA gives `p[k] = v { … }` (v0, without `if`) a key, as it does `p contains x`.
    const keyed = !usesIf && !head.args && refLengthOf(head.ref) === 2;
    if (head.contains || keyed) throw this.#error("else keyword cannot be used on multi-value rules");
    const elses: ElseClause[] = [];
    while (this.#atKeyword("else")) elses.push(this.#else(head));
    return elses;
  }

  #else(head: RuleHead): ElseClause {
    const loc = this.#next().loc;
    let value: Term | undefined;
    let generatedValue = true;
    if (this.#atPunct("=") || this.#atPunct(":=")) {
      this.#next();
      value = this.#termIn(true);
      generatedValue = false;
    } else if (!this.#atPunct("{") && !this.#atKeyword("if")) {
      throw this.#illegal("expected else value term or rule body");
    }
    const usesIf = this.#atKeyword("if");
    const clause: ElseClause = { value, body: [], loc };
    if (usesIf) this.#next();
    if (this.#atPunct("{")) clause.body = this.#braceBody();
    else if (usesIf && this.#peek().kind !== "eof") clause.body = [this.#literal()];
    else if (usesIf) throw this.#illegal("rule body expected");
    const generatedBody = !usesIf && clause.body.length === 0;
    const asRule: Rule = { default: false, head: { ...head, value }, bodies: [clause.body], elses: [], loc };
    this.#declare(asRule, { usesIf, usesContains: false, generatedBody, generatedValue, multiValue: false });
    return clause;
  }

  /** OPA's parseHead: a name, its ref and arguments, then `contains x`, `= v` or `:= v`. */
  #head(isDefault: boolean, loc: Location): { head: RuleHead; usesContains: boolean } {
    const nameToken = this.#next();
    const name: Term = { kind: "var", name: nameToken.text, loc: nameToken.loc };
    if (this.#adjacent() && this.#peek().kind === "punct" && HEAD_OPERATORS.has(this.#peek().text)) {
      throw this.#illegal();
    }
    // The first `.`, `[` or `(` after a rule's name may follow whitespace (OPA's parseHeadFinish).
    const named = this.#atPunct("(") || this.#atPunct(".") || this.#atPunct("[") ? this.#postfix(name, true) : name;
    const { ref, args } = this.#headRefAndArgs(named);
    const head: RuleHead = { ref, args, contains: undefined, value: undefined, assign: false, loc };
    if (this.#atKeyword("contains")) {
      if (args) {
        throw this.#illegal(
          `the contains keyword can only be used with multi-value rule definitions (e.g., ${refText(ref)} contains <VALUE> { ... })`,
        );
      }
      this.#next();
      head.contains = this.#termIn(true);
      if (isDefault) throw new RegoError("rego_parse_error", "illegal default rule (must have a value)", loc);
      return { head, usesContains: true };
    }
    if (this.#atPunct("=") || this.#atPunct(":=")) {
      head.assign = this.#next().text === ":=";
      head.value = this.#termIn(true);
    }
    return { head, usesContains: false };
  }

  /** A head's term as a ref and arguments: `p`, `a.b[c]`, `f(x)`, `a.b.f(x)`. */
  #headRefAndArgs(term: Term): { ref: Term; args: Term[] | undefined } {
    if (term.kind === "var") return { ref: term, args: undefined };
    if (term.kind === "ref" && term.head.kind === "var") return { ref: term, args: undefined };
    if (term.kind === "call" && (term.nameRef.kind === "var" || term.nameRef.kind === "ref")) {
      return { ref: term.nameRef, args: term.args };
    }
    throw new RegoError("rego_parse_error", "expected rule head name", term.loc);
  }

  /**
   * A bodyless statement (OPA parses it as one literal, then reads a rule from it): `p := 1`,
   * `p[k] = v`, `f(x) := y`, `f(x)`, `a.b.c` (true), `a.b` (a partial set with element "b").
   */
  #ruleFromStatement(): Rule {
    const literal = this.#literal();
    if (this.#atPunct(";")) {
      this.#next();
      this.#literal();
      throw new RegoError("rego_parse_error", "multiple expressions cannot be used for rule head", literal.loc);
    }
    const fail = (message: string) => new RegoError("rego_parse_error", message, literal.loc);
    if ((literal.kind === "expr" || literal.kind === "unify") && literal.with.length > 0) {
      throw fail("expressions using with keyword cannot be used for rule head");
    }
    if ((literal.kind === "expr" || literal.kind === "unify") && literal.negated) {
      throw fail("negated expressions cannot be used for rule head");
    }
    if (literal.kind === "some" || literal.kind === "somein")
      throw fail("'some' declarations cannot be used for rule head");
    if (literal.kind === "every") throw fail("expression cannot be used for rule head");
    const rule =
      literal.kind === "unify"
        ? this.#ruleFromEquality(literal, fail)
        : this.#ruleFromTerm(literal.expr, literal.loc, fail);
    return rule;
  }

  #ruleFromEquality(literal: Extract<Literal, { kind: "unify" }>, fail: (m: string) => RegoError): Rule {
    const { left, right, assign, loc } = literal;
    const base = { contains: undefined, value: right, assign, loc };
    let head: RuleHead;
    if (left.kind === "call" && left.nameRef.kind !== "call") {
      head = { ...base, ref: left.nameRef, args: left.args };
    } else if (left.kind === "var" || (left.kind === "ref" && left.head.kind === "var")) {
      head = { ...base, ref: left, args: undefined };
    } else if (left.kind === "ref") {
      throw fail(`invalid rule head: ${refText(left)}`);
    } else if (left.kind === "binary" || left.kind === "membership") {
      throw fail("rule name conflicts with built-in function");
    } else {
      throw fail(`${valueName(left)} cannot be used for rule name`);
    }
    return this.#generatedBodyRule(head, loc);
  }

  #ruleFromTerm(term: Term, loc: Location, fail: (m: string) => RegoError): Rule {
    if (term.kind === "binary" || term.kind === "membership") throw fail("rule name conflicts with built-in function");
    if (term.kind === "call") return this.#functionFromCall(term, fail);
    if (term.kind !== "ref") throw fail(`${valueName(term)} cannot be used for rule name`);
    if (term.head.kind !== "var") throw fail(`invalid rule head: ${refText(term)}`);
    const head: RuleHead = { ref: term, args: undefined, contains: undefined, value: undefined, assign: false, loc };
    const multiValue = term.path.length === 1;
    if (multiValue) {
      head.ref = term.head;
      head.contains = term.path[0];
    }
    return this.#generatedBodyRule(head, loc, { generatedValue: !multiValue, multiValue });
  }

  /** `f(x)` on its own: a function that is true for its arguments. */
  #functionFromCall(call: Extract<Term, { kind: "call" }>, fail: (m: string) => RegoError): Rule {
    if (builtinArity(call.name) !== undefined) throw fail("rule name conflicts with built-in function");
    if (call.args.length === 0) throw fail("rule argument list must take at least one argument");
    const head: RuleHead = {
      ref: call.nameRef,
      args: call.args,
      contains: undefined,
      value: undefined,
      assign: false,
      loc: call.loc,
    };
    return this.#generatedBodyRule(head, call.loc);
  }

  /**
   * A rule written without a body (`p = 1`, `p.q`, `f(x)`): it gets an empty body, and is
   * declared as such for the Rego v1 checks (which refuse some of these forms).
   */
  #generatedBodyRule(head: RuleHead, loc: Location, flags = { generatedValue: false, multiValue: false }): Rule {
    const rule: Rule = { default: false, head, bodies: [[]], elses: [], loc };
    this.#declare(rule, { usesIf: false, usesContains: false, generatedBody: true, ...flags });
    return rule;
  }

  #declare(rule: Rule, flags: Omit<Declared, "rule">): void {
    this.#declared.push({ rule, ...flags });
  }

  /** OPA's checks for Rego v1 (and v0 under `import rego.v1`), run once the module has parsed. */
  #checkRegoV1(): void {
    for (const d of this.#declared) {
      const what = d.rule.head.args ? "function" : "rule";
      const { ref } = d.rule.head;
      const fail = (message: string) => new RegoError("rego_parse_error", message, d.rule.loc);
      if (ref.kind === "var" && this.#isV1Keyword(ref.name)) {
        throw fail(`${ref.name} keyword cannot be used for rule name`);
      }
      if (d.generatedBody && d.generatedValue) throw fail(`${what} must have value assignment and/or body declaration`);
      if (!d.generatedBody && !d.usesIf && !d.rule.default)
        throw fail(`\`if\` keyword is required before ${what} body`);
      if (d.multiValue && !d.usesContains) throw fail("`contains` keyword is required for partial set rules");
    }
  }

  // ---- bodies and literals ---------------------------------------------------------------------

  #braceBody(): Literal[] {
    this.#expectPunct("{");
    return this.#query("}");
  }

  /** Literals up to `end` (consumed): separated by `;` or a newline (OPA's parseQuery). */
  #query(end: string): Literal[] {
    if (this.#atPunct(end)) throw this.#error("found empty body");
    const literals: Literal[] = [];
    for (;;) {
      literals.push(this.#literal());
      if (this.#atPunct(";")) {
        this.#next();
        continue;
      }
      if (this.#atPunct(end)) {
        this.#next();
        return literals;
      }
      if (!this.#newlineBefore[this.#pos]) throw this.#illegal(`expected \\n or ; or ${end}`);
    }
  }

  #literal(): Literal {
    const loc = this.#peek().loc;
    const negated = this.#atKeyword("not");
    if (negated) this.#next();
    if (this.#atKeyword("some")) {
      if (negated) throw this.#illegal("illegal negation of 'some'");
      return this.#some(loc);
    }
    if (this.#atKeyword("every")) {
      if (negated) throw this.#illegal("illegal negation of 'every'");
      return this.#every(loc);
    }
    const left = this.#termIn(true);
    let literal: Literal;
    if (this.#atPunct(":=") || this.#atPunct("=")) {
      const assign = this.#next().text === ":=";
      literal = { kind: "unify", assign, negated, left, right: this.#termIn(true), with: [], loc };
    } else {
      literal = { kind: "expr", negated, expr: left, with: [], loc };
    }
    literal.with = this.#withs();
    return literal;
  }

  /** `with target as value`, repeated. */
  #withs(): With[] {
    const withs: With[] = [];
    while (this.#atKeyword("with")) {
      const loc = this.#next().loc;
      if (this.#peek().kind !== "ident" || this.#isKeyword(this.#peek().text)) throw this.#illegal("expected ident");
      const target = this.#term();
      if (target.kind !== "var" && target.kind !== "ref") throw this.#illegal("expected with target path");
      if (!this.#atKeyword("as")) throw this.#illegal("expected as keyword");
      this.#next();
      withs.push({ target, value: this.#termIn(true), loc });
    }
    return withs;
  }

  /** `some x, y` declares; `some v in xs` and `some k, v in xs` iterate. */
  #some(loc: Location): Literal {
    this.#next();
    const start = this.#pos;
    const membership = this.#attempt(() => this.#termIn(true));
    if (membership && (membership.kind === "call" || membership.kind === "binary")) {
      throw this.#illegal("expected `x in xs` or `x, y in xs` expression");
    }
    if (membership?.kind === "membership") {
      this.#refuseWith("some … in");
      return { kind: "somein", key: membership.key, value: membership.value, collection: membership.collection, loc };
    }
    this.#pos = start;
    const vars: Term[] = [];
    for (;;) {
      const t = this.#peek();
      if (t.kind !== "ident" || this.#isKeyword(t.text)) throw this.#illegal("expected var");
      vars.push({ kind: "var", name: this.#next().text, loc: t.loc });
      if (!this.#atPunct(",")) return { kind: "some", vars, loc };
      this.#next();
    }
  }

  /** `every v in xs { … }`, `every k, v in xs { … }`: key and value are variables. */
  #every(loc: Location): Literal {
    this.#next();
    const domain = this.#termIn(true);
    if (domain.kind !== "membership") throw this.#illegal("expected `x[, y] in xs { ... }` expression");
    if (domain.key && domain.key.kind !== "var") throw this.#illegal("expected key to be a variable");
    if (domain.value.kind !== "var") throw this.#illegal("expected value to be a variable");
    if (!this.#atPunct("{")) throw this.#illegal("missing body");
    const body = this.#braceBody();
    this.#refuseWith("every");
    return { kind: "every", key: domain.key, value: domain.value, domain: domain.collection, body, loc };
  }

  /** OPA allows `with` after `some … in` and `every`; Mandate's planner does not apply it there. */
  #refuseWith(what: string): void {
    if (this.#atKeyword("with")) {
      throw new RegoError(
        "rego_compile_error",
        `unsupported: \`with\` on \`${what}\` is not supported by Mandate's compiler`,
        this.#peek().loc,
      );
    }
  }

  // ---- expressions -----------------------------------------------------------------------------

  /**
   * The lowest level: `x in xs`, and with `keyVal` (a whole expression, not a list item) also
   * `k, v in xs`; a comma not followed by `relation in` is left for the caller.
   */
  #termIn(keyVal: boolean): Term {
    let left = this.#relation();
    if (keyVal && this.#atPunct(",")) left = this.#keyValueMembership(left) ?? left;
    while (this.#atKeyword("in")) {
      const loc = this.#next().loc;
      left = { kind: "membership", key: undefined, value: left, collection: this.#relation(), loc };
    }
    return left;
  }

  #keyValueMembership(key: Term): Term | undefined {
    const start = this.#pos;
    const membership = this.#attempt((): Term | undefined => {
      this.#next();
      const value = this.#relation();
      if (!this.#atKeyword("in")) return undefined;
      const loc = this.#next().loc;
      return { kind: "membership", key, value, collection: this.#relation(), loc };
    });
    if (!membership) this.#pos = start;
    return membership;
  }

  #relation(): Term {
    return this.#binaryLevel(RELATIONS, () => this.#union());
  }

  #union(): Term {
    return this.#binaryLevel(new Set(["|"]), () => this.#intersection());
  }

  #intersection(): Term {
    return this.#binaryLevel(new Set(["&"]), () => this.#arith());
  }

  #arith(): Term {
    return this.#binaryLevel(new Set(["+", "-"]), () => this.#factor());
  }

  #factor(): Term {
    return this.#binaryLevel(new Set(["*", "/", "%"]), () => this.#term());
  }

  /** Left-associative operators of one precedence level. */
  #binaryLevel(ops: ReadonlySet<string>, operand: () => Term): Term {
    let left = operand();
    while (this.#peek().kind === "punct" && ops.has(this.#peek().text)) {
      const op = this.#next();
      left = { kind: "binary", op: op.text as BinaryOp, left, right: operand(), loc: op.loc };
    }
    return left;
  }

  // ---- terms -----------------------------------------------------------------------------------

  /** OPA's parseTerm: a scalar, var, collection or parenthesised expression, and the refs and calls on it. */
  #term(): Term {
    const start = this.#pos;
    const cached = this.#termCache.get(start);
    if (cached) {
      this.#pos = cached.end;
      return cached.term;
    }
    const term = this.#postfix(this.#operand(), false);
    this.#termCache.set(start, { term, end: this.#pos });
    return term;
  }

  #operand(): Term {
    const t = this.#peek();
    if (t.kind === "punct" && (t.text === "[" || t.text === "{" || t.text === "(")) return this.#nested(t);
    if (t.kind === "number" || (t.kind === "punct" && (t.text === "-" || t.text === "."))) return this.#number();
    if (t.kind === "string" || t.kind === "rawstring") {
      this.#next();
      return { kind: "string", value: t.text, loc: t.loc };
    }
    if (t.kind === "ident") return this.#named(t);
    throw this.#illegal();
  }

  /** A bracketed term; nesting is bounded well inside the JavaScript stack (OPA's bound is higher). */
  #nested(t: Token): Term {
    if (++this.#nesting > MAX_NESTING) {
      throw new RegoError("rego_parse_error", `${MAX_NESTING_MESSAGE} (${MAX_NESTING} nested brackets)`, t.loc);
    }
    try {
      if (t.text === "[") return this.#array();
      return t.text === "{" ? this.#setOrObject() : this.#parenthesized();
    } finally {
      this.#nesting--;
    }
  }

  /** null, true, false, or a variable; other keywords (but `contains`, a name outside heads) are refused. */
  #named(t: Token): Term {
    if (t.text === "null") {
      this.#next();
      return { kind: "null", loc: t.loc };
    }
    if (t.text === "true" || t.text === "false") {
      this.#next();
      return { kind: "boolean", value: t.text === "true", loc: t.loc };
    }
    if (this.#isKeyword(t.text) && t.text !== "contains") throw this.#illegal();
    this.#next();
    return { kind: "var", name: t.text, loc: t.loc };
  }

  /** OPA's parseNumber: `-` and `.` prefixes (`-1`, `.5`), no leading zeros. */
  #number(): Term {
    const loc = this.#peek().loc;
    let prefix = "";
    if (this.#atPunct("-")) {
      prefix = "-";
      this.#next();
      if (this.#peek().kind !== "number" && !this.#atPunct(".")) throw this.#illegal("expected number");
    }
    if (this.#atPunct(".")) {
      prefix += "0.";
      this.#next();
      if (this.#peek().kind !== "number") throw this.#illegal("expected number");
    }
    const text = this.#peek().text;
    if (!prefix.endsWith(".") && /^0[0-9]/.test(text)) throw this.#illegal("expected number without leading zero");
    if (prefix.endsWith(".") && text.includes(".")) throw this.#illegal("invalid float");
    this.#next();
    return { kind: "number", text: prefix + text, loc };
  }

  #parenthesized(): Term {
    this.#next();
    const term = this.#termIn(true);
    if (!this.#atPunct(")")) throw this.#error("non-terminated expression");
    this.#next();
    return term;
  }

  /**
   * `.name`, `[expr]` and `(args)` directly after a term (OPA's parseRef). `spaced` lets the first
   * one follow whitespace, as after a rule's name.
   */
  #postfix(start: Term, spaced: boolean): Term {
    let term = start;
    let first = true;
    for (;;) {
      const touching = this.#adjacent() || (first && spaced);
      first = false;
      if (!touching) return term;
      if (this.#atPunct(".")) term = this.#field(term);
      else if (this.#atPunct("[")) term = this.#index(term);
      else if (this.#atPunct("(")) term = this.#call(term);
      else return term;
    }
  }

  #field(term: Term): Term {
    this.#checkRefHead(term);
    this.#next();
    if (this.#peek().kind !== "ident" || !this.#adjacent()) throw this.#illegal("expected identifier");
    const part = this.#next();
    return appendPath(term, { kind: "string", value: part.text, loc: part.loc });
  }

  #index(term: Term): Term {
    this.#checkRefHead(term);
    this.#next();
    const index = this.#termIn(true);
    if (!this.#atPunct("]")) throw this.#illegal("expected ]");
    this.#next();
    return appendPath(term, index);
  }

  /** OPA: a ref's head is a var, a collection, a comprehension or a call; never a scalar or a ref in parentheses. */
  #checkRefHead(term: Term): void {
    if (["null", "boolean", "number", "string"].includes(term.kind) || (term.kind === "ref" && this.#closesParen())) {
      throw new RegoError("rego_parse_error", `illegal ref (head cannot be ${valueName(term)})`, term.loc);
    }
  }

  /** Whether the previous token is `)`: the term before it was parenthesised. */
  #closesParen(): boolean {
    const prev = this.#tokens[this.#pos - 1];
    return prev?.kind === "punct" && prev.text === ")";
  }

  #call(callee: Term): Term {
    const name = callName(callee);
    if (name === undefined) throw this.#error("invalid function name");
    this.#next();
    const args = this.#termList(")", []);
    // `set()` is the empty set literal, not a call.
    if (name === "set" && args.length === 0 && callee.kind === "var")
      return { kind: "set", items: [], loc: callee.loc };
    return { kind: "call", name, nameRef: callee, args, loc: callee.loc };
  }

  /** `[a, b]` or `[x | body]` (OPA's parseArray). */
  #array(): Term {
    const loc = this.#next().loc;
    if (this.#atPunct("]")) {
      this.#next();
      return { kind: "array", items: [], loc };
    }
    const comprehensible = !this.#skipLeadingComma();
    const start = this.#pos;
    const head = this.#term();
    if (this.#atPunct("]") || this.#atPunct(",")) return { kind: "array", items: this.#termList("]", [head]), loc };
    if (this.#atPunct("|") && comprehensible) {
      const body = this.#comprehensionBody("]");
      if (body) return { kind: "arraycomp", term: head, body, loc };
    }
    this.#pos = start;
    return { kind: "array", items: this.#termList("]", []), loc };
  }

  /** `{}` (an empty object), `{k: v}`, `{k: v | body}`, `{a, b}` or `{x | body}` (OPA's parseSetOrObject). */
  #setOrObject(): Term {
    const loc = this.#next().loc;
    if (this.#atPunct("}")) {
      this.#next();
      return { kind: "object", entries: [], loc };
    }
    const comprehensible = !this.#skipLeadingComma();
    const start = this.#pos;
    // A single term first: comprehensions win over `|` as union (`{a | b}`).
    let head = this.#term();
    if ((this.#atPunct("|") && comprehensible) || this.#atPunct("}") || this.#atPunct(",")) {
      return this.#setRest(start, head, comprehensible, loc);
    }
    if (this.#atPunct(":")) return this.#objectRest(head, comprehensible, loc);
    this.#pos = start;
    head = this.#termIn(false);
    if (this.#atPunct("}") || this.#atPunct(",")) return this.#setRest(start, head, false, loc);
    if (this.#atPunct(":")) return this.#objectRest(head, comprehensible, loc);
    throw this.#illegal("non-terminated set");
  }

  #setRest(start: number, head: Term, comprehensible: boolean, loc: Location): Term {
    if (this.#atPunct("}") || this.#atPunct(",")) return { kind: "set", items: this.#termList("}", [head]), loc };
    if (comprehensible) {
      const body = this.#comprehensionBody("}");
      if (body) return { kind: "setcomp", term: head, body, loc };
    }
    this.#pos = start;
    return { kind: "set", items: this.#termList("}", []), loc };
  }

  /** After `{key`: its value, then `| body`, more entries or `}` (OPA's parseObject). */
  #objectRest(key: Term, comprehensible: boolean, loc: Location): Term {
    this.#next(); // :
    const start = this.#pos;
    const value = this.#term();
    const ends = this.#atPunct("}") || this.#atPunct(",");
    if (comprehensible && (ends || this.#atPunct("|"))) {
      const object = this.#attempt(() => this.#objectFinish(key, value, true, loc));
      if (object) return object;
      this.#pos = start;
      if (ends) throw this.#illegal("non-terminated object");
    }
    this.#pos = start;
    const relation = this.#termIn(false);
    if (this.#atPunct("}") || this.#atPunct(",")) return this.#objectFinish(key, relation, false, loc);
    throw this.#illegal("non-terminated object");
  }

  #objectFinish(key: Term, value: Term, comprehensible: boolean, loc: Location): Term {
    if (this.#atPunct("|")) {
      if (!comprehensible) throw this.#illegal("non-terminated object");
      this.#next();
      return { kind: "objectcomp", key, value, body: this.#query("}"), loc };
    }
    const entries: Array<[Term, Term]> = [[key, value]];
    if (this.#atPunct(",")) {
      this.#next();
      while (!this.#atPunct("}")) {
        const k = this.#termIn(false);
        if (!this.#atPunct(":")) throw this.#illegal('expected ":"');
        this.#next();
        entries.push([k, this.#termIn(false)]);
        if (this.#atPunct("}")) break;
        if (!this.#atPunct(",")) throw this.#illegal('expected "," or "}"');
        this.#next();
      }
    }
    this.#expectPunct("}");
    return { kind: "object", entries, loc };
  }

  /**
   * `| body close` as a comprehension's body, or undefined when it does not parse and a comma
   * follows where it failed: OPA then re-reads the whole as a collection (`[x | y, 5]`).
   */
  #comprehensionBody(close: "]" | "}"): Literal[] | undefined {
    const start = this.#pos;
    try {
      this.#next();
      return this.#query(close);
    } catch (error) {
      if (!isSyntaxError(error) || !this.#atPunct(",")) throw error;
      this.#pos = start;
      return undefined;
    }
  }

  /** Items up to `close` (consumed), each an expression without key/value membership; a trailing comma is allowed. */
  #termList(close: string, items: Term[]): Term[] {
    if (items.length > 0 && this.#atPunct(",")) this.#next();
    while (!this.#atPunct(close)) {
      items.push(this.#termIn(false));
      if (this.#atPunct(close)) break;
      if (!this.#atPunct(",")) throw this.#illegal(`expected "," or "${close}"`);
      this.#next();
    }
    this.#next();
    return items;
  }

  /** `[, a]` and `{, a}`: OPA skips one leading comma (and then reads no comprehension). */
  #skipLeadingComma(): boolean {
    if (!this.#atPunct(",")) return false;
    this.#next();
    return true;
  }

  // ---- helpers ---------------------------------------------------------------------------------

  /** Runs `parse`; on a parse error, restores the position and returns undefined (OPA's save/restore). */
  #attempt<T>(parse: () => T): T | undefined {
    const start = this.#pos;
    try {
      return parse();
    } catch (error) {
      if (!isSyntaxError(error)) throw error;
      this.#pos = start;
      return undefined;
    }
  }

  #isKeyword(name: string): boolean {
    return KEYWORDS.has(name) || this.#keywords.has(name);
  }

  #isV1Keyword(name: string): boolean {
    return KEYWORDS.has(name) || (FUTURE_KEYWORDS as readonly string[]).includes(name);
  }

  #peek(): Token {
    return this.#tokens[this.#pos] as Token;
  }

  #next(): Token {
    const t = this.#peek();
    if (t.kind !== "eof") this.#pos++;
    return t;
  }

  #tokenAt(pos: number, punct: string): boolean {
    const t = this.#tokens[pos];
    return t?.kind === "punct" && t.text === punct;
  }

  /** Whether the next token directly follows the previous one (no whitespace): `a[0]` vs `a [0]`. */
  #adjacent(): boolean {
    const prev = this.#tokens[this.#pos - 1];
    const next = this.#tokens[this.#pos];
    return prev !== undefined && next !== undefined && prev.offset + prev.length === next.offset;
  }

  #atKeyword(
    word: "package" | "import" | "as" | "default" | "else" | "not" | "some" | "with" | FutureKeyword,
  ): boolean {
    const t = this.#peek();
    return t.kind === "ident" && t.text === word && this.#isKeyword(word);
  }

  #atPunct(text: string): boolean {
    const t = this.#peek();
    return t.kind === "punct" && t.text === text;
  }

  #expectPunct(text: string): Token {
    if (!this.#atPunct(text)) throw this.#illegal(`expected ${text}`);
    return this.#next();
  }

  /** OPA's `unexpected <token> token|keyword[: note]`, at the current token. */
  #illegal(note?: string): RegoError {
    const t = this.#peek();
    const described = this.#describe(t);
    return this.#error(note ? `${described}: ${note}` : described);
  }

  #describe(t: Token): string {
    if (t.kind === "eof") return "unexpected eof token";
    if (t.kind === "ident") {
      return this.#isKeyword(t.text) ? `unexpected ${t.text} keyword` : "unexpected identifier token";
    }
    if (t.kind === "punct") return `unexpected ${TOKEN_NAMES[t.text] ?? t.text} token`;
    return `unexpected ${t.kind === "rawstring" ? "string" : t.kind} token`;
  }

  #error(message: string, loc: Location = this.#peek().loc): RegoError {
    return new RegoError("rego_parse_error", message, loc);
  }
}

/**
 * A parse error that backtracking may discard (OPA restores its parser state over them); a
 * refusal of what Mandate does not support (or nests too deeply) stands wherever it is raised.
 */
function isSyntaxError(error: unknown): error is RegoError {
  return (
    error instanceof RegoError && error.code === "rego_parse_error" && !error.message.includes(MAX_NESTING_MESSAGE)
  );
}

function appendPath(term: Term, part: Term): Term {
  if (term.kind === "ref") return { ...term, path: [...term.path, part] };
  return { kind: "ref", head: term, path: [part], loc: term.loc };
}

function staticRef(parts: Token[]): Term {
  const [first, ...rest] = parts as [Token, ...Token[]];
  const head: Term = { kind: "var", name: first.text, loc: first.loc };
  if (rest.length === 0) return head;
  return { kind: "ref", head, path: rest.map((p) => ({ kind: "string", value: p.text, loc: p.loc })), loc: first.loc };
}

/** The dotted name of a callee (`count`, `io.jwt.decode`, `data.lib.f`), or undefined if it has none. */
function callName(term: Term): string | undefined {
  if (term.kind === "var") return term.name;
  if (term.kind === "ref" && term.head.kind === "var" && term.path.every((p) => p.kind === "string")) {
    return [term.head.name, ...term.path.map((p) => (p as { value: string }).value)].join(".");
  }
  return undefined;
}

/** How many terms a head's ref has, OPA-style: `p` 1, `p[x]` 2, `a.b.c` 3. */
function refLengthOf(ref: Term): number {
  return ref.kind === "ref" ? 1 + ref.path.length : 1;
}

function refText(ref: Term): string {
  if (ref.kind === "var") return ref.name;
  if (ref.kind !== "ref") return valueName(ref);
  const head = ref.head.kind === "var" ? ref.head.name : valueName(ref.head);
  return head + ref.path.map((p) => (p.kind === "string" ? `.${p.value}` : "[...]")).join("");
}

/** OPA's ValueName for a term. */
function valueName(term: Term): string {
  switch (term.kind) {
    case "arraycomp":
      return "arraycomprehension";
    case "setcomp":
      return "setcomprehension";
    case "objectcomp":
      return "objectcomprehension";
    case "binary":
    case "membership":
    case "unary":
      return "call";
    default:
      return term.kind;
  }
}

function valueNameOfToken(t: Token): string {
  if (t.kind === "ident")
    return t.text === "null" ? "null" : t.text === "true" || t.text === "false" ? "boolean" : "var";
  if (t.kind === "rawstring") return "string";
  return t.kind === "punct" ? (TOKEN_NAMES[t.text] ?? t.text) : t.kind;
}

/** OPA: a default function's arguments are distinct variables. */
function checkDefaultArgs(args: Term[], loc: Location): void {
  const seen = new Set<string>();
  for (const arg of args) {
    if (arg.kind !== "var") {
      throw new RegoError("rego_parse_error", `illegal default rule (arguments cannot contain ${valueName(arg)})`, loc);
    }
    if (arg.name !== "_" && seen.has(arg.name)) {
      throw new RegoError("rego_parse_error", `illegal default rule (arguments cannot be repeated ${arg.name})`, loc);
    }
    seen.add(arg.name);
  }
}

function isCall(term: Term): boolean {
  return term.kind === "call" || term.kind === "binary" || term.kind === "membership" || term.kind === "unary";
}

function isGround(term: Term): boolean {
  return findOutsideComprehensions(term, (t) => t.kind === "var") === undefined;
}

/** The first sub-term (the term itself included) matching `test`, not looking into comprehensions. */
function findOutsideComprehensions(term: Term, test: (t: Term) => boolean): Term | undefined {
  if (test(term)) return term;
  if (term.kind === "arraycomp" || term.kind === "setcomp" || term.kind === "objectcomp") return undefined;
  for (const child of subterms(term)) {
    const found = findOutsideComprehensions(child, test);
    if (found) return found;
  }
  return undefined;
}
