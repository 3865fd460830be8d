// OPA's declared signatures of its built-in functions (v1/ast/builtins.go), which the type checker
// (typecheck.ts) checks calls against. Each is written in OPA's own printed form, argument names
// included, as they appear in a `rego_type_error`'s `want:` line:
//
//   "(x: number, y: number) => z: number"
//
// Types: null, boolean, number, string, any, any<T, U> (a union), array[T] (any length),
// array<T, U> (fixed elements), set[T], object[K: V] (dynamic keys), object<k: T>[K: V] (static
// keys, then dynamic ones). `T...` ends a variadic argument list; no `=>` is a void function.
// A built-in without a signature here is checked for its arity only (builtins.ts) and typed any.

import type { Term } from "./ast.ts";
import { displayName } from "./vars.ts";

// ---- types, as OPA's v1/types models them ------------------------------------------------------

/** A Rego type; `undefined` is OPA's nil type (not known yet), printed `???`. */
export type RegoType =
  | { kind: "null" }
  | { kind: "boolean" }
  | { kind: "number" }
  | { kind: "string" }
  | { kind: "array"; items: Type[]; dynamic: Type }
  | { kind: "object"; props: Array<{ key: string; value: Type }>; dynamic: { key: Type; value: Type } | undefined }
  | { kind: "set"; of: Type }
  /** A union of its members; with none, any value at all. */
  | { kind: "any"; of: RegoType[] };
export type Type = RegoType | undefined;

/** A declared argument or result: its type and, for most built-ins, its name. */
export interface Named {
  name: string | undefined;
  type: RegoType;
}

export interface Signature {
  args: Named[];
  /** The type of every argument after `args`, for a variadic built-in. */
  variadic: RegoType | undefined;
  /** Absent for a void built-in. */
  result: Named | undefined;
}

export const NULL: RegoType = { kind: "null" };
export const BOOLEAN: RegoType = { kind: "boolean" };
export const NUMBER: RegoType = { kind: "number" };
export const STRING: RegoType = { kind: "string" };
export const ANY: RegoType = { kind: "any", of: [] };

export const arrayOf = (dynamic: Type, items: Type[] = []): RegoType => ({ kind: "array", items, dynamic });
export const setOf = (of: Type): RegoType => ({ kind: "set", of });

/** An object type; static keys are kept in OPA's order (strings sort by code point). */
export function objectOf(props: Array<{ key: string; value: Type }>, dynamic?: { key: Type; value: Type }): RegoType {
  return { kind: "object", props: [...props].sort((a, b) => compareStrings(a.key, b.key)), dynamic };
}

/** A union, members sorted and deduplicated as OPA's types.NewAny does. */
export function anyOf(members: RegoType[]): RegoType {
  const sorted = [...members].sort(compareTypes);
  return { kind: "any", of: sorted.filter((t, i) => i === 0 || compareTypes(sorted[i - 1], t) !== 0) };
}

const compareStrings = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

const ORDER: Record<RegoType["kind"], number> = {
  null: 0,
  boolean: 1,
  number: 2,
  string: 3,
  array: 4,
  object: 5,
  set: 6,
  any: 7,
};

/** OPA's total order on types (types.Compare); nil sorts first. */
export function compareTypes(a: Type, b: Type): number {
  const x = a ? ORDER[a.kind] : -1;
  const y = b ? ORDER[b.kind] : -1;
  if (x !== y) return x < y ? -1 : 1;
  if (!a || !b) return 0;
  if (a.kind === "array" && b.kind === "array") return compareArrays(a, b);
  if (a.kind === "object" && b.kind === "object") return compareObjects(a, b);
  if (a.kind === "set" && b.kind === "set") return compareTypes(a.of, b.of);
  if (a.kind === "any" && b.kind === "any") return compareTypeLists(a.of, b.of);
  return 0;
}

function compareArrays(a: RegoType & { kind: "array" }, b: RegoType & { kind: "array" }): number {
  if ((a.dynamic === undefined) !== (b.dynamic === undefined)) return a.dynamic ? 1 : -1;
  return compareTypes(a.dynamic, b.dynamic) || compareTypeLists(a.items, b.items);
}

function compareTypeLists(a: Type[], b: Type[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = compareTypes(a[i], b[i]);
    if (c !== 0) return c;
  }
  return a.length - b.length === 0 ? 0 : a.length < b.length ? -1 : 1;
}

