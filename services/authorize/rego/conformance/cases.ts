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
  return (doc?.cases ?? []).map((raw) => {
    // "#undefined" is the corpus's way of saying the query has no result.
    const undefinedResult = raw.want_result === "#undefined";
    const want = "want_result" in raw && !undefinedResult ? decodeMany(raw.want_result) : undefined;
    const error = raw.error ?? raw.want_error;
    return {
      file,
      note: String(raw.note ?? ""),
      modules: (raw.modules as string[] | undefined) ?? [],
      data: raw.data === undefined ? {} : decode(raw.data),
      inputs: "input" in raw ? decodeMany(raw.input) : undefined,
      query: String(raw.query ?? ""),
      want:
        want === undefined
          ? undefined
          : { results: want, many: isRecord(raw.want_result) && "many!" in raw.want_result },
      noResult: raw.no_result === true || undefinedResult,
      error: error === undefined ? undefined : String(error),
      skip: raw.skip === true,
      allowSuccess: raw.allow_interpreter_success === true,
      strict: raw.strict !== false,
    };
  });
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
  if ("set!" in value && Object.keys(value).length === 1) {
    const items = (value["set!"] as unknown[]).map(decode);
    const unique: unknown[] = [];
    for (const item of items.sort(compareRego)) {
      if (unique.length === 0 || compareRego(unique.at(-1), item) !== 0) unique.push(item);
    }
    SETS.add(unique);
    return unique;
  }
  if ("object!" in value && Object.keys(value).length === 1) {
    const out: Record<string, unknown> = {};
    for (const entry of value["object!"] as Array<{ key: unknown; value: unknown }>) {
      const key = decode(entry.key);
      out[typeof key === "string" ? key : JSON.stringify(key)] = decode(entry.value);
    }
    return out;
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decode(v)]));
}

/** Decoded sets (dumped as arrays), which Rego orders after objects. */
const SETS = new WeakSet<unknown[]>();

const RANK = (v: unknown): number =>
  Array.isArray(v) && SETS.has(v)
    ? 6
    : v === null
      ? 0
      : typeof v === "boolean"
        ? 1
        : typeof v === "number"
          ? 2
          : typeof v === "string"
            ? 3
            : Array.isArray(v)
              ? 4
              : 5;

/** Rego's order over JSON values: null < boolean < number < string < array < object. */
export function compareRego(a: unknown, b: unknown): number {
  const ra = RANK(a);
  const rb = RANK(b);
  if (ra !== rb) return ra - rb;
  if (ra <= 3) return a === b ? 0 : (a as number | string | boolean) < (b as number | string | boolean) ? -1 : 1;
  if (ra === 4 || ra === 6) {
    const x = a as unknown[];
    const y = b as unknown[];
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      const c = compareRego(x[i], y[i]);
      if (c !== 0) return c;
    }
    return x.length - y.length;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
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
