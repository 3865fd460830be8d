// The Rego AST the parser produces and the later stages (semantic checks, planner, code
// generation) consume. Every node carries its source location for OPA-style error messages.
// Besides the types, one structural helper: a term's sub-terms (for every walk over terms), and
// the built-in each binary operator calls.
import type { Location } from "./lexer.ts";

export type Term =
  | { kind: "null"; loc: Location }
  | { kind: "boolean"; value: boolean; loc: Location }
  /** Numbers keep their source text: JSON numbers are arbitrary precision in Rego. */
  | { kind: "number"; text: string; loc: Location }
  | { kind: "string"; value: string; loc: Location }
  | { kind: "var"; name: string; loc: Location }
  /** `head.a[b]...`: the head is a var or a composite/call; `.a` is stored as the string "a". */
  | { kind: "ref"; head: Term; path: Term[]; loc: Location }
  | { kind: "array"; items: Term[]; loc: Location }
  | { kind: "set"; items: Term[]; loc: Location }
  | { kind: "object"; entries: Array<[Term, Term]>; loc: Location }
  /** A function or built-in call; `name` is its dotted name, e.g. "count" or "data.lib.f". */
  | { kind: "call"; name: string; nameRef: Term; args: Term[]; loc: Location }
  | { kind: "binary"; op: BinaryOp; left: Term; right: Term; loc: Location }
  | { kind: "unary"; op: "-"; arg: Term; loc: Location }
  /** `k, v in coll` / `v in coll` used as an expression. */
  | { kind: "membership"; key: Term | undefined; value: Term; collection: Term; loc: Location }
  | { kind: "arraycomp"; term: Term; body: Literal[]; loc: Location }
  | { kind: "setcomp"; term: Term; body: Literal[]; loc: Location }
  | { kind: "objectcomp"; key: Term; value: Term; body: Literal[]; loc: Location };

/** The term of one kind: `TermOf<"var">`. */
export type TermOf<K extends Term["kind"]> = Extract<Term, { kind: K }>;

export type Comprehension = TermOf<"arraycomp" | "setcomp" | "objectcomp">;

export type BinaryOp = "==" | "!=" | "<" | "<=" | ">" | ">=" | "|" | "&" | "+" | "-" | "*" | "/" | "%";

/** The built-in an operator calls (one table for the type checker and the planner, so they agree). */
export const OPERATOR_BUILTINS: Record<BinaryOp, string> = {
  "==": "equal",
  "!=": "neq",
  "<": "lt",
  "<=": "lte",
  ">": "gt",
  ">=": "gte",
  "|": "or",
  "&": "and",
  "+": "plus",
  "-": "minus",
  "*": "mul",
  "/": "div",
  "%": "rem",
};

export interface With {
  target: Term;
  value: Term;
  loc: Location;
}

export type Literal =
  | { kind: "expr"; negated: boolean; expr: Term; with: With[]; loc: Location }
  /** `x = y` (unification) and `x := y` (assignment). */
  | { kind: "unify"; assign: boolean; negated: boolean; left: Term; right: Term; with: With[]; loc: Location }
  | { kind: "some"; vars: Term[]; loc: Location }
  | { kind: "somein"; key: Term | undefined; value: Term; collection: Term; loc: Location }
  | { kind: "every"; key: Term | undefined; value: Term; domain: Term; body: Literal[]; loc: Location };

/** The literal of one kind: `LiteralOf<"every">`. */
export type LiteralOf<K extends Literal["kind"]> = Extract<Literal, { kind: K }>;

export interface RuleHead {
  /** The rule's name as a ref: `p`, `a.b.c`, `p[x]`. */
  ref: Term;
  /** Function arguments, when the rule is a function. */
  args: Term[] | undefined;
  /** Partial set element (`p contains x`, v0 `p[x]`). */
  contains: Term | undefined;
  /** The value (`= v` / `:= v`); absent means `true`. */
  value: Term | undefined;
  assign: boolean;
  loc: Location;
}

export interface ElseClause {
  value: Term | undefined;
  body: Literal[];
  loc: Location;
}

export interface Rule {
  default: boolean;
  head: RuleHead;
  /** Bodies; several for v0 `p { a } { b }`; one empty body for rules without one. */
  bodies: Literal[][];
  elses: ElseClause[];
  loc: Location;
}

export interface Import {
  path: Term;
  alias: string | undefined;
  loc: Location;
}

export interface Module {
  file: string;
  /** The package path, e.g. ["authz", "v1"] for `package authz.v1`. */
  package: string[];
  imports: Import[];
  rules: Rule[];
  /** Whether the module was read with Rego v1 rules (keywords always on, `if`/`contains` required). */
  v1: boolean;
}

/** A term's direct sub-terms, in source order; comprehension bodies are not terms of it. */
export function subterms(term: Term): Term[] {
  switch (term.kind) {
    case "ref":
      return [term.head, ...term.path];
    case "array":
    case "set":
      return term.items;
    case "object":
      return term.entries.flat();
    case "call":
      return term.args;
    case "binary":
      return [term.left, term.right];
    case "unary":
      return [term.arg];
    case "membership":
      return term.key ? [term.key, term.value, term.collection] : [term.value, term.collection];
    case "arraycomp":
    case "setcomp":
      return [term.term];
    case "objectcomp":
      return [term.key, term.value];
    default:
      return [];
  }
}