function compareObjects(a: RegoType & { kind: "object" }, b: RegoType & { kind: "object" }): number {
  if ((a.dynamic === undefined) !== (b.dynamic === undefined)) return a.dynamic ? 1 : -1;
  if (a.dynamic && b.dynamic) {
    const c = compareTypes(a.dynamic.key, b.dynamic.key) || compareTypes(a.dynamic.value, b.dynamic.value);
    if (c !== 0) return c;
  }
  for (let i = 0; i < Math.min(a.props.length, b.props.length); i++) {
    const pa = a.props[i] as { key: string; value: Type };
    const pb = b.props[i] as { key: string; value: Type };
    const c = compareStrings(pa.key, pb.key) || compareTypes(pa.value, pb.value);
    if (c !== 0) return c;
  }
  return a.props.length === b.props.length ? 0 : a.props.length < b.props.length ? -1 : 1;
}

/** A type as OPA prints it (types.Sprint). */
export function formatType(t: Type): string {
  if (!t) return "???";
  switch (t.kind) {
    case "array": {
      const items = t.items.length > 0 ? `<${t.items.map(formatType).join(", ")}>` : "";
      return `array${items}${t.dynamic ? `[${formatType(t.dynamic)}]` : ""}`;
    }
    case "object": {
      const props = t.props.length > 0 ? `<${t.props.map((p) => `${p.key}: ${formatType(p.value)}`).join(", ")}>` : "";
      const dynamic = t.dynamic ? `[${formatType(t.dynamic.key)}: ${formatType(t.dynamic.value)}]` : "";
      return `object${props}${dynamic}`;
    }
    case "set":
      return `set[${formatType(t.of)}]`;
    case "any":
      return t.of.length > 0 ? `any<${t.of.map(formatType).join(", ")}>` : "any";
    default:
      return t.kind;
  }
}

export const formatNamed = (n: Named): string => (n.name ? `${n.name}: ${formatType(n.type)}` : formatType(n.type));

// ---- operations on types (OPA's types package and check.go's unifies) ---------------------------

/** The union of two types; nil is the identity (types.Or). */
export function or(a: Type, b: Type): Type {
  if (!a) return b;
  if (!b) return a;
  if (a.kind === "any" || b.kind === "any") {
    const [u, other] = a.kind === "any" ? [a, b] : [b as RegoType & { kind: "any" }, a];
    if (u.of.length === 0) return u;
    if (other.kind === "any") return other.of.length === 0 ? other : anyOf([...u.of, ...other.of]);
    return anyOf([...u.of, other]);
  }
  return compareTypes(a, b) === 0 ? a : anyOf([a, b]);
}

export const isAny = (t: Type): boolean => t?.kind === "any" && t.of.length === 0;

/** The type of the keys a value of type t can be iterated with (types.Keys). */
export function keysOf(t: Type): Type {
  if (!t) return undefined;
  switch (t.kind) {
    case "array":
      return NUMBER;
    case "object":
      return t.props.reduce<Type>((acc) => or(acc, STRING), t.dynamic?.key);
    case "set":
      return t.of;
    case "any":
      return isAny(t) ? ANY : t.of.reduce<Type>((acc, m) => or(keysOf(m), acc), undefined);
    default:
      return undefined;
  }
}

/** The type of the values a value of type t holds (types.Values). */
export function valuesOf(t: Type): Type {
  if (!t) return undefined;
  switch (t.kind) {
    case "array":
      return or(
        t.items.reduce<Type>((acc, item) => or(acc, item), undefined),
        t.dynamic,
      );
    case "object":
      return or(
        t.props.reduce<Type>((acc, p) => or(acc, p.value), undefined),
        t.dynamic?.value,
      );
    case "set":
      return t.of;
    case "any":
      return isAny(t) ? ANY : t.of.reduce<Type>((acc, m) => or(valuesOf(m), acc), undefined);
    default:
      return undefined;
  }
}

/** Whether a is b or a union holding b (types.Contains). */
export function contains(a: RegoType, b: RegoType): boolean {
  if (a.kind === "any") return a.of.length === 0 || a.of.some((m) => compareTypes(m, b) === 0);
  return compareTypes(a, b) === 0;
}

