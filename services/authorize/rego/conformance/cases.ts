// The conformance corpora as typed cases. Two formats:
// - regorus's (third_party/rego-conformance): `want_result` is the query's value; expected values are
//   decoded into the JSON that OPA's Wasm ABI produces, so results from @open-policy-agent/opa-wasm
//   compare directly: `set!` becomes an array in Rego order, `object!` an object whose non-string
//   keys are their JSON text, `many!` a list of alternative inputs or results.
// - OPA's (third_party/opa-conformance, OPA's v1/test/cases/cases.go TestCase): `want_result` is the
//   set of the query's solutions, each the object of its variables' values (sets as arrays);
//   `want_error_code` / `want_error`, `strict_error`, `input_term`, `sort_bindings`, `want_defined`.
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parse } from "yaml";

export type CaseFormat = "opa" | "regorus";

/** What an OPA-format case expects (OPA's TestCase fields). */
export interface OpaExpectation {
  /** `want_result`: the query's solutions, each the object of its variables; [] means none. */
  bindings: Array<Record<string, unknown>> | undefined;
  /** `want_error_code`: e.g. rego_type_error (compile time) or eval_type_error (evaluation). */
  errorCode: string | undefined;
  /** `want_error`: text the error message must contain. */
  errorText: string | undefined;
  /** `want_defined`: whether the query has a solution at all. */
  defined: boolean | undefined;
  /** `sort_bindings`: each binding (an array) is sorted before comparing. */
  sortBindings: boolean;
  /** `ignore_generated_vars`: bindings of OPA's generated `__localq…` vars are left out. */
  ignoreGeneratedVars: boolean;
  /** `input_term`: the input as Rego term text (sets and all). */
  inputTerm: string | undefined;
}

export interface ConformanceCase {
  file: string;
  note: string;
  modules: string[];
  data: unknown;
  /** One input, or several (`many!`) evaluated in turn. */
  inputs: unknown[] | undefined;
  query: string;
  /** Expected results (one per input, or with `many` one per query solution), or undefined. */
  want: { results: unknown[]; many: boolean } | undefined;
  /** The query has no result (undefined). */
  noResult: boolean;
  /** The expected error text, when the case expects one. */
  error: string | undefined;
  /** Marked skip in the corpus (a regorus-specific gap). */
  skip: boolean;
  /** The expected error is a limitation of regorus's compiler; an interpreter may succeed instead. */
  allowSuccess: boolean;
  /** `strict: false`: built-in errors make the call undefined instead of failing the query. */
  strict: boolean;
  /** Set for a case in OPA's format, which the runner judges by OPA's rules. */
  opa?: OpaExpectation;
}

type Raw = Record<string, unknown>;

export function readRawCases(file: string): Raw[] {
  // Maps keep YAML's non-string keys (null:, true:, 5:), which OPA dumps as their JSON text.
  const doc = plain(parse(readFileSync(file, "utf8"), { mapAsMap: true })) as { cases?: Raw[] } | null;
  return doc?.cases ?? [];
}

/** The file a corpus declares its format in, in its root or any folder above a case file. */
export const FORMAT_FILE = "conformance.yaml";

/**
 * The format of the cases under `path` (a case file or folder): the `format` (opa or regorus) of the
 * nearest conformance.yaml in it or a folder above; regorus's without one. The formats share keys
 * (regorus's corpus took some of OPA's), so a corpus says which it is rather than have it guessed.
 */
export function formatOf(path: string): CaseFormat {
  let dir = resolve(path);
  if (!statSync(dir).isDirectory()) dir = dirname(dir);
  for (;;) {
    const declared = join(dir, FORMAT_FILE);
    if (existsSync(declared)) {
      const format = (parse(readFileSync(declared, "utf8")) as { format?: unknown } | null)?.format;
      if (format === "opa" || format === "regorus") return format;
      throw new Error(`${declared}: format must be opa or regorus, not ${JSON.stringify(format)}`);
    }
    if (dirname(dir) === dir) return "regorus";
    dir = dirname(dir);
  }
}

/** A file's cases, in the format given (its corpus's) or else the one its corpus declares. */
export function loadCases(file: string, format: CaseFormat = formatOf(file)): ConformanceCase[] {
  return readRawCases(file).map((raw) => (format === "opa" ? opaCaseOf(raw, file) : caseOf(raw, file)));
}

function opaCaseOf(raw: Raw, file: string): ConformanceCase {
  const bindings = raw.want_result as Array<Record<string, unknown>> | undefined;
  const optional = (key: string) => (raw[key] === undefined ? undefined : String(raw[key]));
  return {
    file,
    note: String(raw.note ?? ""),
    modules: (raw.modules as string[] | undefined) ?? [],
    data: raw.data ?? {},
    inputs: "input" in raw ? [raw.input] : undefined,
    query: String(raw.query ?? ""),
    want: undefined,
    noResult: false,
    error: optional("want_error_code") ?? optional("want_error"),
    skip: false,
    allowSuccess: false,
    // OPA's runner evaluates with strict built-in errors only when the case asks for them.
    strict: raw.strict_error === true,
    opa: {
      bindings,
      errorCode: optional("want_error_code"),
      errorText: optional("want_error"),
      defined: typeof raw.want_defined === "boolean" ? raw.want_defined : undefined,
      sortBindings: raw.sort_bindings === true,
      ignoreGeneratedVars: raw.ignore_generated_vars === true,
      inputTerm: optional("input_term"),
    },
  };
}

