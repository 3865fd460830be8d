// Built-ins that run natively in Wasm, as `b_<name with dots as underscores>`. Each takes value
// addresses and returns a value address, or 0 (undefined) when an operand has the wrong type, as
// OPA's own Wasm built-ins do. The compiler delegates any other built-in to the host through
// opa_builtinN, or refuses it at compile time.
import { dumpJson, parseJson } from "./json";
import { malloc } from "./memory";
import { consume, consumeBytes, consumeMany } from "./budget";
import { abortWith, abortWith2, strictBuiltinErrors } from "./eval";
import {
  CEIL, FLOOR, OP_DIV, OP_MINUS, OP_MUL, OP_PLUS, ROUND,
  MODULO_BY_ZERO, absolute, approximation, arithmetic, bigRemainder, inexactNumber, int64Of, integral, integralOk, integralTooLarge, isDecimalText,
  foldFloats, toFloat, isInt64, isIntegral, isZero, newInt, newNumberText, numberQuirk, numberTextLen, resetNumberQuirk, rounded,
} from "./numbers";
import { formatIntegerPart, formattedLength } from "./bigfloat";
import { operandTypeError } from "./operands";
import { mapRune } from "./unicode";
import { decodeRune, decodedWidth, encodeRune } from "./utf8";
import {
  ARRAY, BOOLEAN, NULL, NUMBER, OBJECT, SET, STRING,
  arrayAppend, booleanValue, compare, item, length, newArray, newBoolean, newObject, newSet, newString,
  objectGet, objectInsert, objectKey, objectValue, setAdd, setContains, stringBytes, stringLen, typeOf,
} from "./value";

// ---- helpers -------------------------------------------------------------------------------------

/**
 * An operand of the wrong type: an error by default (as `opa eval --strict-builtin-errors` and
 * regorus; a type error in a deny rule must not silently allow), undefined in non-strict mode.
 */
function builtinError(message: string): usize {
  if (strictBuiltinErrors) abortWith(message);
  return 0;
}

function typeError(name: string): usize {
  if (strictBuiltinErrors) abortWith2("eval_type_error: invalid argument type for ", name);
  return 0;
}

function num(x: i64): usize {
  return newInt(x);
}

function boolv(b: bool): usize {
  return newBoolean(b);
}

function isNum(v: usize): bool {
  return typeOf(v) == NUMBER;
}

function isStr(v: usize): bool {
  return typeOf(v) == STRING;
}

/** OPA's Number.Int (IntOperand, array indexes): a number whose text is an int64. */
function isInt(v: usize): bool {
  return isInt64(v);
}

function str(bytes: usize, len: usize): usize {
  return newString(bytes, <u32>len);
}

function ascii(text: string): usize {
  const n = text.length;
  const at = malloc(<usize>n);
  for (let i = 0; i < n; i++) store<u8>(at + <usize>i, <u8>text.charCodeAt(i));
  return str(at, <usize>n);
}

/** Bytes of a string value that holds `needle` at `at`. */
function bytesEqual(a: usize, b: usize, n: usize): bool {
  return memory.compare(a, b, n) == 0;
}

function indexOfBytes(hay: usize, hayLen: usize, needle: usize, needleLen: usize, from: usize): i32 {
  if (needleLen == 0) return <i32>from;
  if (needleLen > hayLen) return -1;
  const perPosition = 1 + <i32>(needleLen >> 6);
  for (let i = from; i + needleLen <= hayLen; i++) {
    consume(perPosition);
    if (bytesEqual(hay + i, needle, needleLen)) return <i32>i;
  }
  return -1;
}

/** UTF-8 code points in [0, byteLen) of `bytes`. */
function runeCount(bytes: usize, byteLen: usize): i32 {
  consumeBytes(byteLen);
  let n = 0;
  for (let i: usize = 0; i < byteLen; i++) if ((load<u8>(bytes + i) & 0xc0) != 0x80) n++;
  return n;
}

/** Byte offset of code point `rune` (or byteLen when past the end). */
function runeOffset(bytes: usize, byteLen: usize, rune: i32): usize {
  consumeBytes(byteLen);
  let seen = -1;
  for (let i: usize = 0; i < byteLen; i++) {
    if ((load<u8>(bytes + i) & 0xc0) != 0x80) {
      seen++;
      if (seen == rune) return i;
    }
  }
  return byteLen;
}

// ---- comparison (OPA: equal, neq, lt, lte, gt, gte) ------------------------------------------------

/**
 * A comparison's result, unless it compared numbers that OPA 1.x releases compare differently
 * (numbers.ts: numberQuirk), which is an error rather than one release's answer.
 */
function compared(a: usize, b: usize): i32 {
  resetNumberQuirk();
  const c = compare(a, b);
  if (numberQuirk) abortWith("eval_builtin_error: comparing numbers that OPA 1.x releases compare differently");
  return c;
}

export function b_equal(a: usize, b: usize): usize {
  return boolv(compared(a, b) == 0);
}

export function b_neq(a: usize, b: usize): usize {
  return boolv(compared(a, b) != 0);
}

