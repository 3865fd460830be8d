// Stage 2a of the COAZ-MCP pipeline: the literal/expression rule (COAZ framework "Literals and
// Expressions", binding "Expressions and Literals"). A mapping template is compiled once into a
// resolver; resolving it against one message's `params` and `token` yields JSON or ABSENT.
//
// CEL engine: @marcbachmann/cel-js, not @bufbuild/cel. The binding requires CEL optional selection
// (`$token.?client_id`: a missing key yields "absent", the field is omitted), and @bufbuild/cel 0.6.1
// (the latest) does not parse `.?` at all; rewriting `.?` before parsing cannot give optional values
// their CEL semantics (`.orValue()`, `.hasValue()`, chains like `token.?act.?sub`). cel-js implements
// CEL optional types (`enableOptionalTypes`), the macros (`exists`, `all`, `map`...), conditionals and
// JSON maps/lists, reads only own properties of plain objects, and has no dependencies.
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Environment, Optional } from "@marcbachmann/cel-js";
import { CoazMappingError } from "../types.ts";

/** What an expression yielded when a field is to be left out (framework "The Expression Contract"). */
export const ABSENT: unique symbol = Symbol("absent");
export type Resolved = JsonValue | typeof ABSENT;

/** The binding's input variables (binding "Information Model"), and this server's identifier. */
export interface ExpressionInput {
  /** The JSON-RPC request's `params` (an empty object when it has none). */
  params: Readonly<JsonObject>;
  /** The validated access token's claims. */
  token: Readonly<Record<string, unknown>>;
  /** The single value identifying this server, for `$token.aud` (binding "Default Mappings"). */
  serverAudience: () => string;
}

/** A compiled mapping value: literals kept, expressions parsed, objects and lists walked. */
export type Template = (input: ExpressionInput) => Resolved;

const env = new Environment({
  enableOptionalTypes: true,
  // A map literal like {'amount': params.arguments.amount, 'note': 'x'} mixes value types, as JSON does.
  homogeneousAggregateLiterals: false,
  // Only the binding's variables: `$request.x` is refused when compiled (framework "Mapping Integrity").
  unlistedVariablesAreDyn: false,
  limits: { maxAstNodes: 2_000, maxDepth: 64 },
})
  .registerVariable("params", "map")
  .registerVariable("token", "map");

type Compiled = (variables: { params: unknown; token: unknown }) => unknown;

// Mappings are static (a server's defaults, a tool's declaration): each expression is parsed and
// checked once. Bounded, because a gateway learns mappings from servers it does not control.
const EXPRESSION_CACHE_MAX = 4_096;
const expressionCache = new Map<string, Compiled>();

function describeError(error: unknown): string {
  if (error instanceof Error) return (error as { summary?: string }).summary ?? error.message.split("\n")[0] ?? "";
  return String(error);
}

function failure(source: string, reason: string): CoazMappingError {
  // Binding "Mapping Errors": the message says which expression failed and why.
  return new CoazMappingError(`COAZ mapping error: expression '$${source}' failed: ${reason}`);
}

/** Parses and type-checks one CEL expression (the text after the `$`), from the cache when it can. */
export function compileExpression(source: string): Compiled {
  const cached = expressionCache.get(source);
  if (cached) return cached;
  let parsed: ReturnType<typeof env.parse>;
  try {
    parsed = env.parse(source);
  } catch (error) {
    throw failure(source, describeError(error));
  }
  const checked = parsed.check();
  if (!checked.valid) throw failure(source, describeError(checked.error));
  if (expressionCache.size >= EXPRESSION_CACHE_MAX) expressionCache.clear();
  expressionCache.set(source, parsed);
  return parsed;
}

/** A CEL result as the single JSON value the expression contract requires, or ABSENT. */
export function toJson(value: unknown, source: string, top = true): Resolved {
  if (value instanceof Optional) {
    // Only the expression's own result may be optional: `.?` omits the field, nothing deeper.
    if (!top) throw failure(source, "an optional value inside a list or map is not JSON");
    return value.hasValue() ? toJson(value.value(), source, false) : ABSENT;
  }
  if (typeof value === "object" && value !== null) return containerToJson(value, source);
  return scalarToJson(value, source);
}

function scalarToJson(value: unknown, source: string): JsonValue {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw failure(source, `${value} is not a JSON number`);
    return value;
  }
  if (typeof value === "bigint") {
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER))
      throw failure(source, `${value} is beyond the integers JSON keeps exactly`);
    return Number(value);
  }
  throw failure(source, `a ${typeof value} is not a JSON value`);
}