function caseOf(raw: Raw, file: string): ConformanceCase {
  // "#undefined" is the corpus's way of saying the query has no result.
  const undefinedResult = raw.want_result === "#undefined";
  const error = raw.error ?? raw.want_error;
  return {
    file,
    note: String(raw.note ?? ""),
    modules: (raw.modules as string[] | undefined) ?? [],
    data: raw.data === undefined ? {} : decode(raw.data),
    inputs: "input" in raw ? decodeMany(raw.input) : undefined,
    query: String(raw.query ?? ""),
    want: "want_result" in raw && !undefinedResult ? expected(raw.want_result) : undefined,
    noResult: raw.no_result === true || undefinedResult,
    error: error === undefined ? undefined : String(error),
    skip: raw.skip === true,
    allowSuccess: raw.allow_interpreter_success === true,
    strict: raw.strict !== false,
  };
}

function expected(wantResult: unknown): ConformanceCase["want"] {
  return { results: decodeMany(wantResult), many: isRecord(wantResult) && "many!" in wantResult };
}

function plain(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(plain);
  if (value instanceof Map) {
    return Object.fromEntries(
      [...value.entries()].map(([k, v]) => [typeof k === "string" ? k : JSON.stringify(k), plain(v)]),
    );
  }
  return value;
}

function decodeMany(value: unknown): unknown[] {
  if (isRecord(value) && "many!" in value) return (value["many!"] as unknown[]).map(decode);
  return [decode(value)];
}

/** A YAML value with the corpus's encodings, as OPA's JSON dump would show it. */
export function decode(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(decode);
  if (!isRecord(value)) return value;
  const only = Object.keys(value).length === 1;
  if (only && "set!" in value) return decodeSet(value["set!"] as unknown[]);
  if (only && "object!" in value) return decodeObject(value["object!"] as Array<{ key: unknown; value: unknown }>);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decode(v)]));
}

/** `set!`: the items in Rego's order, each once. */
function decodeSet(encoded: unknown[]): unknown[] {
  const unique: unknown[] = [];
  for (const item of encoded.map(decode).sort(compareRego)) {
    if (unique.length === 0 || compareRego(unique.at(-1), item) !== 0) unique.push(item);
  }
  SETS.add(unique);
  return unique;
}

/** `object!`: entries whose keys may be any value (dumped as their JSON text). */
function decodeObject(entries: Array<{ key: unknown; value: unknown }>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const entry of entries) {
    const key = decode(entry.key);
    out[typeof key === "string" ? key : JSON.stringify(key)] = decode(entry.value);
  }
  return out;
}

/** Decoded sets (dumped as arrays), which Rego orders after objects. */
const SETS = new WeakSet<unknown[]>();

/** A value's place in Rego's order of types. */
function rank(v: unknown): number {
  if (v === null) return 0;
  if (typeof v === "boolean") return 1;
  if (typeof v === "number") return 2;
  if (typeof v === "string") return 3;
  if (Array.isArray(v)) return SETS.has(v) ? 6 : 4;
  return 5;
}

/** Rego's order over JSON values: null < boolean < number < string < array < object (< set). */
export function compareRego(a: unknown, b: unknown): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra - rb;
  if (ra <= 3) return compareScalars(a as number | string | boolean | null, b as number | string | boolean | null);
  if (ra === 4 || ra === 6) return compareArrays(a as unknown[], b as unknown[]);
  return compareObjects(a as Record<string, unknown>, b as Record<string, unknown>);
}

function compareScalars(a: number | string | boolean | null, b: number | string | boolean | null): number {
  if (a === b) return 0;
  return (a as number | string | boolean) < (b as number | string | boolean) ? -1 : 1;
}

function compareArrays(x: unknown[], y: unknown[]): number {
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const c = compareRego(x[i], y[i]);
    if (c !== 0) return c;
  }
  return x.length - y.length;
}

/** Objects compare key by key in sorted order: first the keys, then their values. */
function compareObjects(x: Record<string, unknown>, y: Record<string, unknown>): number {
  const kx = Object.keys(x).sort();
  const ky = Object.keys(y).sort();
  for (let i = 0; i < Math.min(kx.length, ky.length); i++) {
    const c = compareRego(kx[i], ky[i]) || compareRego(x[kx[i] as string], y[ky[i] as string]);
    if (c !== 0) return c;
  }
  return kx.length - ky.length;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export type Outcome = "pass" | "fail" | "unsupported" | "skipped";

export interface CaseResult {
  file: string;
  note: string;
  outcome: Outcome;
  /** Why it failed or is unsupported. */
  detail?: string;
}

export interface RunOptions {
  optimize?: boolean;
}
