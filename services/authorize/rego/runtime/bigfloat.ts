// OPA's big.Float path (NumberToFloat, Add/Sub/Mul/Quo, FloatToNumber), reproduced bit for bit:
// a float is (sign, mantissa, binary exponent) rounded to its precision (64 bits for parsed numbers)
// half to even, as Go's math/big. Mantissas are binary naturals: [u32 limb count][u32 limbs, little
// endian], allocated on the evaluation's heap (freed with it).
import { consumeMany } from "./budget";
import { malloc } from "./memory";

// ---- naturals ------------------------------------------------------------------------------------

function natAlloc(n: u32): usize {
  const p = malloc(4 + <usize>n * 4);
  store<u32>(p, n);
  memory.fill(p + 4, 0, <usize>n * 4);
  return p;
}
// @ts-ignore: decorator
@inline function natLen(p: usize): u32 {
  return load<u32>(p);
}
// @ts-ignore: decorator
@inline function limb(p: usize, i: u32): u32 {
  return i < load<u32>(p) ? load<u32>(p + 4 + <usize>i * 4) : 0;
}
// @ts-ignore: decorator
@inline function setLimb(p: usize, i: u32, v: u32): void {
  store<u32>(p + 4 + <usize>i * 4, v);
}

/** Drops leading zero limbs (in place); returns p. */
function natNorm(p: usize): usize {
  let n = natLen(p);
  while (n > 0 && limb(p, n - 1) == 0) n--;
  store<u32>(p, n);
  return p;
}

export function natFromU64(x: u64): usize {
  const p = natAlloc(2);
  setLimb(p, 0, <u32>x);
  setLimb(p, 1, <u32>(x >> 32));
  return natNorm(p);
}

function natBitLen(p: usize): i64 {
  const n = natLen(p);
  if (n == 0) return 0;
  return <i64>(n - 1) * 32 + <i64>(32 - clz(limb(p, n - 1)));
}

function natBit(p: usize, i: i64): u32 {
  if (i < 0) return 0;
  return (limb(p, <u32>(i >> 5)) >> <u32>(i & 31)) & 1;
}

/** Whether any bit below bit k is set. */
function natAnyBelow(p: usize, k: i64): bool {
  if (k <= 0) return false;
  const whole = <u32>(k >> 5);
  for (let i: u32 = 0; i < whole && i < natLen(p); i++) if (limb(p, i) != 0) return true;
  const rest = <u32>(k & 31);
  return rest != 0 && (limb(p, whole) & ((1 << rest) - 1)) != 0;
}

function natShl(p: usize, k: i64): usize {
  const words = <u32>(k >> 5);
  const bits = <u32>(k & 31);
  const n = natLen(p);
  const out = natAlloc(n + words + 1);
  for (let i: u32 = 0; i < n; i++) {
    const x = limb(p, i);
    setLimb(out, i + words, limb(out, i + words) | (x << bits));
    if (bits != 0) setLimb(out, i + words + 1, x >> (32 - bits));
  }
  return natNorm(out);
}

function natShr(p: usize, k: i64): usize {
  const words = <u32>(k >> 5);
  const bits = <u32>(k & 31);
  const n = natLen(p);
  if (words >= n) return natAlloc(0);
  const out = natAlloc(n - words);
  for (let i: u32 = 0; i < n - words; i++) {
    let x = limb(p, i + words) >> bits;
    if (bits != 0) x |= limb(p, i + words + 1) << (32 - bits);
    setLimb(out, i, x);
  }
  return natNorm(out);
}

