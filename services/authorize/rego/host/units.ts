// units.parse and units.parse_bytes as OPA (topdown/parse_units.go, parse_bytes.go), with Go's
// big-number arithmetic reproduced exactly: units.parse multiplies rationals (its milli factor is
// the float64 0.001, as OPA's big.Rat.SetFloat64), units.parse_bytes rounds to a 64-bit mantissa
// (big.Float) and truncates to an integer.
import { type Builtin, intResult, numberText, str } from "./args.ts";

const KI = 1n << 10n;
const SI_K = 1000n;

const pow = (base: bigint, n: number) => base ** BigInt(n);

/**
 * Exponents have at most 4 digits: 1e9999 is far beyond any unit already, and the exact rationals
 * grow with the exponent (1e999999 takes half a second to compute and write out).
 */
const MAX_EXPONENT_DIGITS = 4;

const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9";
const isNumberChar = (c: string) => isDigit(c) || c === "." || c === "e" || c === "E" || c === "+" || c === "-";

/** OPA's extractNumAndUnit: the number (digits, ".", and an exponent) and the unit after it. */
function extractNumAndUnit(s: string, name: string): [string, string] {
  const split = (i: number): [string, string] => (i === 0 ? ["", s] : [s.slice(0, i), s.slice(i)]);
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (!isNumberChar(c)) return split(i);
    if (c !== "e" && c !== "E") continue;
    const next = s[i + 1];
    // "1e" or "1E" followed by a unit letter: the e is the exa unit, not an exponent.
    if (i === s.length - 1 || (!isDigit(next) && next !== "+" && next !== "-")) return split(i);
    if (next === "+" || next === "-") i++;
    if (digitsFrom(s, i + 1) > MAX_EXPONENT_DIGITS) throw new Error(`${name}: exponent too large`);
  }
  return [s, ""];
}

/** How many digits run from `start`. */
function digitsFrom(s: string, start: number): number {
  let end = start;
  while (isDigit(s[end])) end++;
  return end - start;
}

interface Rational {
  n: bigint;
  d: bigint;
}

/** A decimal number (Go's big.Rat / big.Float syntax) as an exact rational, or undefined. */
function parseDecimal(s: string): Rational | undefined {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(s);
  if (!m) return undefined;
  const [, sign, whole = "", frac = "", exp = "0"] = m as unknown as [string, string, string?, string?, string?];
  if (whole === "" && frac === "") return undefined;
  let n = BigInt(whole + frac || "0");
  let d = 1n;
  const e = Number(exp) - frac.length;
  if (e >= 0) n *= pow(10n, e);
  else d = pow(10n, -e);
  if (sign === "-") n = -n;
  return { n, d };
}

/** The exact value of a float64, as a rational. */
function floatRational(x: number): Rational {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const exp = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & ((1n << 52n) - 1n);
  if (exp !== 0) mant |= 1n << 52n;
  const e = (exp === 0 ? 1 : exp) - 1075;
  const sign = bits >> 63n ? -1n : 1n;
  return e >= 0 ? { n: sign * mant * pow(2n, e), d: 1n } : { n: sign * mant, d: pow(2n, -e) };
}

const abs = (x: bigint) => (x < 0n ? -x : x);

/** big.Rat.FloatString(10): ten decimals, the last rounded half away from zero. */
function floatString10(r: Rational): string {
  const neg = r.n < 0n !== r.d < 0n && r.n !== 0n;
  const n = abs(r.n);
  const d = abs(r.d);
  const scale = 10n ** 10n;
  let q = (n * scale) / d;
  const rem = (n * scale) % d;
  if (rem * 2n >= d) q += 1n;
  const whole = q / scale;
  const frac = (q % scale).toString().padStart(10, "0");
  return `${neg ? "-" : ""}${whole}.${frac}`;
}

/** Rounds a non-zero rational to a 64-bit mantissa, half to even (big.Float at precision 64). */
function roundToFloat64Bits(r: Rational): Rational {
  if (r.n === 0n) return r;
  const neg = r.n < 0n !== r.d < 0n;
  const n = abs(r.n);
  const d = abs(r.d);
  // Find e with 2^63 <= n / (d * 2^e) < 2^64.
  let e = n.toString(2).length - d.toString(2).length - 64;
  const scaled = (ex: number): [bigint, bigint] => (ex >= 0 ? [n, d << BigInt(ex)] : [n << BigInt(-ex), d]);
  let [num, den] = scaled(e);
  while (num / den >= 1n << 64n) [num, den] = scaled(++e);
  while (num / den < 1n << 63n) [num, den] = scaled(--e);
  let mant = num / den;
  const rem = num % den;
  if (rem * 2n > den || (rem * 2n === den && (mant & 1n) === 1n)) mant += 1n;
  const value: Rational = e >= 0 ? { n: mant << BigInt(e), d: 1n } : { n: mant, d: 1n << BigInt(-e) };
  return neg ? { n: -value.n, d: value.d } : value;
}

