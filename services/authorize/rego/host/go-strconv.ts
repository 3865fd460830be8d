// Go's strconv, the parts fmt uses: FormatFloat ('e' 'E' 'f' 'g' 'G' 'b' 'x' 'X'; shortest or a
// fixed precision, rounded half to even on the exact binary value as Go does), Quote, QuoteToASCII,
// QuoteRune, QuoteRuneToASCII, CanBackquote and IsPrint. Written from Go's documented behaviour and
// its test tables (src/strconv, src/fmt/fmt_test.go); not a copy of its code.

/** A decimal digit string with its decimal point: the value is 0.digits × 10^dp; no trailing zeros. */
interface Decimal {
  digits: string;
  dp: number;
}

const MANT_BITS = 52n;

function floatBits(v: number): { neg: boolean; exp: number; mant: bigint } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, v);
  const bits = view.getBigUint64(0);
  return { neg: bits >> 63n === 1n, exp: Number((bits >> MANT_BITS) & 0x7ffn), mant: bits & ((1n << MANT_BITS) - 1n) };
}

function trimZeros(d: Decimal): Decimal {
  const digits = d.digits.replace(/0+$/, "");
  return digits === "" ? { digits: "", dp: 0 } : { digits, dp: d.dp };
}

/** The exact decimal value of |v| (finite): every double is m × 2^e, a finite decimal. */
function exactDecimal(v: number): Decimal {
  const { exp, mant } = floatBits(v);
  const m = exp === 0 ? mant : mant | (1n << MANT_BITS);
  if (m === 0n) return { digits: "", dp: 0 };
  const e = (exp === 0 ? 1 : exp) - 1075;
  if (e >= 0) {
    const digits = (m << BigInt(e)).toString();
    return trimZeros({ digits, dp: digits.length });
  }
  // m / 2^-e = m × 5^-e / 10^-e
  const digits = (m * 5n ** BigInt(-e)).toString();
  return trimZeros({ digits, dp: digits.length + e });
}

/** The shortest digits that read back as |v| (V8's and Go's shortest forms agree). */
function shortestDecimal(v: number): Decimal {
  if (v === 0) return { digits: "", dp: 0 };
  const [mantissa, exponent] = Math.abs(v).toExponential().split("e") as [string, string];
  return trimZeros({ digits: mantissa.replace(".", ""), dp: Number(exponent) + 1 });
}

/** Rounds to nd digits, half to even on an exact tie (Go's decimal.Round). */
function roundDecimal(d: Decimal, nd: number): Decimal {
  if (nd < 0 || nd >= d.digits.length) return d;
  const next = d.digits[nd] as string;
  const tie = next === "5" && nd + 1 === d.digits.length;
  const up = tie ? nd > 0 && Number(d.digits[nd - 1]) % 2 === 1 : next >= "5";
  if (!up) return trimZeros({ digits: d.digits.slice(0, nd), dp: d.dp });
  for (let i = nd - 1; i >= 0; i--) {
    const c = d.digits[i] as string;
    if (c < "9") return { digits: d.digits.slice(0, i) + String(Number(c) + 1), dp: d.dp };
  }
  return { digits: "1", dp: d.dp + 1 }; // all nines
}

function formatE(neg: boolean, d: Decimal, prec: number, letter: string): string {
  let out = (neg ? "-" : "") + (d.digits[0] ?? "0");
  if (prec > 0) out += `.${d.digits.slice(1, prec + 1).padEnd(prec, "0")}`;
  let exp = d.digits === "" ? 0 : d.dp - 1;
  const sign = exp < 0 ? "-" : "+";
  exp = Math.abs(exp);
  return `${out}${letter}${sign}${exp < 10 ? `0${exp}` : exp}`;
}