export function b_lt(a: usize, b: usize): usize {
  return boolv(compared(a, b) < 0);
}

export function b_lte(a: usize, b: usize): usize {
  return boolv(compared(a, b) <= 0);
}

export function b_gt(a: usize, b: usize): usize {
  return boolv(compared(a, b) > 0);
}

export function b_gte(a: usize, b: usize): usize {
  return boolv(compared(a, b) >= 0);
}

// ---- numbers and set arithmetic ------------------------------------------------------------------

export function b_plus(a: usize, b: usize): usize {
  if (!isNum(a) || !isNum(b)) return typeError("plus");
  return arithmetic(a, b, OP_PLUS, "eval_builtin_error: plus");
}

/** `a - b`: numbers, or the difference of two sets. */
export function b_minus(a: usize, b: usize): usize {
  if (isNum(a) && isNum(b)) return arithmetic(a, b, OP_MINUS, "eval_builtin_error: minus");
  if (typeOf(a) == SET && typeOf(b) == SET) {
    consumeMany(length(a));
    const out = newSet(length(a));
    for (let i: u32 = 0; i < length(a); i++) if (!setContains(b, item(a, i))) setAdd(out, item(a, i));
    return out;
  }
  // OPA's messages, in its order: the first operand's kind, then a number second operand means a set was due.
  if (!isNum(a) && typeOf(a) != SET) return operandTypeError("minus", 1, "must be one of {number, set} but got ", a);
  if (isNum(b)) return operandTypeError("minus", 2, "must be set but got ", b);
  return operandTypeError("minus", 2, "must be number but got ", b);
}

export function b_mul(a: usize, b: usize): usize {
  if (!isNum(a) || !isNum(b)) return typeError("mul");
  return arithmetic(a, b, OP_MUL, "eval_builtin_error: mul");
}

/** OPA divides ints exactly when the divisor divides a nonzero dividend, otherwise as big.Float. */
export function b_div(a: usize, b: usize): usize {
  if (!isNum(a) || !isNum(b)) return typeError("div");
  if (isZero(b)) return builtinError("eval_builtin_error: div: divide by zero");
  if (isInt64(a) && isInt64(b)) {
    const x = int64Of(a);
    const y = int64Of(b);
    if (x != 0 && x % y == 0 && !(x == i64.MIN_VALUE && y == -1)) return num(x / y);
  }
  return arithmetic(a, b, OP_DIV, "eval_builtin_error: div");
}

/** Remainder of integers of any size (OPA takes "4.0" and 1e2 as integers too), truncated as Go's %. */
export function b_rem(a: usize, b: usize): usize {
  if (!isNum(a) || !isNum(b)) return typeError("rem");
  if (isInt64(a) && isInt64(b)) {
    const y = int64Of(b);
    if (y == 0) return builtinError("eval_builtin_error: rem: modulo by zero");
    return num(y == -1 ? 0 : int64Of(a) % y);
  }
  const r = bigRemainder(a, b);
  if (r == MODULO_BY_ZERO) return builtinError("eval_builtin_error: rem: modulo by zero");
  if (r != 0) return r;
  integral(a);
  const aTooLarge = integralTooLarge;
  integral(b);
  if (aTooLarge || integralTooLarge) return inexactNumber("eval_builtin_error: rem");
  return builtinError("eval_builtin_error: rem: modulo on floating-point number");
}

export function b_abs(a: usize): usize {
  return isNum(a) ? absolute(a) : typeError("abs");
}

/** Rounds half away from zero, as OPA's arithRound. */
export function b_round(a: usize): usize {
  return isNum(a) ? rounded(a, ROUND, "eval_builtin_error: round") : typeError("round");
}

export function b_ceil(a: usize): usize {
  return isNum(a) ? rounded(a, CEIL, "eval_builtin_error: ceil") : typeError("ceil");
}

export function b_floor(a: usize): usize {
  return isNum(a) ? rounded(a, FLOOR, "eval_builtin_error: floor") : typeError("floor");
}

/** Integers from a to b inclusive (OPA's BigIntOperand: 1.0 is an integer); charged before it is built. */
export function b_numbers_range(a: usize, b: usize): usize {
  if (!isNum(a) || !isNum(b)) return typeError("numbers.range");
  const from = integral(a);
  const fromOk = integralOk;
  const to = integral(b);
  if (!fromOk || !integralOk) {
    if (integralTooLarge) return inexactNumber("eval_builtin_error: numbers.range");
    return typeError("numbers.range");
  }
  const n = from <= to ? to - from + 1 : from - to + 1;
  consumeMany(n); // before the size check: a budget smaller than the range stops it first
  if (n > 10000000 || n <= 0) return builtinError("eval_builtin_error: numbers.range: range too large");
  const out = newArray(<u32>n);
  for (let i: i64 = 0; i < n; i++) arrayAppend(out, num(from <= to ? from + i : from - i));
  return out;
}

/**
 * OPA's to_number: a string Go's strconv.ParseFloat reads becomes a number with that very text
 * ("08", "+1" and ".5" included); "Inf" and "NaN" are type errors; out of float64's range is an error.
 */
