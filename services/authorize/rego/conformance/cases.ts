// The conformance corpus (OPA/regorus-style YAML cases) as typed cases, with expected values
// decoded into the JSON that OPA's Wasm ABI produces, so results from @open-policy-agent/opa-wasm
// compare directly: `set!` becomes an array in Rego order, `object!` an object whose non-string
// keys are their JSON text, `many!` a list of alternative inputs or results.
import { readFileSync } from "node:fs";
import { parse } from "yaml";

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
}

type Raw = Record<string, unknown>;

export function loadCases(file: string): ConformanceCase[] {
  // Maps keep YAML's non-string keys (null:, true:, 5:), which OPA dumps as their JSON text.
  const doc = plain(parse(readFileSync(file, "utf8"), { mapAsMap: true })) as { cases?: Raw[] } | null;
  return (doc?.cases ?? []).map((raw) => caseOf(raw, file));
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