/** Whether values of two types can be equal (check.go's unifies). */
export function unifies(a: Type, b: Type): boolean {
  if (!a || !b) return false;
  if (a.kind === "any" && unifiesAny(a, b)) return true;
  if (b.kind === "any" && unifiesAny(b, a)) return true;
  if (a.kind === "any" || b.kind === "any" || a.kind !== b.kind) return false;
  if (a.kind === "array" && b.kind === "array") return unifiesArrays(a, b);
  if (a.kind === "object" && b.kind === "object") return unifiesObjects(a, b);
  if (a.kind === "set" && b.kind === "set") return unifies(a.of, b.of);
  return true;
}

function unifiesArrays(a: RegoType & { kind: "array" }, b: RegoType & { kind: "array" }): boolean {
  return (
    a.items.every((t, i) => unifies(t, selectIndex(b, i))) &&
    b.items.every((t, i) => unifies(t, selectIndex(a, i))) &&
    (!a.dynamic || !b.dynamic || unifies(a.dynamic, b.dynamic))
  );
}

function unifiesObjects(a: RegoType & { kind: "object" }, b: RegoType & { kind: "object" }): boolean {
  return (
    a.props.every((p) => unifies(p.value, selectKey(b, p.key))) &&
    b.props.every((p) => unifies(p.value, selectKey(a, p.key))) &&
    (!a.dynamic || !b.dynamic || unifies(a.dynamic.value, b.dynamic.value))
  );
}

function unifiesAny(a: RegoType & { kind: "any" }, b: RegoType): boolean {
  return a.of.length === 0 || a.of.some((m) => unifies(m, b));
}

export function selectIndex(t: RegoType & { kind: "array" }, i: number): Type {
  return i < t.items.length ? t.items[i] : t.dynamic;
}

export function selectKey(t: RegoType & { kind: "object" }, key: string): Type {
  const prop = t.props.find((p) => p.key === key);
  if (prop) return prop.value;
  return t.dynamic?.key && contains(t.dynamic.key, STRING) ? t.dynamic.value : undefined;
}

/**
 * Two definitions' types merged, as OPA's type tree merges the rules of one path: sets, and arrays
 * and objects of dynamic elements only, merge their elements; anything else is a union.
 */
export function mergeTypes(a: Type, b: Type): Type {
  if (!a) return b;
  if (!b) return a;
  if (a.kind === "set" && b.kind === "set") return setOf(or(a.of, b.of));
  if (a.kind === "array" && b.kind === "array" && a.items.length === 0 && b.items.length === 0) {
    return arrayOf(or(a.dynamic, b.dynamic));
  }
  if (a.kind === "object" && b.kind === "object" && a.props.length === 0 && a.dynamic && b.dynamic) {
    return objectOf([], { key: or(a.dynamic.key, b.dynamic.key), value: or(a.dynamic.value, b.dynamic.value) });
  }
  return or(a, b);
}

/** The type of a scalar literal; undefined for any other term. */
export function constantType(term: Term): Type {
  switch (term.kind) {
    case "null":
      return NULL;
    case "boolean":
      return BOOLEAN;
    case "number":
      return NUMBER;
    case "string":
      return STRING;
    default:
      return undefined;
  }
}

/**
 * A term's type before any variable is typed, as OPA's compiler prints operands in errors raised
 * before type checking: literals by their shape, `input` and `data` any, variables and what they
 * hold (and calls, whose results are variables by then) not known (`???`).
 */
export function literalType(term: Term): Type {
  switch (term.kind) {
    case "array":
      return arrayOf(term.items.length === 0 ? ANY : undefined, term.items.map(literalType));
    case "set":
      return setOf(term.items.reduce<Type>((acc, t) => or(acc, literalType(t)), undefined) ?? ANY);
    case "object": {
      const props = term.entries.flatMap(([k, v]) =>
        k.kind === "string" ? [{ key: k.value, value: literalType(v) }] : [],
      );
      const dynamic = term.entries.find(([k]) => k.kind !== "string");
      if (dynamic) return objectOf(props, { key: literalType(dynamic[0]), value: literalType(dynamic[1]) });
      return objectOf(props, props.length === 0 ? { key: ANY, value: ANY } : undefined);
    }
    case "ref":
      return literalType(term.head) === ANY ? ANY : undefined;
    case "var":
      return term.name === "input" || term.name === "data" ? ANY : undefined;
    default:
      return constantType(term);
  }
}

