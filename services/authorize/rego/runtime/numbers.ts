// Numbers as OPA holds them: json.Number text, kept exactly (it is what is printed). A number whose
// text strconv.ParseInt reads (OPA's Number.Int64) is an int64 and computes as one. Comparison is
// exact for every number (OPA compares through big.Rat). Integral operands of +, - and × compute
// exactly at any size (OPA's big.Int path); everything else follows OPA's big.Float path bit for bit
// (bigfloat.ts: SetString at 64 bits, one rounding per operation, FloatToNumber's shortest text).
// What that path would cost too much to reproduce (exponents beyond about 10^±5000) is an evaluation
// error rather than a possibly different value.
import { consumeMany } from "./budget";
import { abortWith2 } from "./eval";
import {
  fAbs, fAdd, fMul, fNegative, fPrecision, fQuo, floatFromU64, floatHalf, floatZero, formatFloat, formattedLength, parseFloat, parseOk, truncate,
  truncExact,
} from "./bigfloat";
import { malloc } from "./memory";
import { item, length, NUMBER, newString, typeOf } from "./value";

// A number: [u8 type][u8 flags][u16][u32 text length][u32 text][u32][f64 approximation][i64 value].
// Computed integers get their text, and any number its approximation, only when asked for.
const FLAG_INT64: u8 = 1;
const FLAG_APPROXIMATED: u8 = 2;

export function newNumberText(text: usize, len: u32): usize {
  const v = malloc(32);
  store<u32>(v, NUMBER);
  store<u32>(v, len, 4);
  store<u32>(v, <u32>text, 8);
  if (parseInt64(text, len)) {
    store<u8>(v, FLAG_INT64, 1);
    store<i64>(v, parsedInt, 24);
  }
  return v;
}

export function newInt(i: i64): usize {
  const v = malloc(32);
  store<u32>(v, NUMBER);
  store<u32>(v, 0, 4);
  store<u8>(v, FLAG_INT64, 1);
  store<i64>(v, i, 24);
  return v;
}

/** Writes the decimal digits of `i` to a fresh buffer; returns its address (length in `digitsLength`). */
let digitsLength: u32 = 0;

function formatInt(i: i64): usize {
  const buf = malloc(20);
  let w: usize = 20;
  let x: u64 = i < 0 ? <u64>(0 - i) : <u64>i;
  do {
    store<u8>(buf + --w, <u8>(0x30 + <u32>(x % 10)));
    x /= 10;
  } while (x > 0);
  if (i < 0) store<u8>(buf + --w, 0x2d);
  digitsLength = <u32>(20 - w);
  return buf + w;
}

/** A computed integer's text is made on first use. */
function ensureText(v: usize): void {
  if (load<u32>(v, 4) != 0) return;
  const text = formatInt(load<i64>(v, 24));
  store<u32>(v, digitsLength, 4);
  store<u32>(v, <u32>text, 8);
}

export function numberTextLen(v: usize): u32 {
  ensureText(v);
  return load<u32>(v, 4);
}

export function numberTextPtr(v: usize): usize {
  ensureText(v);
  return <usize>load<u32>(v, 8);
}

/** OPA's Number.Int64: the text read by strconv.ParseInt (sign, decimal digits, within int64). */
export function isInt64(v: usize): bool {
  return typeOf(v) == NUMBER && (load<u8>(v, 1) & FLAG_INT64) != 0;
}

export function int64Of(v: usize): i64 {
  return load<i64>(v, 24);
}

/** A double close to the number, for uses where exactness is not needed (never for results). */
export function approximation(v: usize): f64 {
  const flags = load<u8>(v, 1);
  if ((flags & FLAG_INT64) != 0) return <f64>load<i64>(v, 24);
  if ((flags & FLAG_APPROXIMATED) == 0) {
    store<f64>(v, approximate(numberTextPtr(v), numberTextLen(v)), 16);
    store<u8>(v, flags | FLAG_APPROXIMATED, 1);
  }
  return load<f64>(v, 16);
}

