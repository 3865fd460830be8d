// Shared plumbing for the host built-ins: OPA's operand checks and error texts, exact integers across
// the JSON boundary, the per-evaluation caches OPA keeps for time.now_ns, uuid.rfc4122 and rand.intn,
// and the bound on the work of one call.
//
// opa-wasm hands a host built-in its arguments through JSON.parse and takes the result back through
// JSON.stringify, so sets arrive as arrays and numbers as doubles: integers beyond 2^53 (nanosecond
// timestamps) arrive rounded. Integer operands beyond 2^53 are read exactly from their JSON text,
// which number-text.ts keeps for the call (exactInt); where it is unknown, a built-in answers only
// if every integer that rounds to the double gives the same answer (integerCandidates, sameForAll),
// and otherwise fails as UnsupportedCall. Results go back exactly through JSON.rawJSON.

import { BUDGET_EXHAUSTED_MESSAGE, isBudgetExhausted } from "../evaluation-budget.ts";
import { argumentText, integerOfText } from "./number-text.ts";

export type Builtin = (...args: unknown[]) => unknown;

/**
 * The most steps of its own (character comparisons) one host built-in call may take where its work
 * is not bounded by the size of its arguments: past it the call fails as a runaway evaluation
 * (tooMuchWork). Tens of milliseconds.
 */
export const HOST_WORK_LIMIT = 50_000_000;

/** Work past a host built-in's bound: fails the evaluation as its budget running out. */
export function tooMuchWork(): Error {
  return new Error(BUDGET_EXHAUSTED_MESSAGE);
}

/** OPA's name for the type of a JSON value (sets arrive as arrays and are named so). */
export function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  switch (typeof v) {
    case "string":
      return "string";
    case "number":
    case "bigint":
      return "number";
    case "boolean":
      return "boolean";
    default:
      return "object";
  }
}

/** An operand of the wrong type or form: OPA's builtins.ErrOperand, an eval_type_error. */
export class OperandError extends Error {}

/** `operand 2 must be string but got number` (OPA's builtins.NewOperandTypeErr). */
export function operandTypeError(pos: number, got: unknown, ...expected: string[]): Error {
  return operandTypeNameError(pos, typeName(got), ...expected);
}

/** operandTypeError for an operand known by its type name. */
export function operandTypeNameError(pos: number, got: string, ...expected: string[]): Error {
  const want = expected.length === 1 ? expected[0] : `one of {${expected.join(", ")}}`;
  return new OperandError(`operand ${pos} must be ${want} but got ${got}`);
}

export function operandError(pos: number, message: string): Error {
  return new OperandError(`operand ${pos} ${message}`);
}

export function str(v: unknown, pos: number): string {
  if (typeof v !== "string") throw operandTypeError(pos, v, "string");
  return v;
}