export function b_to_number(a: usize): usize {
  const t = typeOf(a);
  if (t == NUMBER) return a;
  if (t == NULL) return num(0);
  if (t == BOOLEAN) return num(booleanValue(a) ? 1 : 0);
  if (t != STRING) return typeError("to_number");
  const n = stringLen(a);
  consumeBytes(n);
  if (isInfinityOrNaN(stringBytes(a), n)) {
    return builtinError("eval_type_error: to_number: operand 1 must be valid number string but got string");
  }
  if (!isDecimalText(stringBytes(a), n)) return builtinError("eval_builtin_error: to_number: invalid syntax");
  const v = newNumberText(stringBytes(a), n);
  if (Math.abs(approximation(v)) >= 1.7e308) {
    return builtinError("eval_builtin_error: to_number: value out of range (or too close to float64's limit)");
  }
  return v;
}

/** "inf", "infinity" or "nan" in any case after leading signs (OPA's own check before ParseFloat). */
function isInfinityOrNaN(bytes: usize, n: u32): bool {
  let i: u32 = 0;
  while (i < n && (load<u8>(bytes + i) == 0x2b || load<u8>(bytes + i) == 0x2d)) i++;
  return isWord(bytes + i, n - i, "inf") || isWord(bytes + i, n - i, "infinity") || isWord(bytes + i, n - i, "nan");
}

/** Whether the bytes spell `word` (lower-case letters) in any case. */
function isWord(bytes: usize, n: u32, word: string): bool {
  if (n != <u32>word.length) return false;
  for (let i: u32 = 0; i < n; i++) if (<i32>(load<u8>(bytes + i) | 0x20) != word.charCodeAt(<i32>i)) return false;
  return true;
}

// ---- aggregates ----------------------------------------------------------------------------------

export function b_count(a: usize): usize {
  const t = typeOf(a);
  if (t == STRING) return num(<i64>runeCount(stringBytes(a), stringLen(a)));
  if (t == ARRAY || t == OBJECT || t == SET) return num(<i64>length(a));
  return typeError("count");
}

function numbersOf(a: usize): bool {
  const t = typeOf(a);
  if (t != ARRAY && t != SET) return false;
  consumeMany(length(a));
  for (let i: u32 = 0; i < length(a); i++) if (!isNum(item(a, i))) return false;
  return true;
}

export function b_sum(a: usize): usize {
  if (!numbersOf(a)) return typeError("sum");
  if (!allIntegral(a)) return foldFloats(a, OP_PLUS, "eval_builtin_error: sum");
  // Integers: OPA sums them exactly (int, then big.Int).
  let s = num(0);
  for (let i: u32 = 0; i < length(a); i++) s = arithmetic(s, item(a, i), OP_PLUS, "eval_builtin_error: sum");
  return s;
}

export function b_product(a: usize): usize {
  if (!numbersOf(a)) return typeError("product");
  if (!allIntegral(a)) return foldFloats(a, OP_MUL, "eval_builtin_error: product");
  let s = num(1);
  for (let i: u32 = 0; i < length(a); i++) s = arithmetic(s, item(a, i), OP_MUL, "eval_builtin_error: product");
  return s;
}

/** Whether every element is an integer (OPA's NumberToInt); otherwise OPA folds big.Floats. */
function allIntegral(a: usize): bool {
  for (let i: u32 = 0; i < length(a); i++) if (!isIntegral(item(a, i))) return false;
  return true;
}

function extreme(a: usize, sign: i32): usize {
  const t = typeOf(a);
  if (t != ARRAY && t != SET) return typeError("built-in function");
  const n = length(a);
  if (n == 0) return 0;
  consumeMany(n);
  let best = item(a, 0);
  for (let i: u32 = 1; i < n; i++) if (compare(item(a, i), best) * sign > 0) best = item(a, i);
  return best;
}

export function b_max(a: usize): usize {
  return extreme(a, 1);
}

export function b_min(a: usize): usize {
  return extreme(a, -1);
}

export function b_sort(a: usize): usize {
  const t = typeOf(a);
  if (t == SET) {
    consumeMany(length(a));
    const out = newArray(length(a));
    for (let i: u32 = 0; i < length(a); i++) arrayAppend(out, item(a, i));
    return out;
  }
  if (t != ARRAY) return typeError("sort");
  const n = length(a);
  consumeMany(n);
  const out = newArray(n);
  for (let i: u32 = 0; i < n; i++) arrayAppend(out, item(a, i));
  // Insertion sort into the fresh array's slots: stable, and inputs are small in policies.
  const slots = <usize>load<u32>(out, 12);
  for (let i: u32 = 1; i < n; i++) {
    const v = <usize>load<u32>(slots + <usize>i * 4);
    let j = <i32>i - 1;
    while (j >= 0 && compare(<usize>load<u32>(slots + <usize>j * 4), v) > 0) {
      store<u32>(slots + <usize>(j + 1) * 4, load<u32>(slots + <usize>j * 4));
      j--;
    }
    consume(<i32>i - j); // the shifts: insertion sort is quadratic on adversarial input
    store<u32>(slots + <usize>(j + 1) * 4, <u32>v);
  }
  return out;
}