/** The decimal digits of `i` as a string value (array indexes as json.filter/remove's keys). */
export function integerText(i: u32): usize {
  const n = newInt(<i64>i);
  return newString(numberTextPtr(n), numberTextLen(n));
}

// ---- parsing -------------------------------------------------------------------------------------

let parsedInt: i64 = 0;

export function lastParsedInt(): i64 {
  return parsedInt;
}

/** strconv.ParseInt(text, 10, 64): into parsedInt (read with lastParsedInt); false when not such a number. */
export function parseInt64(text: usize, len: u32): bool {
  if (len == 0) return false;
  let i: u32 = 0;
  const c0 = load<u8>(text);
  const negative = c0 == 0x2d;
  if (c0 == 0x2d || c0 == 0x2b) i = 1;
  if (i == len) return false;
  let x: u64 = 0;
  for (; i < len; i++) {
    const d = <u64>load<u8>(text + i) - 0x30;
    if (d > 9) return false;
    if (x > (0x8000000000000000 - d) / 10) return false;
    x = x * 10 + d;
  }
  if (!negative && x > 0x7fffffffffffffff) return false;
  parsedInt = negative ? <i64>(0 - x) : <i64>x;
  return true;
}

/**
 * A decimal's significant digits and scale: value = (negative ? -1 : 1) × 0.D × 10^point, D
 * without leading or trailing zeros (empty for zero). Parses Go's ParseFloat decimal syntax.
 */
// Decimals and smalls live in static memory (the runtime uses no managed objects):
// a decimal is [u8 negative][u32 digits @4][u32 count @8][i64 point @16].
const left: usize = memory.data(24, 8);
const right: usize = memory.data(24, 8);

// @ts-ignore: decorator
@inline function negativeOf(d: usize): bool {
  return load<u8>(d) != 0;
}
// @ts-ignore: decorator
@inline function digitsOf(d: usize): usize {
  return <usize>load<u32>(d, 4);
}
// @ts-ignore: decorator
@inline function countOf(d: usize): u32 {
  return load<u32>(d, 8);
}
// @ts-ignore: decorator
@inline function pointOf(d: usize): i64 {
  return load<i64>(d, 16);
}

/** Reads `text` into the decimal at `d`; false when it is not a decimal number. */
function parseDecimal(text: usize, len: u32, d: usize): bool {
  let i: u32 = 0;
  let negative = false;
  if (len > 0 && (load<u8>(text) == 0x2d || load<u8>(text) == 0x2b)) {
    negative = load<u8>(text) == 0x2d;
    i = 1;
  }
  const digits = malloc(len);
  let count: u32 = 0;
  let point: i64 = 0;
  let sawDigit = false;
  let sawPoint = false;
  for (; i < len; i++) {
    const c = load<u8>(text + i);
    if (c == 0x2e && !sawPoint) {
      sawPoint = true;
      continue;
    }
    if (c < 0x30 || c > 0x39) break;
    sawDigit = true;
    if (c == 0x30 && count == 0) {
      if (sawPoint) point--;
      continue;
    }
    store<u8>(digits + count++, c);
    if (!sawPoint) point++;
  }
  if (!sawDigit) return false;
  if (i < len) {
    const e = load<u8>(text + i);
    if (e != 0x65 && e != 0x45) return false;
    i++;
    let expNegative = false;
    if (i < len && (load<u8>(text + i) == 0x2d || load<u8>(text + i) == 0x2b)) expNegative = load<u8>(text + i++) == 0x2d;
    if (i == len) return false;
    let exp: i64 = 0;
    for (; i < len; i++) {
      const c = load<u8>(text + i);
      if (c < 0x30 || c > 0x39) return false;
      if (exp < 1_000_000_000_000) exp = exp * 10 + <i64>(c - 0x30);
    }
    point += expNegative ? -exp : exp;
  }
  while (count > 0 && load<u8>(digits + count - 1) == 0x30) count--;
  store<u8>(d, negative ? 1 : 0);
  store<u32>(d, <u32>digits, 4);
  store<u32>(d, count, 8);
  store<i64>(d, count == 0 ? 0 : point, 16);
  return true;
}