function natCmp(a: usize, b: usize): i32 {
  const na = natLen(a);
  const nb = natLen(b);
  if (na != nb) return na < nb ? -1 : 1;
  for (let i = <i32>na - 1; i >= 0; i--) {
    const x = limb(a, <u32>i);
    const y = limb(b, <u32>i);
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

function natAdd(a: usize, b: usize): usize {
  const n = (natLen(a) > natLen(b) ? natLen(a) : natLen(b)) + 1;
  const out = natAlloc(n);
  let carry: u64 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const t = <u64>limb(a, i) + <u64>limb(b, i) + carry;
    setLimb(out, i, <u32>t);
    carry = t >> 32;
  }
  return natNorm(out);
}

/** a - b for a ≥ b. */
function natSub(a: usize, b: usize): usize {
  const n = natLen(a);
  const out = natAlloc(n);
  let borrow: i64 = 0;
  for (let i: u32 = 0; i < n; i++) {
    let t = <i64>limb(a, i) - <i64>limb(b, i) - borrow;
    borrow = t < 0 ? 1 : 0;
    if (t < 0) t += 0x100000000;
    setLimb(out, i, <u32>t);
  }
  return natNorm(out);
}

function natMul(a: usize, b: usize): usize {
  const na = natLen(a);
  const nb = natLen(b);
  consumeMany((<i64>na * <i64>nb) >> 4);
  const out = natAlloc(na + nb);
  for (let i: u32 = 0; i < na; i++) {
    const x = <u64>limb(a, i);
    if (x == 0) continue;
    let carry: u64 = 0;
    for (let j: u32 = 0; j < nb; j++) {
      const t = x * <u64>limb(b, j) + <u64>limb(out, i + j) + carry;
      setLimb(out, i + j, <u32>t);
      carry = t >> 32;
    }
    setLimb(out, i + nb, <u32>carry);
  }
  return natNorm(out);
}

/** a × m + c in place: a has room for the carry (its capacity `cap` limbs, zero above its length). */
function natMulSmallInPlace(a: usize, m: u32, c: u32, cap: u32): void {
  const n = natLen(a);
  let carry: u64 = c;
  for (let i: u32 = 0; i < n; i++) {
    const t = <u64>limb(a, i) * <u64>m + carry;
    setLimb(a, i, <u32>t);
    carry = t >> 32;
  }
  if (carry != 0) {
    if (n >= cap) unreachable();
    setLimb(a, n, <u32>carry);
    store<u32>(a, n + 1);
  }
}

/** a / d in place; returns the remainder. */
function natDivSmallInPlace(a: usize, d: u32): u32 {
  let r: u64 = 0;
  for (let i = <i32>natLen(a) - 1; i >= 0; i--) {
    const t = (r << 32) | <u64>limb(a, <u32>i);
    setLimb(a, <u32>i, <u32>(t / <u64>d));
    r = t % <u64>d;
  }
  natNorm(a);
  return <u32>r;
}

/** A copy of a with room for `cap` limbs. */
function natCopy(a: usize, cap: u32): usize {
  const out = natAlloc(cap);
  memory.copy(out + 4, a + 4, <usize>natLen(a) * 4);
  store<u32>(out, natLen(a));
  return out;
}

/** ⌊a / b⌋ by binary long division (b nonzero); whether a remainder is left in divRemainder. */
let divRemainder = false;

function natDiv(a: usize, b: usize): usize {
  const bits = natBitLen(a);
  const nb = natLen(b);
  consumeMany((bits * <i64>(nb + 1)) >> 4);
  const q = natAlloc(natLen(a));
  const r = natAlloc(nb + 1);
  for (let i = bits - 1; i >= 0; i--) {
    // r = 2r + bit i of a
    let carry = natBit(a, i);
    for (let k: u32 = 0; k <= nb; k++) {
      const x = limb(r, k);
      setLimb(r, k, (x << 1) | carry);
      carry = x >> 31;
    }
    natNorm(r);
    if (natCmp(r, b) >= 0) {
      let borrow: i64 = 0;
      const nr = natLen(r);
      for (let k: u32 = 0; k < nr; k++) {
        let t = <i64>limb(r, k) - <i64>limb(b, k) - borrow;
        borrow = t < 0 ? 1 : 0;
        if (t < 0) t += 0x100000000;
        setLimb(r, k, <u32>t);
      }
      natNorm(r);
      setLimb(q, <u32>(i >> 5), limb(q, <u32>(i >> 5)) | (1 << <u32>(i & 31)));
    }
    store<u32>(r, nb + 1); // room for the next doubling (the extra limbs are zero)
  }
  natNorm(r);
  divRemainder = natLen(r) != 0;
  return natNorm(q);
}

// ---- floats --------------------------------------------------------------------------------------

// A float: [u8 negative][u32 precision @4][i64 exponent @8][u32 mantissa @16]: value = mantissa ×
// 2^exponent, the mantissa at most `precision` bits (none for zero).
function newFloat(negative: bool, mantissa: usize, exponent: i64, prec: u32): usize {
  const f = malloc(24);
  store<u8>(f, negative ? 1 : 0);
  store<u32>(f, prec, 4);
  store<i64>(f, exponent, 8);
  store<u32>(f, <u32>mantissa, 16);
  return f;
}
// @ts-ignore: decorator
@inline export function fNegative(f: usize): bool {
  return load<u8>(f) != 0;
}
// @ts-ignore: decorator
@inline function fPrec(f: usize): u32 {
  return load<u32>(f, 4);
}
// @ts-ignore: decorator
@inline function fExp(f: usize): i64 {
  return load<i64>(f, 8);
}
// @ts-ignore: decorator
@inline function fMant(f: usize): usize {
  return <usize>load<u32>(f, 16);
}
export function fIsZero(f: usize): bool {
  return natLen(fMant(f)) == 0;
}

/** m × 2^e (plus a sticky fraction below it) rounded half to even to `prec` bits, as Go's Float.round. */
function rounded(negative: bool, m: usize, e: i64, prec: u32, sticky: bool): usize {
  const bits = natBitLen(m);
  if (bits <= <i64>prec) return newFloat(negative, m, e, prec); // sticky only comes with extra bits
  const k = bits - <i64>prec;
  let q = natShr(m, k);
  const half = natBit(m, k - 1) != 0;
  const rest = sticky || natAnyBelow(m, k - 1);
  let exp = e + k;
  if (half && (rest || (limb(q, 0) & 1) != 0)) {
    q = natAdd(q, natFromU64(1));
    if (natBitLen(q) > <i64>prec) {
      q = natShr(q, 1);
      exp++;
    }
  }
  return newFloat(negative, q, exp, prec);
}

function maxPrec(x: usize, y: usize): u32 {
  return fPrec(x) > fPrec(y) ? fPrec(x) : fPrec(y);
}

/** x + y (or x − y) as Go's Float.Add/Sub: exact sum, one rounding; an exact zero is +0 unless both are −0. */
export function fAdd(x: usize, y: usize, subtract: bool, prec: u32): usize {
  const yNeg = subtract ? !fNegative(y) : fNegative(y);
  if (fIsZero(x) && fIsZero(y)) return newFloat(fNegative(x) && yNeg, natAlloc(0), 0, prec);
  if (fIsZero(x)) return rounded(yNeg, fMant(y), fExp(y), prec, false);
  if (fIsZero(y)) return rounded(fNegative(x), fMant(x), fExp(x), prec, false);
  const e = fExp(x) < fExp(y) ? fExp(x) : fExp(y);
  consumeMany((fExp(x) > fExp(y) ? fExp(x) - fExp(y) : fExp(y) - fExp(x)) >> 6);
  const a = natShl(fMant(x), fExp(x) - e);
  const b = natShl(fMant(y), fExp(y) - e);
  if (fNegative(x) == yNeg) return rounded(yNeg, natAdd(a, b), e, prec, false);
  const c = natCmp(a, b);
  if (c == 0) return newFloat(false, natAlloc(0), 0, prec);
  return c > 0 ? rounded(fNegative(x), natSub(a, b), e, prec, false) : rounded(yNeg, natSub(b, a), e, prec, false);
}

export function fMul(x: usize, y: usize, prec: u32): usize {
  const negative = fNegative(x) != fNegative(y);
  if (fIsZero(x) || fIsZero(y)) return newFloat(negative, natAlloc(0), 0, prec);
  return rounded(negative, natMul(fMant(x), fMant(y)), fExp(x) + fExp(y), prec, false);
}

/** x / y (y nonzero) as Go's Float.Quo: a quotient of prec + 2 bits at least, the remainder as sticky bit. */
export function fQuo(x: usize, y: usize, prec: u32): usize {
  const negative = fNegative(x) != fNegative(y);
  if (fIsZero(x)) return newFloat(negative, natAlloc(0), 0, prec);
  let shift = natBitLen(fMant(y)) + <i64>prec + 2 - natBitLen(fMant(x));
  if (shift < 0) shift = 0;
  const q = natDiv(natShl(fMant(x), shift), fMant(y));
  return rounded(negative, q, fExp(x) - shift - fExp(y), prec, divRemainder);
}

/** 5^n as Go's Float.pow5 at precision 128: exact up to 5^27, then by squaring with rounding. */
function pow5(n: u64): usize {
  let p: u64 = 1;
  if (n <= 27) {
    for (let i: u64 = 0; i < n; i++) p *= 5;
    return newFloat(false, natFromU64(p), 0, 128);
  }
  for (let i = 0; i < 27; i++) p *= 5;
  let z = newFloat(false, natFromU64(p), 0, 128);
  let f = newFloat(false, natFromU64(5), 0, 192);
  let k = n - 27;
  while (k > 0) {
    if ((k & 1) != 0) z = fMul(z, f, 128);
    f = fMul(f, f, 192);
    k >>= 1;
  }
  return z;
}

/** Exponents beyond this are refused: Go would compute them, but at a cost no policy needs. */
const MAX_EXPONENT: i64 = 5_000;
export let parseOk = false;

/**
 * big.Float SetString of a decimal number text at precision 64: the mantissa digits as written
 * (trailing zeros included) times 10^(exponent − fraction digits), 5^k applied by Mul or Quo.
 */
export function parseFloat(text: usize, len: u32): usize {
  parseOk = false;
  let i: u32 = 0;
  let negative = false;
  if (len > 0 && (load<u8>(text) == 0x2d || load<u8>(text) == 0x2b)) {
    negative = load<u8>(text) == 0x2d;
    i = 1;
  }
  consumeMany(((<i64>len * <i64>len) >> 8) + 1);
  // Mantissa digits in chunks of 9, multiplied into a natural with room for all of them.
  const m = natAlloc(len / 9 + 2);
  store<u32>(m, 0);
  let fraction: i64 = 0;
  let sawPoint = false;
  let digits = 0;
  let chunk: u32 = 0;
  let chunkScale: u32 = 1;
  for (; i < len; i++) {
    const c = load<u8>(text + i);
    if (c == 0x2e && !sawPoint) {
      sawPoint = true;
      continue;
    }
    if (c < 0x30 || c > 0x39) break;
    chunk = chunk * 10 + (c - 0x30);
    chunkScale *= 10;
    if (chunkScale == 1_000_000_000) {
      natMulSmallInPlace(m, chunkScale, chunk, len / 9 + 2);
      chunk = 0;
      chunkScale = 1;
    }
    digits++;
    if (sawPoint) fraction++;
  }
  if (chunkScale > 1) natMulSmallInPlace(m, chunkScale, chunk, len / 9 + 2);
  if (digits == 0) return 0;
  let exp: i64 = 0;
  if (i < len) {
    const e = load<u8>(text + i);
    if (e != 0x65 && e != 0x45) return 0;
    i++;
    let expNegative = false;
    if (i < len && (load<u8>(text + i) == 0x2d || load<u8>(text + i) == 0x2b)) expNegative = load<u8>(text + i++) == 0x2d;
    if (i == len) return 0;
    for (; i < len; i++) {
      const c = load<u8>(text + i);
      if (c < 0x30 || c > 0x39) return 0;
      if (exp < 1_000_000_000_000) exp = exp * 10 + <i64>(c - 0x30);
    }
    if (expNegative) exp = -exp;
  }
  const exp5 = exp - fraction;
  if (natLen(m) == 0) {
    parseOk = true;
    return newFloat(negative, m, 0, 64);
  }
  if (exp5 > MAX_EXPONENT || exp5 < -MAX_EXPONENT) return 0;
  parseOk = true;
  // The unrounded mantissa times 2^exp5; the 5^exp5 factor rounds once (Go: z.Mul / z.Quo at prec 64).
  const z = newFloat(negative, m, exp5, 64);
  if (exp5 == 0) return rounded(negative, m, 0, 64, false);
  return exp5 > 0 ? fMul(z, pow5(<u64>exp5), 64) : fQuo(z, pow5(<u64>-exp5), 64);
}

/** A float holding the integer n exactly (Go's SetInt: precision max(bits, 64)). */
export function floatFromNat(negative: bool, m: usize): usize {
  const bits = natBitLen(m);
  return newFloat(negative, m, 0, bits > 64 ? <u32>bits : 64);
}

/** new(big.Float): +0 of precision 0 (an operation gives it the other operand's). */
export function floatZero(): usize {
  return newFloat(false, natAlloc(0), 0, 0);
}

export function floatHalf(): usize {
  return newFloat(false, natFromU64(1), -1, 53);
}

export function floatFromU64(x: u64, prec: u32): usize {
  return newFloat(false, natFromU64(x), 0, prec);
}

/** The integer part (toward zero) of f as a float of Go's SetInt precision; `isExact` whether f was integral. */
export let truncExact = false;

export function truncate(f: usize): usize {
  const m = fMant(f);
  const e = fExp(f);
  if (fIsZero(f)) {
    truncExact = true;
    return floatFromNat(false, m);
  }
  if (e >= 0) {
    truncExact = true;
    return floatFromNat(fNegative(f), natShl(m, e));
  }
  truncExact = !natAnyBelow(m, -e);
  const whole = natShr(m, -e);
  return floatFromNat(fNegative(f) && natLen(whole) != 0, whole);
}

/**
 * The integer part of f (toward zero, no -0: big.Int) in base 2, 8, 10 or 16 as Go's %b/%o/%d/%x
 * of a big.Int; written to a fresh buffer, its length in formattedLength.
 */
export function formatIntegerPart(f: usize, base: u32): usize {
  const t = truncate(f);
  const m = natShl(fMant(t), fExp(t));
  const cap = natLen(m) + 1;
  const n = natCopy(m, cap);
  const out = malloc(<usize>cap * 32 + 2);
  let w: usize = <usize>cap * 32 + 2;
  consumeMany((<i64>cap * <i64>cap) >> 4);
  do {
    const r = natDivSmallInPlace(n, base);
    store<u8>(out + --w, <u8>(r < 10 ? 0x30 + r : 0x57 + r));
  } while (natLen(n) != 0);
  if (fNegative(t)) store<u8>(out + --w, 0x2d);
  formattedLength = <u32>(<usize>cap * 32 + 2 - w);
  return out + w;
}

export function fCompare(x: usize, y: usize): i32 {
  const d = fAdd(x, y, true, 0x7fffffff);
  if (fIsZero(d)) return 0;
  return fNegative(d) ? -1 : 1;
}

export function fAbs(f: usize): usize {
  return newFloat(false, fMant(f), fExp(f), fPrec(f));
}

export function fPrecision(f: usize): u32 {
  return fPrec(f);
}

// ---- formatting: FloatToNumber (Text('f', -1) for integers, Text('g', -1) otherwise) ------------

/** Binary exponents a result may have to be printed: about 10^±6000, the cost of printing growing as its square. */
const MAX_FORMAT_EXPONENT: i64 = 20_000;

/** Exact decimal of m × 2^e: ASCII digits without trailing zeros in decDigits/decCount, value 0.D × 10^decPoint. */
let decDigits: usize = 0;
let decCount: i32 = 0;
let decPoint: i64 = 0;

function toDecimal(m: usize, e: i64): void {
  if (e > MAX_FORMAT_EXPONENT || e < -MAX_FORMAT_EXPONENT) {
    decDigits = 0;
    return;
  }
  let n: usize;
  let scale: i64 = 0; // value = n × 10^scale
  if (e >= 0) n = natCopy(natShl(m, e), natLen(m) + <u32>(e >> 5) + 2);
  else {
    // m × 2^e = m × 5^-e / 10^-e; 5 < 2^2.33
    let k = -e;
    const cap = natLen(m) + <u32>((k * 7) / 96) + 2;
    n = natCopy(m, cap);
    while (k >= 13) {
      natMulSmallInPlace(n, 1220703125, 0, cap);
      k -= 13;
    }
    let p: u32 = 1;
    for (let i: i64 = 0; i < k; i++) p *= 5;
    natMulSmallInPlace(n, p, 0, cap);
    scale = e;
  }
  consumeMany((<i64>natLen(n) * <i64>natLen(n)) >> 6);
  // Base 10^9 chunks, least significant first, then ASCII most significant first.
  const chunks = (natLen(n) * 10) / 9 + 2; // 2^32 < 10^9.64
  const tmp = malloc(<usize>chunks * 9 + 9);
  let w: i32 = 0;
  while (natLen(n) != 0) {
    let r = natDivSmallInPlace(n, 1_000_000_000);
    for (let i = 0; i < 9; i++) {
      store<u8>(tmp + <usize>w, <u8>(0x30 + r % 10));
      w++;
      r /= 10;
    }
  }
  while (w > 0 && load<u8>(tmp + <usize>(w - 1)) == 0x30) w--;
  const out = malloc(<usize>w + 1);
  for (let i = 0; i < w; i++) store<u8>(out + <usize>i, load<u8>(tmp + <usize>(w - 1 - i)));
  let count = w;
  while (count > 0 && load<u8>(out + <usize>(count - 1)) == 0x30) count--;
  decDigits = out;
  decCount = count;
  decPoint = count == 0 ? 0 : <i64>w + scale;
}

function digitAt(digits: usize, count: i32, i: i32): u8 {
  return i < count ? load<u8>(digits + <usize>i) : 0x30;
}

/** Go's decimal round helpers on (decDigits, decCount, decPoint). */
function roundDownTo(n: i32): void {
  decCount = n;
  while (decCount > 0 && load<u8>(decDigits + <usize>(decCount - 1)) == 0x30) decCount--;
}

function roundUpTo(n: i32): void {
  let i = n;
  while (i > 0 && load<u8>(decDigits + <usize>(i - 1)) >= 0x39) i--;
  if (i == 0) {
    store<u8>(decDigits, 0x31);
    decCount = 1;
    decPoint++;
    return;
  }
  store<u8>(decDigits + <usize>(i - 1), load<u8>(decDigits + <usize>(i - 1)) + 1);
  decCount = i;
}

function roundTo(n: i32): void {
  if (n < 0 || n >= decCount) return;
  const c = load<u8>(decDigits + <usize>n);
  let up: bool;
  if (c == 0x35 && n + 1 == decCount) up = n > 0 && ((load<u8>(decDigits + <usize>(n - 1)) - 0x30) & 1) != 0;
  else up = c >= 0x35;
  if (up) roundUpTo(n);
  else roundDownTo(n);
}

/** Go's big/ftoa.go roundShortest: the fewest digits that read back as the same float of its precision. */
function roundShortest(f: usize): void {
  let mant = fMant(f);
  let exp = fExp(f);
  const s = natBitLen(mant) - (<i64>fPrec(f) + 1);
  if (s < 0) mant = natShl(mant, -s);
  else if (s > 0) mant = natShr(mant, s);
  exp += s;
  const one = natFromU64(1);
  const digits = decDigits;
  const count = decCount;
  const point = decPoint;
  toDecimal(natSub(mant, one), exp);
  const lower = decDigits;
  const lowerCount = decCount;
  toDecimal(natAdd(mant, one), exp);
  const upper = decDigits;
  const upperCount = decCount;
  decDigits = digits;
  decCount = count;
  decPoint = point;
  const inclusive = (limb(mant, 0) & 2) == 0;
  // As Go's decimal.at: digits compared by index, whatever the bounds' decimal exponents.
  for (let i = 0; i < count; i++) {
    const l = digitAt(lower, lowerCount, i);
    const u = digitAt(upper, upperCount, i);
    const m = load<u8>(digits + <usize>i);
    const okDown = l != m || (inclusive && i + 1 == lowerCount);
    const okUp = m != u && (inclusive || m + 1 < u || i + 1 < upperCount);
    if (okDown && okUp) {
      roundTo(i + 1);
      return;
    }
    if (okDown) {
      roundDownTo(i + 1);
      return;
    }
    if (okUp) {
      roundUpTo(i + 1);
      return;
    }
  }
}

/** builtins.FloatToNumber's text for f: written at out (room for the caller), its length returned. */
export let formattedLength: u32 = 0;

export function formatFloat(f: usize): usize {
  const zero = fIsZero(f);
  let integral = true;
  if (!zero) {
    toDecimal(fMant(f), fExp(f));
    if (decDigits == 0) return 0;
    integral = fExp(f) >= 0 || !natAnyBelow(fMant(f), -fExp(f));
    roundShortest(f);
  } else {
    decCount = 0;
    decPoint = 0;
  }
  const n = decCount;
  const point = decPoint;
  const absPoint = point < 0 ? -point : point;
  const out = malloc(<usize>n + <usize>absPoint + 32);
  let w: usize = 0;
  if (fNegative(f)) store<u8>(out + w++, 0x2d);
  const exp = point - 1;
  if (!integral && (exp < -4 || exp >= 6)) {
    // %e with the shortest digits: d[.ddd]e±XX
    store<u8>(out + w++, load<u8>(decDigits));
    if (n > 1) {
      store<u8>(out + w++, 0x2e);
      memory.copy(out + w, decDigits + 1, <usize>(n - 1));
      w += <usize>(n - 1);
    }
    store<u8>(out + w++, 0x65);
    store<u8>(out + w++, exp < 0 ? 0x2d : 0x2b);
    const a = exp < 0 ? -exp : exp;
    if (a < 10) store<u8>(out + w++, 0x30);
    const t = malloc(20);
    let k: usize = 20;
    let x = a;
    do {
      store<u8>(t + --k, <u8>(0x30 + <u32>(x % 10)));
      x /= 10;
    } while (x > 0);
    memory.copy(out + w, t + k, 20 - k);
    w += 20 - k;
  } else {
    // %f: integer digits (zero padded to the point), then the fraction (integers have none)
    if (point > 0) {
      for (let i: i64 = 0; i < point; i++) store<u8>(out + w++, i < <i64>n ? load<u8>(decDigits + <usize>i) : 0x30);
    } else store<u8>(out + w++, 0x30);
    const fractionDigits = integral ? 0 : <i64>n - point;
    if (fractionDigits > 0) {
      store<u8>(out + w++, 0x2e);
      for (let i: i64 = 0; i < fractionDigits; i++) {
        const at = point + i;
        store<u8>(out + w++, at >= 0 && at < <i64>n ? load<u8>(decDigits + <usize>at) : 0x30);
      }
    }
  }
  formattedLength = <u32>w;
  return out;
}