const UNITS: Record<string, Rational> = {
  "": { n: 1n, d: 1n },
  m: floatRational(0.001),
  k: { n: SI_K, d: 1n },
  K: { n: SI_K, d: 1n },
  ki: { n: KI, d: 1n },
  Ki: { n: KI, d: 1n },
  M: { n: SI_K ** 2n, d: 1n },
  mi: { n: KI ** 2n, d: 1n },
  Mi: { n: KI ** 2n, d: 1n },
  g: { n: SI_K ** 3n, d: 1n },
  G: { n: SI_K ** 3n, d: 1n },
  gi: { n: KI ** 3n, d: 1n },
  Gi: { n: KI ** 3n, d: 1n },
  t: { n: SI_K ** 4n, d: 1n },
  T: { n: SI_K ** 4n, d: 1n },
  ti: { n: KI ** 4n, d: 1n },
  Ti: { n: KI ** 4n, d: 1n },
  p: { n: SI_K ** 5n, d: 1n },
  P: { n: SI_K ** 5n, d: 1n },
  pi: { n: KI ** 5n, d: 1n },
  Pi: { n: KI ** 5n, d: 1n },
  e: { n: SI_K ** 6n, d: 1n },
  E: { n: SI_K ** 6n, d: 1n },
  ei: { n: KI ** 6n, d: 1n },
  Ei: { n: KI ** 6n, d: 1n },
};

const BYTE_UNITS: Record<string, bigint> = {
  "": 1n,
  kb: SI_K,
  k: SI_K,
  kib: KI,
  ki: KI,
  mb: SI_K ** 2n,
  m: SI_K ** 2n,
  mib: KI ** 2n,
  mi: KI ** 2n,
  gb: SI_K ** 3n,
  g: SI_K ** 3n,
  gib: KI ** 3n,
  gi: KI ** 3n,
  tb: SI_K ** 4n,
  t: SI_K ** 4n,
  tib: KI ** 4n,
  ti: KI ** 4n,
  pb: SI_K ** 5n,
  p: SI_K ** 5n,
  pib: KI ** 5n,
  pi: KI ** 5n,
  eb: SI_K ** 6n,
  e: SI_K ** 6n,
  eib: KI ** 6n,
  ei: KI ** 6n,
};

export const unitsBuiltins: Record<string, Builtin> = {
  "units.parse": (x) => {
    const name = "units.parse";
    // Quotes are dropped, as units.parse_bytes does.
    const s = str(x, 1).replaceAll('"', "");
    if (s.includes(" ")) throw new Error(`${name}: spaces not allowed in resource strings`);
    const [numText, rawUnit] = extractNumAndUnit(s, name);
    if (numText === "") throw new Error(`${name}: no amount provided`);
    // Case matters for the first letter only, so "m" (milli) and "M" (mega) differ.
    const unit = rawUnit.length > 1 ? rawUnit[0] + rawUnit.slice(1).toLowerCase() : rawUnit;
    const factor = UNITS[unit];
    if (!factor) throw new Error(`${name}: unit ${unit} not recognized`);
    const amount = parseDecimal(numText);
    if (!amount) throw new Error(`${name}: could not parse amount to a number`);
    const n = amount.n * factor.n;
    const d = amount.d * factor.d;
    if (n % d === 0n) return intResult(n / d);
    return numberText(floatString10({ n, d }));
  },

  "units.parse_bytes": (x) => {
    const name = "units.parse_bytes";
    const s = str(x, 1).toLowerCase().replaceAll('"', "");
    if (s.includes(" ")) throw new Error(`${name}: spaces not allowed in resource strings`);
    const [numText, unit] = extractNumAndUnit(s, name);
    if (numText === "") throw new Error(`${name}: no byte amount provided`);
    const factor = BYTE_UNITS[unit];
    if (factor === undefined) throw new Error(`${name}: byte unit ${unit} not recognized`);
    const amount = parseDecimal(numText);
    if (!amount) throw new Error(`${name}: could not parse byte amount to a number`);
    const rounded = roundToFloat64Bits(amount);
    const product = roundToFloat64Bits({ n: rounded.n * factor, d: rounded.d });
    return intResult(product.n / product.d); // truncated toward zero, as big.Float.Int
  },
};
