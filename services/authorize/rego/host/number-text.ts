// The exact text of large numbers in a host built-in's arguments. opa-wasm hands a host built-in
// its arguments through JSON.parse, which rounds integers beyond 2^53 (nanosecond timestamps) to
// doubles. So JSON.parse, wrapped once on import, also notes the source text of every such number
// it parses (V8's reviver source access; texts with no run of 16 digits and no exponent skip it), and each host
// call takes the texts noted since the previous one: its arguments were parsed just before it, so
// the text of each of its numbers is among them. A double noted with two texts is ambiguous, and is
// left to the caller (args.ts exactInt: no exact answer), as is one noted with none.

type Reviver = (this: unknown, key: string, value: unknown, context?: { source?: string }) => unknown;

const originalParse = JSON.parse;
/** The texts noted since the last host call, by the double they parsed to; bounded. */
let noted = new Map<number, Set<string>>();
const MAX_NOTED = 4096;
/** The texts of the host call running. */
let running: Map<number, Set<string>> | undefined;

function noteSource(this: unknown, _key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value === "number" && !Number.isSafeInteger(value) && context?.source !== undefined) {
    // Past the bound, older texts go: a call whose texts went answers as if they were unknown.
    if (noted.size >= MAX_NOTED) noted = new Map();
    const texts = noted.get(value) ?? new Set<string>();
    texts.add(context.source);
    noted.set(value, texts);
  }
  return value;
}

/**
 * A text that may hold an integer beyond 2^53: a number (after `:`, `,`, `[` or at the start) with
 * 16 digits in a row or an exponent (1.7e18). Digits inside strings (base64url ids, hashes) do not
 * count: "…7e3…" in a JWT's jti would otherwise send the whole text through the slow reviver.
 */
const LONG_NUMBER = /(?:^|[:,[])\s*-?(?:\d*\.?\d{16}|\d+(?:\.\d+)?[eE])/;

JSON.parse = function parse(text: string, reviver?: Reviver): unknown {
  if (reviver === undefined && LONG_NUMBER.test(text)) return originalParse(text, noteSource as Reviver);
  return originalParse(text, reviver as Reviver);
} as typeof JSON.parse;

/** Host built-ins that see the texts of their arguments' large numbers (argumentText). */
export function withNumberTexts<T extends (...args: unknown[]) => unknown>(
  builtins: Record<string, T>,
): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [name, fn] of Object.entries(builtins)) {
    out[name] = ((...args: unknown[]) => {
      const outer = running;
      running = noted;
      noted = new Map();
      try {
        return fn(...args);
      } finally {
        running = outer;
      }
    }) as T;
  }
  return out;
}

/** The source text of an argument number of the running host call, when known and unambiguous. */
export function argumentText(value: number): string | undefined {
  const texts = running?.get(value);
  return texts?.size === 1 ? (texts.values().next().value as string) : undefined;
}

/** The integer a JSON number text denotes exactly, or undefined when it has a fraction. */
export function integerOfText(text: string): bigint | undefined {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) return undefined;
  const [, sign = "", whole = "", fraction = "", exponent = "0"] = m;
  const exp = Number(exponent) - fraction.length;
  const digits = BigInt(whole + fraction);
  if (exp >= 0) return BigInt(`${sign}1`) * digits * 10n ** BigInt(exp);
  const divisor = 10n ** BigInt(-exp);
  return digits % divisor === 0n ? BigInt(`${sign}1`) * (digits / divisor) : undefined;
}