export function num(v: unknown, pos: number): number {
  if (typeof v !== "number") throw operandTypeError(pos, v, "number");
  return v;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** OPA's builtins.IntOperand: a number that is an integer (Go int). */
export function intOperand(v: unknown, pos: number): bigint {
  if (typeof v !== "number") throw operandTypeError(pos, v, "number");
  if (!Number.isInteger(v)) throw operandError(pos, "must be integer number but got floating-point number");
  return exactInt(v, pos);
}

/** OPA's builtins.BigIntOperand (the bits.* family): its type error says "integer". */
export function bigIntOperand(v: unknown, pos: number): bigint {
  if (typeof v !== "number") throw operandTypeError(pos, v, "integer");
  if (!Number.isInteger(v)) throw operandError(pos, "must be integer number but got floating-point number");
  return exactInt(v, pos);
}

/**
 * A call Mandate cannot answer as OPA would (the answer would depend on what JSON lost, or on Go
 * internals): it fails the evaluation, also where built-in errors are otherwise undefined.
 */
export class UnsupportedCall extends Error {}

/** Whether an error, or one it wraps, is an UnsupportedCall. */
export function isUnsupportedCall(error: unknown): boolean {
  for (let e = error; e instanceof Error; e = e.cause) if (e instanceof UnsupportedCall) return true;
  return false;
}

/** The operand beyond 2^53: JSON.parse rounded it, and which integer the policy had is unknown. */
function roundedInteger(pos: number): UnsupportedCall {
  return new UnsupportedCall(
    `operand ${pos} is an integer beyond 2^53, which reaches Mandate's host built-ins rounded: no exact answer`,
  );
}

/**
 * An integer operand exactly: up to 2^53 as JSON.parse gave it, beyond from the number's text
 * (number-text.ts). A text with a fraction (12345678901234567.5 parses to an integral double) is
 * OPA's floating-point error; an unknown text is no exact answer.
 */
export function exactInt(n: number, pos: number): bigint {
  if (Number.isSafeInteger(n)) return BigInt(n);
  const text = argumentText(n);
  if (text === undefined) throw roundedInteger(pos);
  const exact = integerOfText(text);
  if (exact === undefined) throw operandError(pos, "must be integer number but got floating-point number");
  return exact;
}

/**
 * Every integer the integral double n may stand for: itself below 2^53 or when its text is known
 * (exactInt), else the bounds of its rounding interval (n ± half its spacing), between which the
 * integer the policy had lies.
 */
export function integerCandidates(n: number, pos: number): bigint[] {
  if (Number.isSafeInteger(n) || argumentText(n) !== undefined) return [exactInt(n, pos)];
  const value = BigInt(n);
  const magnitude = value < 0n ? -value : value;
  const halfSpacing = 1n << BigInt(Math.max(magnitude.toString(2).length - 54, 0));
  return [value - halfSpacing, value + halfSpacing];
}

/**
 * A result computed for every candidate of an operand (integerCandidates): the result when all
 * agree (then any integer between them gives it too), else no exact answer.
 */
export function sameForAll<T>(results: T[], pos: number): T {
  const first = JSON.stringify(results[0]);
  if (results.some((r) => JSON.stringify(r) !== first)) throw roundedInteger(pos);
  return results[0] as T;
}

const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

/** An integer result: a plain number when exact as a double, otherwise its exact JSON text. */
export function intResult(n: bigint): unknown {
  const asNumber = Number(n);
  return Number.isSafeInteger(asNumber) ? asNumber : rawJSON(n.toString());
}

/** A number result given as JSON number text (kept verbatim by the Wasm runtime). */
export function numberText(text: string): unknown {
  const asNumber = Number(text);
  return String(asNumber) === text ? asNumber : rawJSON(text);
}

/**
 * A cache that lives for one synchronous turn of the event loop. opa-wasm evaluates a policy
 * synchronously, so every host call of one evaluation sees the same entries, as OPA's per-query
 * built-in cache; the entries are dropped in the next microtask, so the next evaluation (after any
 * await) starts afresh. Evaluations run back to back without yielding share one turn.
 */
export class TurnCache<K, V> {
  readonly #map = new Map<K, V>();
  #scheduled = false;

  get(key: K, make: () => V): V {
    if (this.#map.has(key)) return this.#map.get(key) as V;
    const value = make();
    this.#map.set(key, value);
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => {
        this.#map.clear();
        this.#scheduled = false;
      });
    }
    return value;
  }
}

/**
 * A built-in's error as OPA reports it: `eval_type_error: <name>: operand ...` for an operand error,
 * `eval_builtin_error: <name>: ...` for any other; the budget message as it is.
 */
function opaError(name: string, error: unknown): unknown {
  if (isBudgetExhausted(error)) return error;
  const message = error instanceof Error ? error.message : String(error);
  const bare = message.startsWith(`${name}: `) ? message.slice(name.length + 2) : message;
  const code = error instanceof OperandError ? "eval_type_error" : "eval_builtin_error";
  return new Error(`${code}: ${name}: ${bare}`, { cause: error });
}

/**
 * Wraps built-ins so a thrown error reads as OPA's (opaError), naming the built-in the policy
 * called (`display`: mandate.sprintf's errors are sprintf's). A thrown error aborts the
 * evaluation through opa-wasm, as OPA's strict built-in errors do.
 */
export function named(
  builtins: Record<string, Builtin>,
  display: (name: string) => string = (name) => name,
): Record<string, Builtin> {
  const out: Record<string, Builtin> = {};
  for (const [name, fn] of Object.entries(builtins)) {
    out[name] = (...args: unknown[]) => {
      try {
        return fn(...args);
      } catch (error) {
        throw opaError(display(name), error);
      }
    };
  }
  return out;
}

/** Go's string order (UTF-8 bytes, i.e. code points), which OPA uses for strings and object keys. */
export function compareStrings(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; ) {
    const ca = a.codePointAt(i) as number;
    const cb = b.codePointAt(i) as number;
    if (ca !== cb) return ca < cb ? -1 : 1;
    i += ca > 0xffff ? 2 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}