/** A term as OPA prints it in an error: `x.a[0]`, `f(1, "s")`, `{"k": v}`, `{1, 2}`. */
export function termText(term: Term): string {
  switch (term.kind) {
    case "string":
      return JSON.stringify(term.value);
    case "number":
      return term.text;
    case "boolean":
      return String(term.value);
    case "null":
      return "null";
    case "var":
      return displayName(term.name);
    case "ref":
      return termText(term.head) + term.path.map(refSegmentText).join("");
    case "array":
      return `[${term.items.map(termText).join(", ")}]`;
    case "set":
      return term.items.length === 0 ? "set()" : `{${term.items.map(termText).join(", ")}}`;
    case "object":
      return `{${term.entries.map(([k, v]) => `${termText(k)}: ${termText(v)}`).join(", ")}}`;
    case "call":
      return `${term.name}(${term.args.map(termText).join(", ")})`;
    case "binary":
      return `${termText(term.left)} ${term.op} ${termText(term.right)}`;
    case "unary":
      return `-${termText(term.arg)}`;
    case "membership":
      return `${term.key ? `${termText(term.key)}, ` : ""}${termText(term.value)} in ${termText(term.collection)}`;
    default:
      return term.kind;
  }
}

/** One step of a reference: `.name` for a string that is a valid name, `[term]` otherwise. */
export function refSegmentText(segment: Term): string {
  if (segment.kind === "string" && /^[A-Za-z_][A-Za-z0-9_]*$/.test(segment.value)) return `.${segment.value}`;
  return `[${termText(segment)}]`;
}

// ---- reading the signatures ----------------------------------------------------------------------

/** Splits at the top-level occurrences of a separator (outside <> and []). */
function splitTopLevel(text: string, separator: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "<" || c === "[") depth++;
    else if (c === ">" || c === "]") depth--;
    else if (depth === 0 && text.startsWith(separator, i)) {
      parts.push(text.slice(start, i));
      start = i + separator.length;
    }
  }
  parts.push(text.slice(start));
  return parts.map((p) => p.trim());
}

/** Reads a type written as OPA prints it. */
export function parseType(text: string): RegoType {
  const match = /^(\w+)(?:<(.*?)>)?(?:\[(.*)\])?$/s.exec(text.trim());
  if (!match) throw new Error(`bad type: ${text}`);
  const [, kind, angle, square] = match as unknown as [string, string, string | undefined, string | undefined];
  const inner = (s: string | undefined) => (s === undefined ? [] : splitTopLevel(s, ","));
  switch (kind) {
    case "null":
      return NULL;
    case "boolean":
      return BOOLEAN;
    case "number":
      return NUMBER;
    case "string":
      return STRING;
    case "any":
      return angle === undefined ? ANY : anyOf(inner(angle).map(parseType));
    case "set":
      return setOf(parseType(square as string));
    case "array":
      return arrayOf(square === undefined ? undefined : parseType(square), inner(angle).map(parseType));
    case "object": {
      const props = inner(angle).map((p) => {
        const [key, value] = splitTopLevel(p, ":") as [string, string];
        return { key, value: parseType(value) };
      });
      const dynamic = square === undefined ? undefined : (splitTopLevel(square, ":") as [string, string]);
      return objectOf(props, dynamic && { key: parseType(dynamic[0]), value: parseType(dynamic[1]) });
    }
    default:
      throw new Error(`bad type: ${text}`);
  }
}

function parseNamed(text: string): Named {
  const parts = splitTopLevel(text, ":");
  return parts.length === 2
    ? { name: parts[0], type: parseType(parts[1] as string) }
    : { name: undefined, type: parseType(text) };
}

/** Reads a signature: `(x: number, y: number) => z: number`, `(any...)`. */
export function parseSignature(text: string): Signature {
  const close = text.indexOf(") => ");
  const argsText = text.slice(1, close >= 0 ? close : text.lastIndexOf(")"));
  const args = argsText === "" ? [] : splitTopLevel(argsText, ",");
  const variadic = args.at(-1)?.endsWith("...") ? parseType((args.pop() as string).slice(0, -3)) : undefined;
  return {
    args: args.map(parseNamed),
    variadic,
    result: close >= 0 ? parseNamed(text.slice(close + 5)) : undefined,
  };
}