function allOrAny(a: usize, wantAll: bool): usize {
  const t = typeOf(a);
  if (t != ARRAY && t != SET) return typeError("built-in function");
  consumeMany(length(a));
  for (let i: u32 = 0; i < length(a); i++) {
    const v = item(a, i);
    const isTrue = typeOf(v) == BOOLEAN && booleanValue(v);
    if (wantAll && !isTrue) return boolv(false);
    if (!wantAll && isTrue) return boolv(true);
  }
  return boolv(wantAll);
}

export function b_all(a: usize): usize {
  return allOrAny(a, true);
}

export function b_any(a: usize): usize {
  return allOrAny(a, false);
}

// ---- sets ----------------------------------------------------------------------------------------

export function b_and(a: usize, b: usize): usize {
  if (typeOf(a) != SET || typeOf(b) != SET) return typeError("and");
  consumeMany(length(a));
  const out = newSet(4);
  for (let i: u32 = 0; i < length(a); i++) if (setContains(b, item(a, i))) setAdd(out, item(a, i));
  return out;
}

export function b_or(a: usize, b: usize): usize {
  if (typeOf(a) != SET || typeOf(b) != SET) return typeError("or");
  consumeMany(<i64>length(a) + <i64>length(b));
  const out = newSet(length(a) + length(b));
  for (let i: u32 = 0; i < length(a); i++) setAdd(out, item(a, i));
  for (let i: u32 = 0; i < length(b); i++) setAdd(out, item(b, i));
  return out;
}

export function b_union(a: usize): usize {
  if (typeOf(a) != SET) return typeError("union");
  let out = newSet(4);
  for (let i: u32 = 0; i < length(a); i++) {
    out = b_or(out, item(a, i));
    if (out == 0) return 0;
  }
  return out;
}

export function b_intersection(a: usize): usize {
  if (typeOf(a) != SET) return typeError("intersection");
  if (length(a) == 0) return newSet(0);
  let out = item(a, 0);
  for (let i: u32 = 1; i < length(a); i++) {
    out = b_and(out, item(a, i));
    if (out == 0) return 0;
  }
  return typeOf(out) == SET ? out : 0;
}

/** `x in coll` / `k, v in coll` (internal.member_2 / member_3). */
export function b_internal_member_2(x: usize, coll: usize): usize {
  const t = typeOf(coll);
  if (t == SET) return boolv(setContains(coll, x));
  if (t == ARRAY || t == OBJECT) {
    consumeMany(length(coll));
    for (let i: u32 = 0; i < length(coll); i++) {
      if (compare(t == OBJECT ? objectValue(coll, i) : item(coll, i), x) == 0) return boolv(true);
    }
  }
  return boolv(false);
}

export function b_internal_member_3(k: usize, v: usize, coll: usize): usize {
  const t = typeOf(coll);
  if (t == OBJECT) {
    const found = objectGet(coll, k);
    return boolv(found != 0 && compare(found, v) == 0);
  }
  if (t == ARRAY) {
    if (!isInt(k)) return boolv(false);
    const i = int64Of(k);
    return boolv(i >= 0 && i < <i64>length(coll) && compare(item(coll, <u32>i), v) == 0);
  }
  if (t == SET) return boolv(compare(k, v) == 0 && setContains(coll, v));
  return boolv(false);
}

// ---- arrays --------------------------------------------------------------------------------------

export function b_array_concat(a: usize, b: usize): usize {
  if (typeOf(a) != ARRAY || typeOf(b) != ARRAY) return typeError("array.concat");
  consumeMany(<i64>length(a) + <i64>length(b));
  const out = newArray(length(a) + length(b));
  for (let i: u32 = 0; i < length(a); i++) arrayAppend(out, item(a, i));
  for (let i: u32 = 0; i < length(b); i++) arrayAppend(out, item(b, i));
  return out;
}

export function b_array_slice(a: usize, from: usize, to: usize): usize {
  if (typeOf(a) != ARRAY || !isInt(from) || !isInt(to)) return typeError("array.slice");
  const n = <i64>length(a);
  let start = int64Of(from);
  let stop = int64Of(to);
  if (start < 0) start = 0;
  if (stop > n) stop = n;
  consumeMany(stop - start);
  const out = newArray(4);
  for (let i = start; i < stop; i++) arrayAppend(out, item(a, <u32>i));
  return out;
}

export function b_array_reverse(a: usize): usize {
  if (typeOf(a) != ARRAY) return typeError("array.reverse");
  const n = length(a);
  consumeMany(n);
  const out = newArray(n);
  for (let i: u32 = 0; i < n; i++) arrayAppend(out, item(a, n - 1 - i));
  return out;
}

// ---- objects -------------------------------------------------------------------------------------