function containerToJson(value: object, source: string): JsonValue {
  if (Array.isArray(value)) return value.map((item) => present(toJson(item, source, false), source));
  let entries: Iterable<[unknown, unknown]>;
  if (value instanceof Map) entries = value;
  else if (isPlainObject(value)) entries = Object.entries(value);
  // uint, bytes, timestamps, durations, types: CEL values with no JSON form here.
  else throw failure(source, `a ${describeType(value)} is not a JSON value`);
  const object: JsonObject = {};
  for (const [key, item] of entries) {
    if (typeof key !== "string") throw failure(source, "a map with non-string keys is not a JSON object");
    defineMember(object, key, present(toJson(item, source, false), source));
  }
  return object;
}

/**
 * An own member, whatever its name: assignment would treat "__proto__" as the object's prototype
 * (JSON.parse, which made the input, keeps it as a member).
 */
function defineMember(object: JsonObject, key: string, value: JsonValue): void {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}

function present(value: Resolved, source: string): JsonValue {
  if (value === ABSENT) throw failure(source, "an absent value inside a list or map");
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function describeType(value: unknown): string {
  if (typeof value === "object" && value !== null) return value.constructor?.name ?? "object";
  return typeof value;
}

/**
 * Compiles one mapping value (framework "Literals and Expressions"): a string starting with `$` is a
 * CEL expression, `$$` a literal starting with `$`, anything else a literal. Objects are walked to
 * their leaves (their keys are never expressions), and so are lists, element by element.
 */
export function compileTemplate(value: unknown): Template {
  if (typeof value === "string") return compileString(value);
  if (value === null || typeof value === "boolean" || typeof value === "number") {
    if (typeof value === "number" && !Number.isFinite(value))
      throw new CoazMappingError("COAZ mapping error: not JSON");
    return () => value;
  }
  if (Array.isArray(value)) {
    const items = value.map(compileTemplate);
    return (input) => items.map((item) => present(item(input), "list element"));
  }
  if (isPlainObject(value)) {
    const members = Object.entries(value).map(([key, member]) => [key, compileTemplate(member)] as const);
    return (input) => {
      const object: JsonObject = {};
      for (const [key, member] of members) {
        const resolved = member(input);
        if (resolved !== ABSENT) defineMember(object, key, resolved);
      }
      return object;
    };
  }
  throw new CoazMappingError(`COAZ mapping error: a mapping holds only JSON values, not a ${describeType(value)}`);
}

function compileString(value: string): Template {
  if (value.startsWith("$$")) {
    const literal = value.slice(1);
    return () => literal;
  }
  if (!value.startsWith("$")) return () => value;
  const source = value.slice(1);
  // Binding "Default Mappings": `$token.aud` is "a single string identifying this server", resolved by
  // the rule of resolveServerAudience, never the raw (possibly array) claim.
  if (source.trim() === "token.aud") return (input) => input.serverAudience();
  const compiled = compileExpression(source);
  return (input) => {
    let result: unknown;
    try {
      result = compiled({ params: input.params, token: input.token });
    } catch (error) {
      throw failure(source, describeError(error));
    }
    return toJson(result, source);
  };
}

/**
 * Binding "Default Mappings": `resource.id` of a server-scoped operation is one string naming this
 * server. A configured resource identifier (RFC 8707) is used as it is (the binding's MAY; stage 1
 * already verified the token's audience against it). Otherwise a string `aud` is that value, and an
 * array `aud` resolves only when it has exactly one member: without its own identifier the PEP cannot
 * tell which member is this server, so anything else is a mapping error, never an array `resource.id`.
 */
export function resolveServerAudience(aud: unknown, configuredResource?: string): string {
  if (configuredResource !== undefined && configuredResource !== "") return configuredResource;
  if (typeof aud === "string" && aud !== "") return aud;
  if (Array.isArray(aud)) {
    const members = aud.filter((member): member is string => typeof member === "string" && member !== "");
    if (members.length === 1 && aud.length === 1) return members[0] as string;
    throw new CoazMappingError(
      `COAZ mapping error: the token's aud has ${aud.length} members and no configured resource says which is this server`,
    );
  }
  throw new CoazMappingError("COAZ mapping error: the token's aud does not identify this server");
}