/** Prints a signature as written above; parseSignature's inverse (members of any<> in OPA's order). */
export function formatSignature(s: Signature): string {
  const args = [...s.args.map(formatNamed), ...(s.variadic ? [`${formatType(s.variadic)}...`] : [])];
  return `(${args.join(", ")})${s.result ? ` => ${formatNamed(s.result)}` : ""}`;
}

const parsed = new Map<string, Signature>();

/** OPA's declared signature of a built-in, or undefined when it has none here. */
export function builtinSignature(name: string): Signature | undefined {
  const text = BUILTIN_SIGNATURES[name];
  if (text === undefined) return undefined;
  let signature = parsed.get(name);
  if (!signature) {
    signature = parseSignature(text);
    parsed.set(name, signature);
  }
  return signature;
}

// ---- the declarations ----------------------------------------------------------------------------

const OBJECT = "object[any: any]";
const STRING_OBJECT = "object[string: any]";
const ARRAY = "array[any]";
const SET = "set[any]";
const NUMBER_OR_NS_TZ = "any<number, array<number, string>>";
const JSON_PATHS = "any<array[any<string, array[any]>], set[any<string, array[any]>]>";
const CIDR_OPERAND = `any<string, array[any<string, ${ARRAY}>], object[string: any<string, ${ARRAY}>], set[any<string, ${ARRAY}>]>`;
const GRAPH = `object[any: any<${ARRAY}, ${SET}>]`;
const GRAPHQL = `any<string, ${OBJECT}>`;

const binaryNumber = "(x: number, y: number) => z: number";
const stringToString = "(x: string) => y: string";
const typeTest = "(x: any) => result: boolean";
const jwtVerify = "(jwt: string, certificate: string) => result: boolean";
const jwtVerifySecret = "(jwt: string, secret: string) => result: boolean";
const hmac = "(x: string, key: string) => y: string";
const comparison = "(x: any, y: any) => result: boolean";