export function b_object_get(o: usize, key: usize, fallback: usize): usize {
  if (typeOf(o) != OBJECT) return typeError("object.get");
  if (typeOf(key) == ARRAY) {
    consumeMany(length(key));
    let node = o;
    for (let i: u32 = 0; i < length(key); i++) {
      const t = typeOf(node);
      let next: usize = 0;
      if (t == OBJECT) next = objectGet(node, item(key, i));
      else if (t == ARRAY && isInt(item(key, i))) {
        const at = int64Of(item(key, i));
        if (at >= 0 && at < <i64>length(node)) next = item(node, <u32>at);
      } else if (t == SET && setContains(node, item(key, i))) next = item(key, i);
      if (next == 0) return fallback;
      node = next;
    }
    return node;
  }
  const found = objectGet(o, key);
  return found != 0 ? found : fallback;
}

// object.subset as OPA (v1/topdown/subset.go): objects recursively, sets by membership, arrays as
// a contiguous run, and an array against a set by counting matching elements (duplicates count,
// and nothing is a subset of an empty array).
function subsetOfObjects(sup: usize, sub: usize): bool {
  const n = length(sub);
  consumeMany(n);
  for (let i: u32 = 0; i < n; i++) {
    const theirs = objectGet(sup, objectKey(sub, i));
    if (theirs == 0) return false;
    const mine = objectValue(sub, i);
    if (compare(mine, theirs) == 0) continue;
    const t = typeOf(mine);
    if (t != typeOf(theirs)) return false;
    if (t == OBJECT && !subsetOfObjects(theirs, mine)) return false;
    if (t == SET && !subsetOfSets(theirs, mine)) return false;
    if (t == ARRAY && !subsetOfArrays(theirs, mine)) return false;
    if (t != OBJECT && t != SET && t != ARRAY) return false;
  }
  return true;
}

function subsetOfSets(sup: usize, sub: usize): bool {
  consumeMany(length(sub));
  for (let i: u32 = 0; i < length(sub); i++) if (!setContains(sup, item(sub, i))) return false;
  return true;
}

function subsetOfArrays(sup: usize, sub: usize): bool {
  const n = length(sub);
  const m = length(sup);
  if (n > m) return false;
  let start: u32 = 0;
  let matched: u32 = 0;
  while (matched < n) {
    if (start + matched == m) return false;
    consume(1);
    if (compare(item(sup, start + matched), item(sub, matched)) == 0) matched++;
    else {
      start++;
      matched = 0;
    }
  }
  return true;
}

function subsetOfArrayBySet(sup: usize, sub: usize): bool {
  let unmatched = <i64>length(sub);
  consumeMany(length(sup));
  for (let i: u32 = 0; i < length(sup); i++) {
    if (setContains(sub, item(sup, i))) unmatched--;
    if (unmatched == 0) return true;
  }
  return false;
}

export function b_object_subset(sup: usize, sub: usize): usize {
  const a = typeOf(sup);
  const b = typeOf(sub);
  if (a == OBJECT && b == OBJECT) return boolv(subsetOfObjects(sup, sub));
  if (a == SET && b == SET) return boolv(subsetOfSets(sup, sub));
  if (a == ARRAY && b == ARRAY) return boolv(subsetOfArrays(sup, sub));
  if (a == ARRAY && b == SET) return boolv(subsetOfArrayBySet(sup, sub));
  return builtinError(
    "eval_type_error: object.subset: both arguments object.subset must be of the same type or array and set",
  );
}

export function b_object_keys(o: usize): usize {
  if (typeOf(o) != OBJECT) return typeError("object.keys");
  consumeMany(length(o));
  const out = newSet(length(o));
  for (let i: u32 = 0; i < length(o); i++) setAdd(out, objectKey(o, i));
  return out;
}

function unionDeep(a: usize, b: usize): usize {
  if (typeOf(a) != OBJECT || typeOf(b) != OBJECT) return b;
  consumeMany(<i64>length(a) + <i64>length(b));
  const out = newObject(length(a) + length(b));
  for (let i: u32 = 0; i < length(a); i++) objectInsert(out, objectKey(a, i), objectValue(a, i));
  for (let i: u32 = 0; i < length(b); i++) {
    const k = objectKey(b, i);
    const existing = objectGet(a, k);
    objectInsert(out, k, existing != 0 ? unionDeep(existing, objectValue(b, i)) : objectValue(b, i));
  }
  return out;
}

export function b_object_union(a: usize, b: usize): usize {
  if (typeOf(a) != OBJECT) return operandTypeError("object.union", 1, "must be object but got ", a);
  if (typeOf(b) != OBJECT) return operandTypeError("object.union", 2, "must be object but got ", b);
  return unionDeep(a, b);
}

export function b_object_union_n(list: usize): usize {
  if (typeOf(list) != ARRAY) return typeError("object.union_n");
  let out = newObject(4);
  for (let i: u32 = 0; i < length(list); i++) {
    if (typeOf(item(list, i)) != OBJECT) return typeError("object.union_n");
    out = unionDeep(out, item(list, i));
  }
  return out;
}