function formatF(neg: boolean, d: Decimal, prec: number): string {
  let out = neg ? "-" : "";
  out += d.dp > 0 ? d.digits.slice(0, d.dp).padEnd(d.dp, "0") : "0";
  if (prec > 0) {
    let fraction = "";
    for (let i = 1; i <= prec; i++) fraction += d.digits[d.dp + i - 1] ?? "0";
    out += `.${fraction}`;
  }
  return out;
}

/** %b: the mantissa and binary exponent, -ddddp±ddd. */
function formatB(v: number): string {
  const { neg, exp, mant } = floatBits(v);
  const m = exp === 0 ? mant : mant | (1n << MANT_BITS);
  const e = (exp === 0 ? 1 : exp) - 1023 - 52;
  return `${neg ? "-" : ""}${m}p${e >= 0 ? "+" : ""}${e}`;
}

/** The mantissa with its leading 1 at bit 60, and the binary exponent, of |v| (0 for zero). */
function hexMantissa(v: number): { mant: bigint; e: number } {
  const { exp, mant: bits } = floatBits(v);
  let mant = exp === 0 ? bits : bits | (1n << MANT_BITS);
  if (mant === 0n) return { mant, e: 0 };
  let e = (exp === 0 ? 1 : exp) - 1023;
  mant <<= 60n - MANT_BITS;
  while ((mant & HEX_TOP) === 0n) {
    mant <<= 1n;
    e--;
  }
  return { mant, e };
}

const HEX_TOP = 1n << 60n;
const UINT64_MASK = (1n << 64n) - 1n;

/** Rounds the mantissa to prec hex digits, half to even (0 ≤ prec < 15). */
function roundHex(mant: bigint, e: number, prec: number): { mant: bigint; e: number } {
  const shift = BigInt(prec * 4);
  const extra = (mant << shift) & (HEX_TOP - 1n);
  let m = mant >> (60n - shift);
  if ((extra | (m & 1n)) > 1n << 59n) m++;
  m <<= 60n - shift;
  return (m & (1n << 61n)) === 0n ? { mant: m, e } : { mant: m >> 1n, e: e + 1 };
}

