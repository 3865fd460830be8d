// strings.split_n as OPA (v1/topdown/strings.go, builtinSplitN over Go's strings.SplitN): n ≥ 0
// keeps the first n pieces of splitting into at most n+1 (so the rest is dropped), n < 0 the last
// -n pieces of the whole split.
import { type Builtin, intOperand, operandError, str } from "./args.ts";

const INT64_MAX = 2n ** 63n - 1n;

/** Go's strings.SplitN: at most n pieces (n < 0: all), the last holding the rest; "" splits into code points. */
function splitN(s: string, sep: string, n: number): string[] {
  if (n === 0) return [];
  if (sep === "") {
    const chars = [...s];
    if (n < 0 || n >= chars.length) return chars;
    return [...chars.slice(0, n - 1), chars.slice(n - 1).join("")];
  }
  const out: string[] = [];
  let rest = s;
  while (n < 0 || out.length < n - 1) {
    const at = rest.indexOf(sep);
    if (at < 0) break;
    out.push(rest.slice(0, at));
    rest = rest.slice(at + sep.length);
  }
  out.push(rest);
  return out;
}

export const stringBuiltins: Record<string, Builtin> = {
  "strings.split_n": (text, delimiter, count) => {
    const s = str(text, 1);
    const sep = str(delimiter, 2);
    const n = intOperand(count, 3);
    // OPA's IntOperand: a Go int (int64).
    if (n > INT64_MAX || n < -INT64_MAX - 1n)
      throw operandError(3, "must be integer number but got floating-point number");
    if (n >= 0n) {
      // n + 1 past int64 means no limit; at most n pieces are kept.
      const parts = splitN(s, sep, n + 1n > INT64_MAX || n + 1n > BigInt(s.length + 1) ? -1 : Number(n) + 1);
      return parts.slice(0, Number(n < BigInt(parts.length) ? n : BigInt(parts.length)));
    }
    const parts = splitN(s, sep, -1);
    const start = BigInt(parts.length) + n;
    return parts.slice(start > 0n ? Number(start) : 0);
  },
};
