// The exact text of large numbers in a host built-in's arguments. opa-wasm hands a host built-in
// its arguments through JSON.parse, which rounds integers beyond 2^53 (nanosecond timestamps) to
// doubles. While opa-wasm prepares one host call's arguments (from the moment it looks the built-in
// up by name until the built-in runs, synchronously), JSON.parse also notes the source text of each
// such number (V8's reviver source access); the built-in then reads the integer the policy had.
//
// This wraps the global JSON.parse once, on import: outside that window, or for texts without a
// run of 16 digits, it calls the original directly; inside it, it parses with a reviver that
// returns every value unchanged. A number whose text is unknown or ambiguous (two texts rounding to
// the same double in one call) is left to the caller (args.ts exactInt: no exact answer).

type Reviver = (this: unknown, key: string, value: unknown, context?: { source?: string }) => unknown;

const originalParse = JSON.parse;
/** The texts of the call being prepared, by the double they parsed to. */
let preparing: Map<number, Set<string>> | undefined;
/** The texts of the call running. */
let running: Map<number, Set<string>> | undefined;

function noteSource(this: unknown, _key: string, value: unknown, context?: { source?: string }): unknown {
  if (preparing && typeof value === "number" && !Number.isSafeInteger(value) && context?.source !== undefined) {
    const texts = preparing.get(value) ?? new Set<string>();
    texts.add(context.source);
    preparing.set(value, texts);
  }
  return value;
}

const LONG_NUMBER = /\d{16}/;

JSON.parse = function parse(text: string, reviver?: Reviver): unknown {
  if (preparing && reviver === undefined && LONG_NUMBER.test(text)) return originalParse(text, noteSource as Reviver);
  return originalParse(text, reviver as Reviver);
} as typeof JSON.parse;

/**
 * Host built-ins that see their arguments' number texts: a view of `builtins` whose lookup by name
 * (opa-wasm's, just before it parses the call's arguments) starts noting them.
 */
export function withNumberTexts<T extends (...args: unknown[]) => unknown>(
  builtins: Record<string, T>,
): Record<string, T> {
  const wrapped = new Map<string, T>();
  for (const [name, fn] of Object.entries(builtins)) {
    wrapped.set(name, ((...args: unknown[]) => {
      const outer = running;
      if (preparing) {
        running = preparing;
        preparing = undefined;
      }
      try {
        return fn(...args);
      } finally {
        running = outer;
      }
    }) as T);
  }
  return new Proxy(builtins, {
    get(target, name, receiver) {
      const fn = typeof name === "string" ? wrapped.get(name) : undefined;
      if (!fn) return Reflect.get(target, name, receiver);
      preparing = new Map();
      return fn;
    },
  });
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
