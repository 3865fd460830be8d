// What a term is, judged from its syntax alone: a constant, a pattern, a collection literal; when
// two literals can never unify (and the error refusing them); a number literal's JSON text.
import type { Term, TermOf } from "../ast.ts";
import { type Location, RegoError } from "../lexer.ts";

export function trueTerm(loc: Location): Term {
  return { kind: "boolean", value: true, loc };
}

/** A variable, or an array/object literal whose values are patterns (keys may be any term). */
export function isPattern(term: Term): boolean {
  if (term.kind === "var") return true;
  if (term.kind === "array") return term.items.every((t) => isPattern(t) || isConstant(t));
  if (term.kind === "object") return term.entries.every(([, v]) => isPattern(v) || isConstant(v));
  return false;
}

export function isConstant(term: Term): boolean {
  switch (term.kind) {
    case "null":
    case "boolean":
    case "number":
    case "string":
      return true;
    case "array":
    case "set":
      return term.items.every(isConstant);
    case "object":
      return term.entries.every(([k, v]) => isConstant(k) && isConstant(v));
    default:
      return false;
  }
}

export function isCollectionLiteral(term: Term): boolean {
  return term.kind === "array" || term.kind === "object" || term.kind === "set";
}

/** OPA's type checker refuses unifications that can never succeed. */
export function matchError(loc: Location): RegoError {
  return new RegoError("rego_type_error", "match error: the two sides can never unify", loc);
}

/** Whether two collection literals could unify: same kind, arrays of one length, objects with the same keys. */
export function canUnifyLiterals(a: Term, b: Term): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === "array" && b.kind === "array") return a.items.length === b.items.length;
  if (a.kind === "object" && b.kind === "object") {
    const [ka, kb] = [constantKeys(a), constantKeys(b)];
    return ka === undefined || kb === undefined || sameKeySet(ka, kb);
  }
  return true;
}

export function sameConstantKeys(a: TermOf<"object">, b: TermOf<"object">): boolean {
  const [ka, kb] = [constantKeys(a), constantKeys(b)];
  return ka !== undefined && kb !== undefined && sameKeySet(ka, kb);
}

/** An object literal's keys as canonical text; undefined when one is not a constant. */
function constantKeys(term: TermOf<"object">): Array<string | undefined> | undefined {
  const keys = term.entries.map(([key]) => constantKey(key));
  return keys.some((k) => k === undefined) ? undefined : keys;
}

function sameKeySet(a: Array<string | undefined>, b: Array<string | undefined>): boolean {
  return a.length === b.length && a.every((k) => b.includes(k));
}

export function constantKey(term: Term): string | undefined {
  switch (term.kind) {
    case "string":
      return JSON.stringify(term.value);
    case "number":
      return String(Number(term.text));
    case "boolean":
      return String(term.value);
    case "null":
      return "null";
    default:
      return undefined;
  }
}

export function jsonNumber(text: string, loc: Location): string {
  // Rego numbers are JSON numbers; a leading "+" or "." form is normalised by JSON.parse's rules.
  if (!/^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(text)) {
    const n = Number(text);
    if (!Number.isFinite(n)) throw new RegoError("rego_parse_error", `invalid number ${text}`, loc);
    return String(n);
  }
  return text;
}