/** The keys named by an array, set or object's keys (object.remove / object.filter). */
function keySet(keys: usize, name: string): usize {
  const t = typeOf(keys);
  if (t == SET) return keys;
  if (t != ARRAY && t != OBJECT) return operandTypeError(name, 2, "must be one of {object, set, array} but got ", keys);
  consumeMany(length(keys));
  const out = newSet(4);
  if (t == ARRAY) for (let i: u32 = 0; i < length(keys); i++) setAdd(out, item(keys, i));
  else for (let i: u32 = 0; i < length(keys); i++) setAdd(out, objectKey(keys, i));
  return out;
}

function filterKeys(o: usize, keys: usize, keep: bool): usize {
  const name = keep ? "object.filter" : "object.remove";
  if (typeOf(o) != OBJECT) return operandTypeError(name, 1, "must be object but got ", o);
  const wanted = keySet(keys, name);
  if (wanted == 0) return 0;
  consumeMany(length(o));
  const out = newObject(4);
  for (let i: u32 = 0; i < length(o); i++) {
    if (setContains(wanted, objectKey(o, i)) == keep) objectInsert(out, objectKey(o, i), objectValue(o, i));
  }
  return out;
}

export function b_object_remove(o: usize, keys: usize): usize {
  return filterKeys(o, keys, false);
}

export function b_object_filter(o: usize, keys: usize): usize {
  return filterKeys(o, keys, true);
}

// ---- strings -------------------------------------------------------------------------------------

export function b_concat(delim: usize, parts: usize): usize {
  const t = typeOf(parts);
  if (!isStr(delim) || (t != ARRAY && t != SET)) return typeError("concat");
  consumeMany(length(parts));
  let total: usize = 0;
  for (let i: u32 = 0; i < length(parts); i++) {
    if (!isStr(item(parts, i))) return typeError("concat");
    total += stringLen(item(parts, i)) + (i > 0 ? stringLen(delim) : 0);
  }
  const at = malloc(total);
  let w = at;
  for (let i: u32 = 0; i < length(parts); i++) {
    if (i > 0) {
      memory.copy(w, stringBytes(delim), stringLen(delim));
      w += stringLen(delim);
    }
    memory.copy(w, stringBytes(item(parts, i)), stringLen(item(parts, i)));
    w += stringLen(item(parts, i));
  }
  return str(at, total);
}

export function b_startswith(s: usize, p: usize): usize {
  if (!isStr(s) || !isStr(p)) return typeError("startswith");
  const n = stringLen(p);
  consumeBytes(n);
  return boolv(n <= stringLen(s) && bytesEqual(stringBytes(s), stringBytes(p), n));
}

export function b_endswith(s: usize, p: usize): usize {
  if (!isStr(s) || !isStr(p)) return typeError("endswith");
  const n = stringLen(p);
  consumeBytes(n);
  const sn = stringLen(s);
  return boolv(n <= sn && bytesEqual(stringBytes(s) + sn - n, stringBytes(p), n));
}

export function b_contains(s: usize, p: usize): usize {
  if (!isStr(s) || !isStr(p)) return typeError("contains");
  return boolv(indexOfBytes(stringBytes(s), stringLen(s), stringBytes(p), stringLen(p), 0) >= 0);
}

export function b_indexof(s: usize, p: usize): usize {
  if (!isStr(s) || !isStr(p)) return typeError("indexof");
  if (stringLen(s) == 0) return num(-1);
  const at = indexOfBytes(stringBytes(s), stringLen(s), stringBytes(p), stringLen(p), 0);
  return num(at < 0 ? -1 : <i64>runeCount(stringBytes(s), <usize>at));
}

export function b_indexof_n(s: usize, p: usize): usize {
  if (!isStr(s) || !isStr(p)) return typeError("indexof_n");
  const out = newArray(4);
  const n = stringLen(s);
  let from: usize = 0;
  while (from <= n) {
    const at = indexOfBytes(stringBytes(s), n, stringBytes(p), stringLen(p), from);
    if (at < 0) break;
    arrayAppend(out, num(<i64>runeCount(stringBytes(s), <usize>at)));
    from = <usize>at + 1;
  }
  return out;
}

/**
 * Go's strings.ToLower/ToUpper: each rune's simple mapping (unicode.ToLower/ToUpper; İ lowers to
 * i, ß has no single-rune upper case and stays, a final sigma is not special); a byte that is not
 * UTF-8 becomes U+FFFD, as strings.Map writes it.
 */
function mapCase(s: usize, upper: bool): usize {
  if (!isStr(s)) return typeError(upper ? "upper" : "lower");
  const n = <usize>stringLen(s);
  consumeBytes(n);
  const bytes = stringBytes(s);
  // A rune's mapping is at most one byte longer in UTF-8; U+FFFD for one bad byte is two longer.
  const out = malloc(n * 3);
  let w: usize = 0;
  let at: usize = 0;
  while (at < n) {
    const r = decodeRune(bytes + at, bytes + n);
    at += decodedWidth;
    w += encodeRune(out + w, mapRune(r, upper));
  }
  return str(out, w);
}

export function b_lower(s: usize): usize {
  return mapCase(s, false);
}

export function b_upper(s: usize): usize {
  return mapCase(s, true);
}