function approximate(text: usize, len: u32): f64 {
  if (!parseDecimal(text, len, left)) return 0;
  let x: f64 = 0;
  for (let i: u32 = 0; i < countOf(left) && i < 17; i++) x = x * 10 + <f64>(load<u8>(digitsOf(left) + i) - 0x30);
  const scale = pointOf(left) - <i64>(countOf(left) < 17 ? countOf(left) : 17);
  const clamped = scale > 400 ? 400 : scale < -400 ? -400 : <i32>scale;
  const value = x * Math.pow(10, <f64>clamped);
  return negativeOf(left) ? -value : value;
}

/** Whether `text` is a number Go's strconv.ParseFloat reads in decimal (to_number's check). */
export function isDecimalText(text: usize, len: u32): bool {
  return parseDecimal(text, len, left);
}

// ---- comparison ----------------------------------------------------------------------------------

function compareMagnitude(a: usize, b: usize): i32 {
  if (countOf(a) == 0 || countOf(b) == 0) return countOf(a) == countOf(b) ? 0 : countOf(a) == 0 ? -1 : 1;
  if (pointOf(a) != pointOf(b)) return pointOf(a) < pointOf(b) ? -1 : 1;
  const n = countOf(a) < countOf(b) ? countOf(a) : countOf(b);
  const c = memory.compare(digitsOf(a), digitsOf(b), n);
  if (c != 0) return c < 0 ? -1 : 1;
  return countOf(a) == countOf(b) ? 0 : countOf(a) < countOf(b) ? -1 : 1;
}

/**
 * Set when a comparison's exact answer differs from what some OPA 1.x releases answer: recent
 * ones first compare texts with trailing "." and "0" trimmed ("10.0" equals "1") and call two
 * decimals equal when their float64 values are; comparisons built-ins then refuse the answer.
 */
export let numberQuirk = false;

export function resetNumberQuirk(): void {
  numberQuirk = false;
}

/** Exact comparison of two numbers (OPA's big.Rat comparison). */
export function compareNumbers(a: usize, b: usize): i32 {
  if (isInt64(a) && isInt64(b)) {
    const x = int64Of(a);
    const y = int64Of(b);
    return x == y ? 0 : x < y ? -1 : 1;
  }
  parseDecimal(numberTextPtr(a), numberTextLen(a), left);
  parseDecimal(numberTextPtr(b), numberTextLen(b), right);
  const aNeg = negativeOf(left) && countOf(left) > 0;
  const bNeg = negativeOf(right) && countOf(right) > 0;
  let c: i32;
  if (aNeg != bNeg) c = aNeg ? -1 : 1;
  else c = aNeg ? -compareMagnitude(left, right) : compareMagnitude(left, right);
  if (c != 0 && (trimmedTextsEqual(a, b) || (trimmedFraction(a) && trimmedFraction(b) && closeDoubles(a, b)))) {
    numberQuirk = true;
  }
  return c;
}

/** OPA's NumberCompare shortcut: texts with "." equal once trailing "." and "0" are trimmed. */
function trimmedTextsEqual(a: usize, b: usize): bool {
  const pa = numberTextPtr(a);
  const pb = numberTextPtr(b);
  const na = trimmedLength(pa, numberTextLen(a));
  const nb = trimmedLength(pb, numberTextLen(b));
  return na == nb && memory.compare(pa, pb, na) == 0;
}

/** OPA's xIsF: trimming trailing "." and "0" changed the text and left a fraction. */
function trimmedFraction(v: usize): bool {
  const text = numberTextPtr(v);
  const len = numberTextLen(v);
  const n = trimmedLength(text, len);
  if (n == len) return false;
  for (let i: u32 = 0; i < n; i++) if (load<u8>(text + i) == 0x2e) return true;
  return false;
}

