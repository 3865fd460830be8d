// Text at the input boundaries. Everything Mandate reads from the outside — OAuth forms and query
// strings, JSON bodies, client metadata (RFC 7591/7592, Client ID Metadata Documents), credentials,
// RPC messages — must be text: UTF-8 bytes that decode without replacement (RFC 3629 §3), strings
// without lone surrogates (JSON can spell them, RFC 8259 §8.2) and without U+0000 (no protocol value
// carries a NUL, and PostgreSQL cannot store one). Anything else is refused where it enters, naming
// the field, instead of being silently altered (U+FFFD) or stored to break whatever reads it later
// (RFC 8785 canonical JSON refuses lone surrogates; the audit log is canonical JSON).
import type { DescField, DescMessage } from "@bufbuild/protobuf";

/** Input that is not text, and where it was found. */
export class IllFormedText extends Error {
  /** The field (or parameter) that holds it: `client_name`, `redirect_uris[0]`, `(body)`. */
  readonly field: string;
  constructor(field: string, problem = LONE_SURROGATE) {
    super(`${field}: ${problem}`);
    this.name = "IllFormedText";
    this.field = field;
  }
}

/** Where a value is not text, and why. */
export interface TextFault {
  field: string;
  problem: string;
}

const LONE_SURROGATE = "is not well-formed Unicode text (a lone surrogate)";
const NUL = "contains U+0000 (NUL), which no text field may hold";

/** Why `text` is not acceptable text, or undefined when it is. */
export function textProblem(text: string): string | undefined {
  if (!text.isWellFormed()) return LONE_SURROGATE;
  if (text.includes("\u0000")) return NUL;
  return undefined;
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Decodes UTF-8 strictly (RFC 3629 §3: no invalid or overlong sequences, no surrogates); throws IllFormedText. */
export function decodeUtf8(bytes: Uint8Array, field: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new IllFormedText(field, "is not valid UTF-8");
  }
}

/** Throws IllFormedText when `text` is not acceptable text. */
export function requireText(text: string, field: string): string {
  const problem = textProblem(text);
  if (problem) throw new IllFormedText(field, problem);
  return text;
}

/** How deep a JSON body may nest (RFC 8259 §9 lets a parser limit it): client metadata needs 4. */
export const MAX_JSON_DEPTH = 32;

/**
 * The first fault of a parsed JSON value: a string (member names included) that is not acceptable
 * text, or nesting deeper than `maxDepth` (which would exhaust the stack of whatever serialises the
 * value later); undefined when there is none. Iterative, so any nesting depth is safe to inspect.
 */
export function jsonTextFault(
  value: unknown,
  root = "(body)",
  maxDepth = Number.POSITIVE_INFINITY,
): TextFault | undefined {
  const stack: JsonFrame[] = [[value, root, 0]];
  while (stack.length > 0) {
    const [current, path, depth] = stack.pop() as JsonFrame;
    const fault =
      typeof current === "string" ? stringFault(current, path) : queueMembers(current, path, depth, maxDepth, stack);
    if (fault) return fault;
  }
  return undefined;
}

/** A JSON value still to inspect: the value, its path, its nesting depth. */
type JsonFrame = [unknown, string, number];

/**
 * Pushes the members of an array or object onto `stack` (last first, so they are inspected in
 * order); the fault instead when it nests too deep or a member name is not text. Other values
 * (numbers, booleans, null) hold no text.
 */
function queueMembers(
  current: unknown,
  path: string,
  depth: number,
  maxDepth: number,
  stack: JsonFrame[],
): TextFault | undefined {
  if (current === null || typeof current !== "object") return undefined;
  if (depth >= maxDepth) return { field: path, problem: nestedTooDeep(maxDepth) };
  if (Array.isArray(current)) {
    for (let i = current.length - 1; i >= 0; i--) stack.push([current[i], `${path}[${i}]`, depth + 1]);
    return undefined;
  }
  const entries = Object.entries(current);
  for (let i = entries.length - 1; i >= 0; i--) {
    const [key, member] = entries[i] as [string, unknown];
    const problem = textProblem(key);
    if (problem) return { field: `${path} (a member name)`, problem };
    stack.push([member, path === "(body)" ? key : `${path}.${key}`, depth + 1]);
  }
  return undefined;
}

/**
 * Nesting past which a JSON text is refused before JSON.parse sees it. V8 parses nested values
 * recursively while its stack lasts; thousands of levels deep that parse may fail with a RangeError
 * ("Maximum call stack size exceeded") depending on what else the process is doing, so a body
 * refused for its depth at rest was "not valid JSON" under load.
 */
const PARSE_DEPTH_LIMIT = 256;

/**
 * The depth fault of a JSON text nested deeper than PARSE_DEPTH_LIMIT, found by scanning the text
 * without parsing it: the first container at `maxDepth`, named as jsonTextFault names it. Undefined
 * when the text is not that deep: parse it, then check the value with jsonTextFault.
 */