export function b_split(s: usize, sep: usize): usize {
  if (!isStr(s) || !isStr(sep)) return typeError("split");
  const out = newArray(4);
  const n = stringLen(s);
  const bytes = stringBytes(s);
  const sn = stringLen(sep);
  consumeBytes(n);
  if (sn == 0) {
    // Go's strings.Split with an empty separator: one string per code point.
    let start: usize = 0;
    for (let i: usize = 1; i <= n; i++) {
      if (i == n || (load<u8>(bytes + i) & 0xc0) != 0x80) {
        arrayAppend(out, str(bytes + start, i - start));
        start = i;
      }
    }
    return out;
  }
  let from: usize = 0;
  while (true) {
    const at = indexOfBytes(bytes, n, stringBytes(sep), sn, from);
    if (at < 0) break;
    arrayAppend(out, str(bytes + from, <usize>at - from));
    from = <usize>at + sn;
  }
  arrayAppend(out, str(bytes + from, n - from));
  return out;
}

export function b_replace(s: usize, old: usize, rep: usize): usize {
  if (!isStr(s) || !isStr(old) || !isStr(rep)) return typeError("replace");
  const parts = b_split(s, old);
  if (stringLen(old) == 0) {
    // Go inserts the replacement before every code point and at the end.
    const withEnds = newArray(length(parts) + 2);
    arrayAppend(withEnds, str(0, 0));
    for (let i: u32 = 0; i < length(parts); i++) arrayAppend(withEnds, item(parts, i));
    arrayAppend(withEnds, str(0, 0));
    return b_concat(rep, stringLen(s) == 0 ? b_split(str(0, 0), str(0, 0)) : withEnds);
  }
  return b_concat(rep, parts);
}

export function b_substring(s: usize, start: usize, len: usize): usize {
  if (!isStr(s) || !isInt(start) || !isInt(len)) return typeError("substring");
  const from64 = int64Of(start);
  const count64 = int64Of(len);
  const from = from64 > 0x7fffffff ? 0x7fffffff : <i32>from64;
  const count = count64 > 0x7fffffff ? 0x7fffffff : count64 < 0 ? -1 : <i32>count64;
  if (from < 0) return builtinError("eval_builtin_error: substring: negative offset");
  const bytes = stringBytes(s);
  const n = <usize>stringLen(s);
  const a = runeOffset(bytes, n, from);
  const b = count < 0 ? n : runeOffset(bytes, n, from + count);
  return str(bytes + a, (b > a ? b : a) - a);
}

function inCutset(c: u8, cut: usize): bool {
  for (let i: u32 = 0; i < stringLen(cut); i++) if (load<u8>(stringBytes(cut) + i) == c) return true;
  return false;
}

function trimWith(s: usize, cut: usize, left: bool, right: bool): usize {
  if (!isStr(s) || !isStr(cut)) return typeError("built-in function");
  const bytes = stringBytes(s);
  let a: usize = 0;
  let b = <usize>stringLen(s);
  const perByte = 1 + <i32>(stringLen(cut) >> 6);
  if (left) {
    while (a < b && inCutset(load<u8>(bytes + a), cut)) {
      consume(perByte);
      a++;
    }
  }
  if (right) {
    while (b > a && inCutset(load<u8>(bytes + b - 1), cut)) {
      consume(perByte);
      b--;
    }
  }
  return str(bytes + a, b - a);
}

export function b_trim(s: usize, cut: usize): usize {
  return trimWith(s, cut, true, true);
}

export function b_trim_left(s: usize, cut: usize): usize {
  return trimWith(s, cut, true, false);
}

export function b_trim_right(s: usize, cut: usize): usize {
  return trimWith(s, cut, false, true);
}

export function b_trim_space(s: usize): usize {
  return trimWith(s, ascii(" \t\n\r\x0b\x0c"), true, true);
}

export function b_trim_prefix(s: usize, p: usize): usize {
  if (!isStr(s) || !isStr(p)) return typeError("trim_prefix");
  const n = stringLen(p);
  consumeBytes(n);
  if (n <= stringLen(s) && bytesEqual(stringBytes(s), stringBytes(p), n)) {
    return str(stringBytes(s) + n, stringLen(s) - n);
  }
  return s;
}

export function b_trim_suffix(s: usize, p: usize): usize {
  if (!isStr(s) || !isStr(p)) return typeError("trim_suffix");
  const n = stringLen(p);
  const sn = stringLen(s);
  consumeBytes(n);
  if (n <= sn && bytesEqual(stringBytes(s) + sn - n, stringBytes(p), n)) return str(stringBytes(s), sn - n);
  return s;
}

export function b_strings_reverse(s: usize): usize {
  if (!isStr(s)) return typeError("strings.reverse");
  const n = <usize>stringLen(s);
  consumeBytes(n);
  const bytes = stringBytes(s);
  const at = malloc(n);
  let w = n;
  let i: usize = 0;
  while (i < n) {
    let j = i + 1;
    while (j < n && (load<u8>(bytes + j) & 0xc0) == 0x80) j++;
    w -= j - i;
    memory.copy(at + w, bytes + i, j - i);
    i = j;
  }
  return str(at, n);
}