/** %x: -0x1.hhhhp±dd, rounded half to even to prec hex digits when 0 ≤ prec < 15. */
function formatX(v: number, prec: number, upper: boolean): string {
  let { mant, e } = hexMantissa(v);
  if (prec >= 0 && prec < 15) ({ mant, e } = roundHex(mant, e, prec));
  let fraction = "";
  let rest = (mant << 4n) & UINT64_MASK;
  const count = prec < 0 ? Number.POSITIVE_INFINITY : prec;
  while (fraction.length < count && (prec >= 0 || rest !== 0n)) {
    fraction += ((rest >> 60n) & 15n).toString(16);
    rest = (rest << 4n) & UINT64_MASK;
  }
  const sign = floatBits(v).neg ? "-" : "";
  const text = `${sign}0x${(mant >> 60n) & 1n}${fraction ? `.${fraction}` : ""}p${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
  return upper ? text.toUpperCase() : text;
}

export type FloatVerb = "e" | "E" | "f" | "g" | "G" | "b" | "x" | "X";

/** The digits to print and the precision they call for: the shortest ones, or rounded to prec. */
function digitsFor(v: number, verb: "e" | "E" | "f" | "g" | "G", prec: number): { d: Decimal; prec: number } {
  if (prec < 0) {
    const d = shortestDecimal(v);
    if (verb === "e" || verb === "E") return { d, prec: Math.max(d.digits.length - 1, 0) };
    if (verb === "f") return { d, prec: Math.max(d.digits.length - d.dp, 0) };
    return { d, prec: d.digits.length };
  }
  const exact = exactDecimal(v);
  if (verb === "e" || verb === "E") return { d: roundDecimal(exact, prec + 1), prec };
  if (verb === "f") return { d: roundDecimal(exact, exact.dp + prec), prec };
  const p = prec === 0 ? 1 : prec;
  return { d: roundDecimal(exact, p), prec: p };
}

/** %g: %e when the exponent is below -4 or at least the precision (6 for the shortest form). */
function formatG(neg: boolean, d: Decimal, prec: number, shortest: boolean, letter: string): string {
  const nd = d.digits.length;
  let eprec = prec;
  if (eprec > nd && nd >= d.dp) eprec = nd;
  if (shortest) eprec = 6;
  const exp = d.dp - 1;
  if (exp < -4 || exp >= eprec) return formatE(neg, d, Math.min(prec, nd) - 1, letter);
  return formatF(neg, d, Math.max((prec > d.dp ? nd : prec) - d.dp, 0));
}

/** strconv.FormatFloat(v, verb, prec, 64); prec -1 is the shortest representation. */
export function formatFloat(v: number, verb: FloatVerb, prec: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (!Number.isFinite(v)) return v > 0 ? "+Inf" : "-Inf";
  if (verb === "b") return formatB(v);
  if (verb === "x" || verb === "X") return formatX(v, prec, verb === "X");
  const neg = floatBits(v).neg;
  const { d, prec: p } = digitsFor(v, verb, prec);
  if (verb === "e" || verb === "E") return formatE(neg, d, p, verb);
  if (verb === "f") return formatF(neg, d, p);
  return formatG(neg, d, p, prec < 0, verb === "g" ? "e" : "E");
}

// ---------------------------------------------------------------------------------------------
// Quoting

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/** strconv.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. */
export function isPrint(r: number): boolean {
  if (r === 0x20) return true;
  if (r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff)) return false;
  return PRINTABLE.test(String.fromCodePoint(r));
}

const MAX_RUNE = 0x10ffff;
const RUNE_ERROR = 0xfffd;

function validRune(r: number): boolean {
  return r >= 0 && r <= MAX_RUNE && !(r >= 0xd800 && r <= 0xdfff);
}

const ESCAPES: Record<number, string> = {
  7: "\\a",
  8: "\\b",
  12: "\\f",
  10: "\\n",
  13: "\\r",
  9: "\\t",
  11: "\\v",
};

function hexDigits(r: number, width: number): string {
  return r.toString(16).padStart(width, "0");
}

function escapeRune(r: number, quote: number, asciiOnly: boolean): string {
  if (r === quote || r === 0x5c) return `\\${String.fromCodePoint(r)}`;
  if (asciiOnly ? r < 0x80 && isPrint(r) : isPrint(r)) return String.fromCodePoint(r);
  const named = ESCAPES[r];
  if (named) return named;
  if (r < 0x20 || r === 0x7f) return `\\x${hexDigits(r, 2)}`;
  const valid = validRune(r) ? r : RUNE_ERROR;
  return valid < 0x10000 ? `\\u${hexDigits(valid, 4)}` : `\\U${hexDigits(valid, 8)}`;
}

function quoteWith(s: string, quote: number, asciiOnly: boolean): string {
  const q = String.fromCodePoint(quote);
  let out = q;
  for (const ch of s) out += escapeRune(ch.codePointAt(0) as number, quote, asciiOnly);
  return out + q;
}

/** strconv.Quote (asciiOnly: QuoteToASCII). */
export function quote(s: string, asciiOnly = false): string {
  return quoteWith(s, 0x22, asciiOnly);
}

/** strconv.QuoteRune (asciiOnly: QuoteRuneToASCII); an invalid rune is U+FFFD. */
export function quoteRune(r: number, asciiOnly = false): string {
  const q = "'";
  return q + escapeRune(validRune(r) ? r : RUNE_ERROR, 0x27, asciiOnly) + q;
}

/** strconv.CanBackquote: no control characters but tab, no backquote, no BOM. */
export function canBackquote(s: string): boolean {
  for (const ch of s) {
    const r = ch.codePointAt(0) as number;
    if (r === 0xfeff) return false;
    if (r >= 0x80) continue;
    if ((r < 0x20 && r !== 0x09) || r === 0x60 || r === 0x7f) return false;
  }
  return true;
}