export function deepJsonTextFault(text: string, root = "(body)", maxDepth = MAX_JSON_DEPTH): TextFault | undefined {
  const scan = new NestingScan(root, maxDepth);
  for (let i = 0; i < text.length && scan.outcome === undefined; i++) i = scan.step(text, i);
  return scan.outcome === "deep" ? scan.fault : undefined;
}

/** deepJsonTextFault's pass over the text: where it is, how deep, the first container too deep. */
class NestingScan {
  readonly #root: string;
  readonly #maxDepth: number;
  readonly #open: OpenContainer[] = [];
  /** The first container at #maxDepth. */
  fault: TextFault | undefined;
  /** "deep": nested past PARSE_DEPTH_LIMIT; "invalid": not JSON (JSON.parse says so); undefined: scanning. */
  outcome: "deep" | "invalid" | undefined;

  constructor(root: string, maxDepth: number) {
    this.#root = root;
    this.#maxDepth = maxDepth;
  }

  /** Reads the token that starts at `i`; the index of its last character. */
  step(text: string, i: number): number {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const end = stringEnd(text, i);
      if (!readMemberName(text.slice(i, end + 1), this.#open.at(-1))) this.outcome = "invalid";
      return end;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) this.#enter(c === 0x5b);
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) this.#open.pop();
    else if (c === 0x2c /* , */) nextMember(this.#open.at(-1));
    return i;
  }

  #enter(array: boolean): void {
    if (this.#open.length === this.#maxDepth) {
      this.fault ??= { field: memberPath(this.#root, this.#open), problem: nestedTooDeep(this.#maxDepth) };
    }
    this.#open.push({ array, index: 0, key: "", expectKey: !array });
    if (this.#open.length > PARSE_DEPTH_LIMIT) this.outcome = "deep";
  }
}

/** A container deepJsonTextFault is inside: an array at its index, or an object at its member name. */
interface OpenContainer {
  array: boolean;
  index: number;
  key: string;
  /** An object's next string is a member name. */
  expectKey: boolean;
}

/** The index of the quote that ends the string starting at `start` (or the text's length). */
function stringEnd(text: string, start: number): number {
  let end = start + 1;
  while (end < text.length && text.charCodeAt(end) !== 0x22) end += text.charCodeAt(end) === 0x5c ? 2 : 1;
  return end;
}

/** Records a member name an object expects; false when the string literal is not JSON. */
function readMemberName(literal: string, container: OpenContainer | undefined): boolean {
  if (!container || container.array || !container.expectKey) return true;
  try {
    container.key = JSON.parse(literal) as string;
  } catch {
    return false;
  }
  container.expectKey = false;
  return true;
}

/** After a comma: an array's next index, an object's next member name. */
function nextMember(container: OpenContainer | undefined): void {
  if (!container) return;
  if (container.array) container.index++;
  else container.expectKey = true;
}

/** The path of the member being read in the innermost open container, as queueMembers names it. */
function memberPath(root: string, open: readonly OpenContainer[]): string {
  let path = root;
  for (const container of open) {
    if (container.array) path = `${path}[${container.index}]`;
    else path = path === "(body)" ? container.key : `${path}.${container.key}`;
  }
  return path;
}

const nestedTooDeep = (maxDepth: number) => `is nested more than ${maxDepth} levels deep`;

/** Throws IllFormedText naming the first fault of a JSON body: text that is not text, or nesting past MAX_JSON_DEPTH. */
export function requireJsonText(value: unknown, root = "(body)", maxDepth = MAX_JSON_DEPTH): void {
  const fault = jsonTextFault(value, root, maxDepth);
  if (fault) throw new IllFormedText(fault.field, fault.problem);
}

/**
 * Parses application/x-www-form-urlencoded bytes (a body, or a URL's query) as the WHATWG URL
 * Standard §5.1 does — `&`-separated, `+` is a space, percent-decoded — except that names and values
 * must decode as UTF-8 without replacement: IllFormedText names the parameter otherwise.
 */
export function parseFormStrict(input: Uint8Array | string): Array<[string, string]> {
  const bytes = typeof input === "string" ? Buffer.from(input, "latin1") : Buffer.from(input);
  const pairs: Array<[string, string]> = [];
  let start = 0;
  while (start <= bytes.length) {
    let end = bytes.indexOf(0x26 /* & */, start);
    if (end < 0) end = bytes.length;
    if (end > start) pairs.push(formPair(bytes.subarray(start, end)));
    start = end + 1;
  }
  return pairs;
}

/** One non-empty `name=value` sequence of a form (`name` alone has an empty value), decoded as text. */
function formPair(sequence: Uint8Array): [string, string] {
  const eq = sequence.indexOf(0x3d /* = */);
  const rawName = eq < 0 ? sequence : sequence.subarray(0, eq);
  const rawValue = eq < 0 ? new Uint8Array(0) : sequence.subarray(eq + 1);
  const name = parameterName(rawName);
  const field = `parameter "${printable(name)}"`;
  return [name, requireText(decodeUtf8(percentDecode(rawValue), field), field)];
}

/** A parameter's name, percent-decoded; when it is not text the error cannot quote it. */
function parameterName(rawName: Uint8Array): string {
  let name: string;
  try {
    name = strictUtf8.decode(percentDecode(rawName));
  } catch {
    throw new IllFormedText("a parameter name", "is not valid UTF-8");
  }
  if (name.includes("\u0000")) throw new IllFormedText("a parameter name", NUL);
  return name;
}

/** WHATWG URL §1.3 percent-decode, after replacing `+` with a space (§5.1 step 3.4). */
function percentDecode(input: Uint8Array): Uint8Array {
  // Most names and values (grant types, ids, scopes) hold neither: nothing to decode, nothing to copy.
  if (input.indexOf(0x25 /* % */) < 0 && input.indexOf(0x2b /* + */) < 0) return input;
  const output = new Uint8Array(input.length);
  let length = 0;
  for (let i = 0; i < input.length; i++) {
    const byte = input[i] as number;
    const high = byte === 0x25 /* % */ ? hexValue(input[i + 1]) : -1;
    const low = high >= 0 ? hexValue(input[i + 2]) : -1;
    if (byte === 0x2b /* + */) {
      output[length++] = 0x20;
    } else if (low >= 0) {
      output[length++] = high * 16 + low;
      i += 2;
    } else {
      output[length++] = byte;
    }
  }
  return output.subarray(0, length);
}

/** The value of a hex digit's byte, or -1 when it is none (or missing). */
function hexValue(byte: number | undefined): number {
  if (byte === undefined) return -1;
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x41 + 10;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x61 + 10;
  return -1;
}

/** A name safe to echo in an error description: printable ASCII, bounded. */
export function printable(text: string, max = 64): string {
  const safe = text.replace(/[^\x20-\x7e]/g, "?");
  return safe.length > max ? `${safe.slice(0, max)}...` : safe;
}

/**
 * The first string of a protobuf-es message (by proto field path) that is not acceptable text, or
 * undefined. Struct, Value and ListValue fields hold plain JSON and are walked as JSON; bytes fields
 * are not text. Binary decoding already refuses invalid UTF-8 (protobuf-es decodes strings
 * strictly), and JSON decoding lone surrogates in string fields; this also covers Struct contents,
 * NUL, and messages built in process.
 */
export function messageTextFault(schema: DescMessage, message: unknown, prefix = ""): TextFault | undefined {
  if (message === null || typeof message !== "object") return undefined;
  const record = message as Record<string, unknown>;
  for (const field of schema.fields) {
    const path = prefix ? `${prefix}.${field.name}` : field.name;
    let value: unknown;
    if (field.oneof) {
      const selected = record[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
      if (selected?.case !== field.localName) continue;
      value = selected.value;
    } else {
      value = record[field.localName];
    }
    if (value === undefined || value === null) continue;
    const found = fieldFault(field, value, path);
    if (found) return found;
  }
  return undefined;
}

function stringFault(value: unknown, field: string): TextFault | undefined {
  const problem = typeof value === "string" ? textProblem(value) : undefined;
  return problem ? { field, problem } : undefined;
}

function fieldFault(field: DescField, value: unknown, path: string): TextFault | undefined {
  switch (field.fieldKind) {
    case "scalar":
      return stringFault(value, path);
    case "enum":
      return undefined;
    case "message":
      return nestedFault(field.message, value, path);
    case "list":
      return listFault(field, value as unknown[], path);
    case "map":
      return mapFault(field, value as Record<string, unknown>, path);
  }
}

function listFault(field: DescField & { fieldKind: "list" }, items: unknown[], path: string): TextFault | undefined {
  for (let i = 0; i < items.length; i++) {
    const at = `${path}[${i}]`;
    const found = field.listKind === "message" ? nestedFault(field.message, items[i], at) : stringFault(items[i], at);
    if (found) return found;
  }
  return undefined;
}

function mapFault(
  field: DescField & { fieldKind: "map" },
  entries: Record<string, unknown>,
  path: string,
): TextFault | undefined {
  for (const [key, item] of Object.entries(entries)) {
    const keyProblem = textProblem(key);
    if (keyProblem) return { field: `${path} (a key)`, problem: keyProblem };
    const at = `${path}["${printable(key)}"]`;
    const found = field.mapKind === "message" ? nestedFault(field.message, item, at) : stringFault(item, at);
    if (found) return found;
  }
  return undefined;
}

/** A nested message, or the plain JSON protobuf-es uses for Struct, Value, ListValue and wrappers. */
function nestedFault(schema: DescMessage, value: unknown, path: string): TextFault | undefined {
  if (value !== null && typeof value === "object" && "$typeName" in value) {
    return messageTextFault(schema, value, path);
  }
  return jsonTextFault(value, path);
}