/** Whether two numbers may have the same float64 (then OPA calls them equal); generous, never short. */
function closeDoubles(a: usize, b: usize): bool {
  const x = approximation(a);
  const y = approximation(b);
  const scale = Math.max(Math.abs(x), Math.abs(y));
  return Math.abs(x - y) <= scale * 1e-15 || x == y;
}

function trimmedLength(text: usize, len: u32): u32 {
  let hasPoint = false;
  for (let i: u32 = 0; i < len; i++) if (load<u8>(text + i) == 0x2e) hasPoint = true;
  if (!hasPoint) return len;
  let n = len;
  while (n > 0 && (load<u8>(text + n - 1) == 0x2e || load<u8>(text + n - 1) == 0x30)) n--;
  return n;
}

// ---- exact arithmetic ----------------------------------------------------------------------------

function inexact(name: string): usize {
  abortWith2(name, ": the result is beyond the numbers Mandate computes exactly as OPA");
  return 0;
}

// ---- integers of any size (OPA's big.Int path for integral operands) -----------------------------

/** Digits an integer operand may have: beyond, the result is refused rather than computed. */
const MAX_BIG_DIGITS: i64 = 4096;
let bigNegative = false;
let bigCount: u32 = 0;

/**
 * An integral number (OPA's NumberToInt: 1e3 and 4.0 are integers) as little-endian decimal
 * digits (0-9) in a fresh buffer, its sign in bigNegative and length in bigCount; 0 when the
 * number is not an integer or has more than MAX_BIG_DIGITS digits.
 */
function bigDigits(v: usize): usize {
  if (isInt64(v)) {
    const i = int64Of(v);
    let x: u64 = i < 0 ? <u64>(0 - i) : <u64>i;
    const out = malloc(20);
    let n: u32 = 0;
    do {
      store<u8>(out + n++, <u8>(x % 10));
      x /= 10;
    } while (x > 0);
    bigNegative = i < 0;
    bigCount = x == 0 && n == 1 && load<u8>(out) == 0 ? 0 : n;
    return out;
  }
  if (!parseDecimal(numberTextPtr(v), numberTextLen(v), left)) return 0;
  const count = countOf(left);
  const point = pointOf(left);
  if (count > 0 && (point < <i64>count || point > MAX_BIG_DIGITS)) return 0;
  const n = count == 0 ? 0 : <u32>point;
  const out = malloc(<usize>n + 1);
  memory.fill(out, 0, <usize>n + 1);
  for (let i: u32 = 0; i < count; i++) store<u8>(out + (n - 1 - i), load<u8>(digitsOf(left) + i) - 0x30);
  bigNegative = negativeOf(left) && count > 0;
  bigCount = n;
  return out;
}