export function b_strings_count(s: usize, p: usize): usize {
  if (!isStr(s) || !isStr(p)) return typeError("strings.count");
  if (stringLen(p) == 0) return num(<i64>(runeCount(stringBytes(s), stringLen(s)) + 1));
  let count = 0;
  let from: usize = 0;
  while (true) {
    const at = indexOfBytes(stringBytes(s), stringLen(s), stringBytes(p), stringLen(p), from);
    if (at < 0) break;
    count++;
    from = <usize>at + stringLen(p);
  }
  return num(<i64>count);
}

export function b_strings_any_prefix_match(s: usize, p: usize): usize {
  return anyMatch(s, p, true);
}

export function b_strings_any_suffix_match(s: usize, p: usize): usize {
  return anyMatch(s, p, false);
}

function anyMatch(s: usize, p: usize, prefix: bool): usize {
  const subjects = isStr(s) ? singleton(s) : s;
  const patterns = isStr(p) ? singleton(p) : p;
  const ts = typeOf(subjects);
  const tp = typeOf(patterns);
  if ((ts != ARRAY && ts != SET) || (tp != ARRAY && tp != SET)) return typeError("built-in function");
  for (let i: u32 = 0; i < length(subjects); i++) {
    for (let j: u32 = 0; j < length(patterns); j++) {
      consume(1);
      const r = prefix ? b_startswith(item(subjects, i), item(patterns, j)) : b_endswith(item(subjects, i), item(patterns, j));
      if (r == 0) return 0;
      if (booleanValue(r)) return boolv(true);
    }
  }
  return boolv(false);
}

function singleton(v: usize): usize {
  const a = newArray(1);
  arrayAppend(a, v);
  return a;
}

const DIGITS: string = "0123456789abcdefghijklmnopqrstuvwxyz";

export function b_format_int(n: usize, base: usize): usize {
  if (!isNum(n) || !isNum(base)) return typeError("format_int");
  // OPA matches the base's text: 2, 8, 10 or 16 (2.0 is refused).
  const b = isInt64(base) && numberTextLen(base) <= 2 ? int64Of(base) : 0;
  if (b != 2 && b != 8 && b != 10 && b != 16) {
    return builtinError("eval_type_error: format_int: operand 2 must be one of {2, 8, 10, 16}");
  }
  // OPA: NumberToFloat(input).Int(nil), printed in the base; an int64 is its own integer part.
  if (!isInt64(n)) {
    const text = formatIntegerPart(toFloat(n, "eval_builtin_error: format_int"), <u32>b);
    return str(text, formattedLength);
  }
  let x = int64Of(n);
  const negative = x < 0;
  if (negative) x = -x;
  const buf = malloc(72);
  let w: usize = 72;
  do {
    store<u8>(buf + --w, <u8>DIGITS.charCodeAt(<i32>(x % b)));
    x /= b;
  } while (x > 0);
  if (negative) store<u8>(buf + --w, 0x2d);
  return str(buf + w, 72 - w);
}

// ---- types ---------------------------------------------------------------------------------------

export function b_is_number(v: usize): usize {
  return boolv(typeOf(v) == NUMBER);
}

export function b_is_string(v: usize): usize {
  return boolv(typeOf(v) == STRING);
}

export function b_is_boolean(v: usize): usize {
  return boolv(typeOf(v) == BOOLEAN);
}

export function b_is_array(v: usize): usize {
  return boolv(typeOf(v) == ARRAY);
}

export function b_is_set(v: usize): usize {
  return boolv(typeOf(v) == SET);
}

export function b_is_object(v: usize): usize {
  return boolv(typeOf(v) == OBJECT);
}

export function b_is_null(v: usize): usize {
  return boolv(typeOf(v) == NULL);
}

export function b_type_name(v: usize): usize {
  const t = typeOf(v);
  if (t == NULL) return ascii("null");
  if (t == BOOLEAN) return ascii("boolean");
  if (t == NUMBER) return ascii("number");
  if (t == STRING) return ascii("string");
  if (t == ARRAY) return ascii("array");
  if (t == OBJECT) return ascii("object");
  return ascii("set");
}

// ---- JSON ----------------------------------------------------------------------------------------

export function b_json_marshal(v: usize): usize {
  const at = dumpJson(v);
  let n: usize = 0;
  while (load<u8>(at + n) != 0) n++;
  consumeBytes(n);
  return str(at, n);
}

export function b_json_unmarshal(s: usize): usize {
  if (!isStr(s)) return typeError("json.unmarshal");
  consumeBytes(stringLen(s));
  const v = parseJson(stringBytes(s), stringLen(s));
  if (v == 0) return builtinError("eval_builtin_error: json.unmarshal: invalid JSON");
  return v;
}

export function b_json_is_valid(s: usize): usize {
  if (!isStr(s)) return boolv(false);
  consumeBytes(stringLen(s));
  return boolv(parseJson(stringBytes(s), stringLen(s)) != 0);
}