export const BUILTIN_SIGNATURES: Readonly<Record<string, string>> = {
  // Operators: `=` and `:=` are unification, checked as such; membership takes anything.
  eq: "(any, any) => boolean",
  assign: "(any, any) => boolean",
  "internal.member_2": "(any, any) => boolean",
  "internal.member_3": "(any, any, any) => boolean",
  gt: comparison,
  gte: comparison,
  lt: comparison,
  lte: comparison,
  neq: comparison,
  equal: comparison,
  // numbers
  plus: binaryNumber,
  minus: `(x: any<number, ${SET}>, y: any<number, ${SET}>) => z: any<number, ${SET}>`,
  mul: binaryNumber,
  div: binaryNumber,
  rem: binaryNumber,
  round: "(x: number) => y: number",
  ceil: "(x: number) => y: number",
  floor: "(x: number) => y: number",
  abs: "(x: number) => y: number",
  "numbers.range": "(a: number, b: number) => range: array[number]",
  "numbers.range_step": "(a: number, b: number, step: number) => range: array[number]",
  "rand.intn": "(str: string, n: number) => y: number",
  // bits
  "bits.or": binaryNumber,
  "bits.and": binaryNumber,
  "bits.negate": "(x: number) => z: number",
  "bits.xor": binaryNumber,
  "bits.lsh": "(x: number, s: number) => z: number",
  "bits.rsh": "(x: number, s: number) => z: number",
  // sets
  and: `(x: ${SET}, y: ${SET}) => z: ${SET}`,
  or: `(x: ${SET}, y: ${SET}) => z: ${SET}`,
  intersection: `(xs: set[${SET}]) => y: ${SET}`,
  union: `(xs: set[${SET}]) => y: ${SET}`,
  set_diff: `(${SET}, ${SET}) => ${SET}`,
  // aggregates
  count: `(collection: any<string, ${ARRAY}, ${OBJECT}, ${SET}>) => n: number`,
  sum: "(collection: any<array[number], set[number]>) => n: number",
  product: "(collection: any<array[number], set[number]>) => n: number",
  max: `(collection: any<${ARRAY}, ${SET}>) => n: any`,
  min: `(collection: any<${ARRAY}, ${SET}>) => n: any`,
  sort: `(collection: any<${ARRAY}, ${SET}>) => n: ${ARRAY}`,
  all: `(any<${ARRAY}, ${SET}>) => boolean`,
  any: `(any<${ARRAY}, ${SET}>) => boolean`,
  // arrays
  "array.concat": `(x: ${ARRAY}, y: ${ARRAY}) => z: ${ARRAY}`,
  "array.slice": `(arr: ${ARRAY}, start: number, stop: number) => slice: ${ARRAY}`,
  "array.reverse": `(arr: ${ARRAY}) => rev: ${ARRAY}`,
  // conversions and casts
  to_number: "(x: any<null, boolean, number, string>) => num: number",
  cast_array: `(any) => ${ARRAY}`,
  cast_set: `(any) => ${SET}`,
  cast_string: "(any) => string",
  cast_boolean: "(any) => boolean",
  cast_null: "(any) => null",
  cast_object: `(any) => ${OBJECT}`,
  // regular expressions and globs
  "regex.match": "(pattern: string, value: string) => result: boolean",
  re_match: "(string, string) => boolean",
  "regex.is_valid": "(pattern: string) => result: boolean",
  "regex.find_all_string_submatch_n":
    "(pattern: string, value: string, number: number) => output: array[array[string]]",
  "regex.template_match":
    "(template: string, value: string, delimiter_start: string, delimiter_end: string) => result: boolean",
  "regex.split": "(pattern: string, value: string) => output: array[string]",
  "regex.find_n": "(pattern: string, value: string, number: number) => output: array[string]",
  "regex.globs_match": "(glob1: string, glob2: string) => result: boolean",
  "regex.replace": "(s: string, pattern: string, value: string) => output: string",
  "glob.match": "(pattern: string, delimiters: any<null, array[string]>, match: string) => result: boolean",
  "glob.quote_meta": "(pattern: string) => output: string",
  // strings
  "strings.any_prefix_match":
    "(search: any<string, array[string], set[string]>, base: any<string, array[string], set[string]>) => result: boolean",
  "strings.any_suffix_match":
    "(search: any<string, array[string], set[string]>, base: any<string, array[string], set[string]>) => result: boolean",
  concat: "(delimiter: string, collection: any<array[string], set[string]>) => output: string",
  format_int: "(number: number, base: number) => output: string",
  indexof: "(haystack: string, needle: string) => output: number",
  indexof_n: "(haystack: string, needle: string) => output: array[number]",
  substring: "(value: string, offset: number, length: number) => output: string",
  contains: "(haystack: string, needle: string) => result: boolean",
  "strings.count": "(search: string, substring: string) => output: number",
  startswith: "(search: string, base: string) => result: boolean",
  endswith: "(search: string, base: string) => result: boolean",
  lower: stringToString,
  upper: stringToString,
  split: "(x: string, delimiter: string) => ys: array[string]",
  replace: "(x: string, old: string, new: string) => y: string",
  "strings.replace_n": "(patterns: object[string: string], value: string) => output: string",
  trim: "(value: string, cutset: string) => output: string",
  trim_left: "(value: string, cutset: string) => output: string",
  trim_prefix: "(value: string, prefix: string) => output: string",
  trim_right: "(value: string, cutset: string) => output: string",
  trim_suffix: "(value: string, suffix: string) => output: string",
  trim_space: "(value: string) => output: string",
  sprintf: `(format: string, values: ${ARRAY}) => output: string`,
  "strings.reverse": stringToString,
  "strings.render_template": `(value: string, vars: ${STRING_OBJECT}) => result: string`,
  // units and identifiers
  "units.parse": "(x: string) => y: number",
  "units.parse_bytes": "(x: string) => y: number",
  "uuid.rfc4122": "(k: string) => output: string",
  "uuid.parse": `(uuid: string) => result: ${STRING_OBJECT}`,
  // objects and JSON documents
  "json.filter": `(object: ${OBJECT}, paths: ${JSON_PATHS}) => filtered: any`,
  "json.remove": `(object: ${OBJECT}, paths: ${JSON_PATHS}) => output: any`,
  "json.patch": `(object: any, patches: array[object<op: string, path: any>[any: any]]) => output: any`,
  "object.subset": `(super: any<${ARRAY}, ${OBJECT}, ${SET}>, sub: any<${ARRAY}, ${OBJECT}, ${SET}>) => result: any`,
  "object.union": `(a: ${OBJECT}, b: ${OBJECT}) => output: any`,
  "object.union_n": `(objects: array[${OBJECT}]) => output: any`,
  "object.remove": `(object: ${OBJECT}, keys: any<${ARRAY}, ${OBJECT}, ${SET}>) => output: any`,
  "object.filter": `(object: ${OBJECT}, keys: any<${ARRAY}, ${OBJECT}, ${SET}>) => filtered: any`,
  "object.get": `(object: ${OBJECT}, key: any, default: any) => value: any`,
  "object.keys": `(object: ${OBJECT}) => value: ${SET}`,
  // encodings
  "json.marshal": "(x: any) => y: string",
  "json.marshal_with_options":
    "(x: any, opts: object<indent: string, prefix: string, pretty: boolean>[string: any]) => y: string",
  "json.unmarshal": "(x: string) => y: any",
  "json.is_valid": "(x: string) => result: boolean",
  "base64.encode": stringToString,
  "base64.decode": stringToString,
  "base64.is_valid": "(x: string) => result: boolean",
  "base64url.encode": stringToString,
  "base64url.encode_no_pad": stringToString,
  "base64url.decode": stringToString,
  "urlquery.decode": stringToString,
  "urlquery.encode": stringToString,
  "urlquery.encode_object": "(object: object[string: any<string, array[string], set[string]>]) => y: string",
  "urlquery.decode_object": "(x: string) => object: object[string: array[string]]",
  "yaml.marshal": "(x: any) => y: string",
  "yaml.unmarshal": "(x: string) => y: any",
  "yaml.is_valid": "(x: string) => result: boolean",
  "hex.encode": stringToString,
  "hex.decode": stringToString,
  "json.verify_schema": `(schema: any<string, ${OBJECT}>) => output: array<boolean, any<null, string>>`,
  "json.match_schema": `(document: any<string, ${OBJECT}>, schema: any<string, ${OBJECT}>) => output: array<boolean, array[object<desc: string, error: string, field: string, type: string>]>`,
  // tokens
  "io.jwt.decode": `(jwt: string) => output: array<${OBJECT}, ${OBJECT}, string>`,
  "io.jwt.verify_rs256": jwtVerify,
  "io.jwt.verify_rs384": jwtVerify,
  "io.jwt.verify_rs512": jwtVerify,
  "io.jwt.verify_ps256": jwtVerify,
  "io.jwt.verify_ps384": jwtVerify,
  "io.jwt.verify_ps512": jwtVerify,
  "io.jwt.verify_es256": jwtVerify,
  "io.jwt.verify_es384": jwtVerify,
  "io.jwt.verify_es512": jwtVerify,
  "io.jwt.verify_eddsa": jwtVerify,
  "io.jwt.verify_hs256": jwtVerifySecret,
  "io.jwt.verify_hs384": jwtVerifySecret,
  "io.jwt.verify_hs512": jwtVerifySecret,
  "io.jwt.decode_verify": `(jwt: string, constraints: ${STRING_OBJECT}) => output: array<boolean, ${OBJECT}, ${OBJECT}>`,
  "io.jwt.encode_sign_raw": "(headers: string, payload: string, key: string) => output: string",
  "io.jwt.encode_sign": `(headers: ${STRING_OBJECT}, payload: ${STRING_OBJECT}, key: ${STRING_OBJECT}) => output: string`,
  // time
  "time.now_ns": "() => now: number",
  "time.parse_ns": "(layout: string, value: string) => ns: number",
  "time.parse_rfc3339_ns": "(value: string) => ns: number",
  "time.parse_duration_ns": "(duration: string) => ns: number",
  "time.format": `(x: any<number, array<number, string>, array<number, string, string>>) => formatted timestamp: string`,
  "time.date": `(x: ${NUMBER_OR_NS_TZ}) => date: array<number, number, number>`,
  "time.clock": `(x: ${NUMBER_OR_NS_TZ}) => output: array<number, number, number>`,
  "time.weekday": `(x: ${NUMBER_OR_NS_TZ}) => day: string`,
  "time.add_date": "(ns: number, years: number, months: number, days: number) => output: number",
  "time.diff": `(ns1: ${NUMBER_OR_NS_TZ}, ns2: ${NUMBER_OR_NS_TZ}) => output: array<number, number, number, number, number, number>`,
  // crypto
  "crypto.x509.parse_certificates": `(certs: string) => output: array[${STRING_OBJECT}]`,
  "crypto.x509.parse_and_verify_certificates": `(certs: string) => output: array<boolean, array[${STRING_OBJECT}]>`,
  "crypto.x509.parse_and_verify_certificates_with_options": `(certs: string, options: ${STRING_OBJECT}) => output: array<boolean, array[${STRING_OBJECT}]>`,
  "crypto.x509.parse_certificate_request": `(csr: string) => output: ${STRING_OBJECT}`,
  "crypto.x509.parse_keypair": `(cert: string, pem: string) => output: ${STRING_OBJECT}`,
  "crypto.x509.parse_rsa_private_key": `(pem: string) => output: ${STRING_OBJECT}`,
  "crypto.parse_private_keys": `(keys: string) => output: array[${STRING_OBJECT}]`,
  "crypto.md5": stringToString,
  "crypto.sha1": stringToString,
  "crypto.sha256": stringToString,
  "crypto.hmac.md5": hmac,
  "crypto.hmac.sha1": hmac,
  "crypto.hmac.sha256": hmac,
  "crypto.hmac.sha512": hmac,
  "crypto.hmac.equal": "(mac1: string, mac2: string) => result: boolean",
  // graphs
  walk: `(x: any) => output: array<${ARRAY}, any>`,
  "graph.reachable": `(graph: ${GRAPH}, initial: any<${ARRAY}, ${SET}>) => output: ${SET}`,
  "graph.reachable_paths": `(graph: ${GRAPH}, initial: any<${ARRAY}, ${SET}>) => output: set[${ARRAY}]`,
  // types
  is_number: typeTest,
  is_string: typeTest,
  is_boolean: typeTest,
  is_array: typeTest,
  is_set: typeTest,
  is_object: typeTest,
  is_null: typeTest,
  type_name: "(x: any) => type: string",
  // GraphQL
  "graphql.parse": `(query: ${GRAPHQL}, schema: ${GRAPHQL}) => output: array<${OBJECT}, ${OBJECT}>`,
  "graphql.parse_and_verify": `(query: ${GRAPHQL}, schema: ${GRAPHQL}) => output: array<boolean, ${OBJECT}, ${OBJECT}>`,
  "graphql.parse_query": `(query: string) => output: ${OBJECT}`,
  "graphql.parse_schema": `(schema: string) => output: ${OBJECT}`,
  "graphql.is_valid": `(query: ${GRAPHQL}, schema: ${GRAPHQL}) => output: boolean`,
  "graphql.schema_is_valid": `(schema: ${GRAPHQL}) => output: boolean`,
  // I/O and the runtime
  "http.send": `(request: ${STRING_OBJECT}) => response: ${OBJECT}`,
  "providers.aws.sign_req": `(request: ${STRING_OBJECT}, aws_config: ${STRING_OBJECT}, time_ns: number) => signed_request: ${OBJECT}`,
  "rego.parse_module": `(filename: string, rego: string) => output: ${STRING_OBJECT}`,
  "rego.metadata.chain": `() => chain: ${ARRAY}`,
  "rego.metadata.rule": "() => output: any",
  "opa.runtime": `() => output: ${STRING_OBJECT}`,
  trace: "(note: string) => result: boolean",
  // networks
  "net.cidr_overlap": "(string, string) => boolean",
  "net.cidr_intersects": "(cidr1: string, cidr2: string) => result: boolean",
  "net.cidr_contains": "(cidr: string, cidr_or_ip: string) => result: boolean",
  "net.cidr_contains_matches": `(cidrs: ${CIDR_OPERAND}, cidrs_or_ips: ${CIDR_OPERAND}) => output: set[array<any, any>]`,
  "net.cidr_expand": "(cidr: string) => hosts: set[string]",
  "net.cidr_merge": "(addrs: any<array[any<string>], set[string]>) => output: set[string]",
  "net.cidr_is_valid": "(cidr: string) => result: boolean",
  "net.lookup_ip_addr": "(name: string) => addrs: set[string]",
  // versions
  "semver.is_valid": "(vsn: any) => result: boolean",
  "semver.compare": "(a: string, b: string) => result: number",
  // print's arguments are rewritten into comprehensions before OPA checks types: any value goes.
  print: "(any...)",
};