function bigCompare(a: usize, na: u32, b: usize, nb: u32): i32 {
  if (na != nb) return na < nb ? -1 : 1;
  for (let i = <i32>na - 1; i >= 0; i--) {
    const x = load<u8>(a + i);
    const y = load<u8>(b + i);
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

function bigAdd(a: usize, na: u32, b: usize, nb: u32): usize {
  const n = (na > nb ? na : nb) + 1;
  const out = malloc(n);
  let carry: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const d = (i < na ? <u32>load<u8>(a + i) : 0) + (i < nb ? <u32>load<u8>(b + i) : 0) + carry;
    store<u8>(out + i, <u8>(d % 10));
    carry = d / 10;
  }
  bigCount = n;
  return out;
}

/** a - b for a ≥ b. */
function bigSub(a: usize, na: u32, b: usize, nb: u32): usize {
  const out = malloc(<usize>na + 1);
  subtractDigits(out, a, na, b, nb);
  bigCount = na;
  return out;
}

/** Writes the na digits of a - b (a ≥ b) to out, which may be a itself (digit i is read before it is written). */
function subtractDigits(out: usize, a: usize, na: u32, b: usize, nb: u32): void {
  let borrow: i32 = 0;
  for (let i: u32 = 0; i < na; i++) {
    let d = <i32>load<u8>(a + i) - (i < nb ? <i32>load<u8>(b + i) : 0) - borrow;
    borrow = d < 0 ? 1 : 0;
    if (d < 0) d += 10;
    store<u8>(out + i, <u8>d);
  }
}

function bigMul(a: usize, na: u32, b: usize, nb: u32): usize {
  const n = na + nb;
  consumeMany((<i64>na * <i64>nb) >> 4);
  const acc = malloc(<usize>n * 4);
  memory.fill(acc, 0, <usize>n * 4);
  for (let i: u32 = 0; i < na; i++) {
    const x = <u32>load<u8>(a + i);
    if (x == 0) continue;
    let carry: u32 = 0;
    for (let j: u32 = 0; j < nb; j++) {
      const at = acc + <usize>(i + j) * 4;
      const t = load<u32>(at) + x * <u32>load<u8>(b + j) + carry;
      store<u32>(at, t % 10);
      carry = t / 10;
    }
    let k = i + nb;
    while (carry > 0) {
      const at = acc + <usize>k * 4;
      const t = load<u32>(at) + carry;
      store<u32>(at, t % 10);
      carry = t / 10;
      k++;
    }
  }
  const out = malloc(n);
  for (let i: u32 = 0; i < n; i++) store<u8>(out + i, <u8>load<u32>(acc + <usize>i * 4));
  bigCount = n;
  return out;
}

/** An integer from little-endian digits, printed in full as big.Int's String (no -0). */
function bigNumber(digits: usize, n: u32, negative: bool): usize {
  let top = n;
  while (top > 0 && load<u8>(digits + top - 1) == 0) top--;
  if (top == 0) return newInt(0);
  const text = malloc(<usize>top + 1);
  let w: usize = 0;
  if (negative) store<u8>(text + w++, 0x2d);
  for (let i = <i32>top - 1; i >= 0; i--) store<u8>(text + w++, 0x30 + load<u8>(digits + i));
  return newNumberText(text, <u32>w);
}

/**
 * The remainder of integral numbers of any size, truncated as Go's big.Int Rem (the dividend's
 * sign); 0 when an operand is not integral, MODULO_BY_ZERO for a zero divisor.
 */
export const MODULO_BY_ZERO: usize = 1;

export function bigRemainder(a: usize, b: usize): usize {
  const x = bigDigits(a);
  if (x == 0) return 0;
  const xNeg = bigNegative;
  const nx = bigCount;
  const y = bigDigits(b);
  if (y == 0) return 0;
  const ny = bigCount;
  if (ny == 0) return MODULO_BY_ZERO;
  consumeMany((<i64>nx * <i64>(ny + 1)) >> 2);
  // Long division, keeping only the remainder: r = r × 10 + digit, then r -= y while r ≥ y.
  const r = malloc(<usize>ny + 2);
  memory.fill(r, 0, <usize>ny + 2);
  let nr: u32 = 0;
  for (let i = <i32>nx - 1; i >= 0; i--) {
    memory.copy(r + 1, r, nr);
    store<u8>(r, load<u8>(x + i));
    nr++;
    while (nr > 0 && load<u8>(r + nr - 1) == 0) nr--;
    while (bigCompare(r, nr, y, ny) >= 0) {
      subtractDigits(r, r, nr, y, ny);
      while (nr > 0 && load<u8>(r + nr - 1) == 0) nr--;
    }
  }
  return bigNumber(r, nr, xNeg);
}

/** a + b, a - b or a × b of integral numbers of any size, exactly; 0 when an operand is not integral. */
function bigArithmetic(a: usize, b: usize, op: i32): usize {
  const x = bigDigits(a);
  if (x == 0) return 0;
  const xNeg = bigNegative;
  const nx = bigCount;
  const y = bigDigits(b);
  if (y == 0) return 0;
  const yNeg = op == OP_MINUS ? !bigNegative : bigNegative;
  const ny = bigCount;
  consumeMany(<i64>nx + <i64>ny);
  if (op == OP_MUL) {
    const product = bigMul(x, nx, y, ny);
    return bigNumber(product, bigCount, xNeg != yNeg);
  }
  if (xNeg == yNeg) {
    const sum = bigAdd(x, nx, y, ny);
    return bigNumber(sum, bigCount, xNeg);
  }
  if (bigCompare(x, nx, y, ny) >= 0) {
    const difference = bigSub(x, nx, y, ny);
    return bigNumber(difference, bigCount, xNeg);
  }
  const difference = bigSub(y, ny, x, nx);
  return bigNumber(difference, bigCount, yNeg);
}

export const OP_PLUS: i32 = 0;
export const OP_MINUS: i32 = 1;
export const OP_MUL: i32 = 2;
export const OP_DIV: i32 = 3;

/**
 * a + b, a - b, a × b or a / b on numbers (b nonzero for a division), or an error when not exact.
 * Integral operands of +, - and × compute exactly at any size, as recent OPA (big.Int).
 */
export function arithmetic(a: usize, b: usize, op: i32, name: string): usize {
  if (isInt64(a) && isInt64(b) && op != OP_DIV) {
    const x = int64Of(a);
    const y = int64Of(b);
    if (op == OP_PLUS) {
      const r = x + y;
      if (((x ^ r) & (y ^ r)) >= 0) return newInt(r);
    } else if (op == OP_MINUS) {
      const r = x - y;
      if (((x ^ y) & (x ^ r)) >= 0) return newInt(r);
    } else {
      const r = x * y;
      if (x == 0 || (r / x == y && !(x == -1 && y == i64.MIN_VALUE))) return newInt(r);
    }
  }
  if (op != OP_DIV) {
    const exact = bigArithmetic(a, b, op);
    if (exact != 0) return exact;
  }
  const x = toFloat(a, name);
  const y = toFloat(b, name);
  let r: usize;
  if (op == OP_PLUS) r = fAdd(x, y, false, 64);
  else if (op == OP_MINUS) r = fAdd(x, y, true, 64);
  else if (op == OP_MUL) r = fMul(x, y, 64);
  else r = fQuo(x, y, 64);
  return floatNumber(r, name);
}

/** OPA's NumberToInt succeeds: the value is an integer (4.0 and 1e2 are). */
export function isIntegral(v: usize): bool {
  if (isInt64(v)) return true;
  if (!parseDecimal(numberTextPtr(v), numberTextLen(v), left)) return false;
  return countOf(left) == 0 || pointOf(left) >= <i64>countOf(left);
}

/**
 * sum or product of an array or set with a non-integer, as OPA's fold: sum adds each element's
 * big.Float into a zero of precision 0 (so 64). Product multiplies into big.NewFloat(1), which
 * recent OPA keeps at precision 53 and earlier 1.x releases widened to 64 (new(big.Float).Mul):
 * the result is given only when both precisions print the same.
 */
export function foldFloats(a: usize, op: i32, name: string): usize {
  const n = length(a);
  if (op == OP_PLUS) {
    let s = floatZero();
    for (let i: u32 = 0; i < n; i++) s = fAdd(s, toFloat(item(a, i), name), false, 64);
    return floatNumber(s, name);
  }
  let p53 = floatFromU64(1, 53);
  let p64 = floatFromU64(1, 64);
  for (let i: u32 = 0; i < n; i++) {
    const x = toFloat(item(a, i), name);
    p53 = fMul(p53, x, 53);
    p64 = fMul(p64, x, 64);
  }
  const recent = floatNumber(p53, name);
  const earlier = floatNumber(p64, name);
  const len = numberTextLen(recent);
  if (len != numberTextLen(earlier) || memory.compare(numberTextPtr(recent), numberTextPtr(earlier), len) != 0) {
    return inexact(name);
  }
  return recent;
}

/** builtins.NumberToFloat: big.Float SetString at precision 64. */
export function toFloat(v: usize, name: string): usize {
  const f = parseFloat(numberTextPtr(v), numberTextLen(v));
  if (!parseOk) return inexact(name);
  return f;
}

/** builtins.FloatToNumber: the shortest text that reads back as the same float. */
export function floatNumber(f: usize, name: string): usize {
  const text = formatFloat(f);
  if (text == 0) return inexact(name);
  return newNumberText(text, formattedLength);
}

/** Whether the number is zero (of any form: 0, 0.0, -0, 0e5). */
export function isZero(v: usize): bool {
  if (isInt64(v)) return int64Of(v) == 0;
  return parseDecimal(numberTextPtr(v), numberTextLen(v), left) && countOf(left) == 0;
}

/** |a| (FloatToNumber of an exact absolute value). */
export function absolute(a: usize): usize {
  if (isInt64(a)) {
    const i = int64Of(a);
    if (i != i64.MIN_VALUE) return newInt(i < 0 ? -i : i);
    const digits = bigDigits(a); // 2^63: a big.Float holds it exactly
    return bigNumber(digits, bigCount, false);
  }
  return floatNumber(fAbs(toFloat(a, "eval_builtin_error: abs")), "eval_builtin_error: abs");
}

export const ROUND: i32 = 0;
export const CEIL: i32 = 1;
export const FLOOR: i32 = 2;

/**
 * round (half away from zero), ceil and floor as OPA's arithRound/Ceil/Floor on big.Float: round
 * adds ±0.5 at precision 64 and truncates; ceil and floor truncate first, then step by one unless
 * the truncated value's sign says not to (so OPA's ceil of a value in (-1, 0) is 1, its floor 0).
 * An int64 is its own result (x ± 0.5 is exact in 64 bits).
 */
export function rounded(a: usize, mode: i32, name: string): usize {
  if (isInt64(a)) return newInt(int64Of(a));
  const x = toFloat(a, name);
  if (mode == ROUND) {
    // big.NewFloat(0.5): precision 53; the sum gets max(64, 53)
    return floatNumber(truncate(fAdd(x, floatHalf(), fNegative(x), 64)), name);
  }
  const f = truncate(x);
  if (truncExact) return floatNumber(f, name);
  const step = mode == CEIL ? !fNegative(f) : fNegative(f);
  if (!step) return floatNumber(f, name);
  const prec = fPrecision(f) > 53 ? fPrecision(f) : 53;
  return floatNumber(fAdd(f, floatFromU64(1, 53), mode == FLOOR, prec), name);
}

/** Set by integral: whether the number was an integer of int64's range, or an integer beyond it. */
export let integralOk = false;
export let integralTooLarge = false;

/** OPA's NumberToInt (an exact integer value: 4.0 and 1e2 are integers), within int64. */
export function integral(v: usize): i64 {
  integralOk = false;
  integralTooLarge = false;
  if (isInt64(v)) {
    integralOk = true;
    return int64Of(v);
  }
  if (!parseDecimal(numberTextPtr(v), numberTextLen(v), left)) return 0;
  if (countOf(left) == 0) {
    integralOk = true;
    return 0;
  }
  if (pointOf(left) < <i64>countOf(left)) return 0;
  if (pointOf(left) > 19) {
    integralTooLarge = true;
    return 0;
  }
  let m: u64 = 0;
  for (let i: u32 = 0; i < countOf(left); i++) m = m * 10 + <u64>(load<u8>(digitsOf(left) + i) - 0x30);
  for (let i = <i64>countOf(left); i < pointOf(left); i++) {
    if (m > 0x7fffffffffffffff / 10) {
      integralTooLarge = true;
      return 0;
    }
    m *= 10;
  }
  if (m > 0x7fffffffffffffff) {
    integralTooLarge = true;
    return 0;
  }
  integralOk = true;
  return negativeOf(left) ? -(<i64>m) : <i64>m;
}

/** The error for a result Mandate cannot compute exactly as OPA does. */
export function inexactNumber(name: string): usize {
  return inexact(name);
}
