// JSON (RFC 8259) to values and back. Parsing fails with 0 (the ABI's "not JSON"); dumping writes
// canonical JSON: object keys in Rego order, sets as arrays, numbers as parsed when they came from JSON.
import { malloc } from "./memory";
import { newNumberText, numberTextLen, numberTextPtr } from "./numbers";
import { encodeRune } from "./utf8";
import {
  ARRAY, BOOLEAN, NULL, NUMBER, OBJECT, SET, STRING,
  arrayAppend, booleanValue, item, length, newArray, newBoolean, newNull, newObject, newString,
  objectInsert, objectKey, objectValue, stringBytes, stringLen, typeOf,
} from "./value";

let pos: usize = 0;
let end: usize = 0;
let depth: i32 = 0;
const MAX_DEPTH: i32 = 1000;

export function parseJson(addr: usize, len: usize): usize {
  pos = addr;
  end = addr + len;
  depth = 0;
  const v = parseValue();
  if (v == 0) return 0;
  skipSpace();
  return pos == end ? v : 0;
}

function skipSpace(): void {
  while (pos < end) {
    const c = load<u8>(pos);
    if (c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d) pos++;
    else break;
  }
}

function literal(word: string): bool {
  const n = <usize>word.length;
  if (pos + n > end) return false;
  for (let i: usize = 0; i < n; i++) {
    if (<i32>load<u8>(pos + i) != word.charCodeAt(<i32>i)) return false;
  }
  pos += n;
  return true;
}

function parseValue(): usize {
  skipSpace();
  if (pos >= end) return 0;
  const c = load<u8>(pos);
  if (c == 0x7b) return parseObject();
  if (c == 0x5b) return parseArray();
  if (c == 0x22) return parseString();
  if (c == 0x74) return literal("true") ? newBoolean(true) : 0;
  if (c == 0x66) return literal("false") ? newBoolean(false) : 0;
  if (c == 0x6e) return literal("null") ? newNull() : 0;
  if (c == 0x2d || (c >= 0x30 && c <= 0x39)) return parseNumber();
  return 0;
}

function parseArray(): usize {
  if (++depth > MAX_DEPTH) return 0;
  pos++;
  const arr = newArray(4);
  skipSpace();
  if (pos < end && load<u8>(pos) == 0x5d) {
    pos++;
    depth--;
    return arr;
  }
  for (;;) {
    const v = parseValue();
    if (v == 0) return 0;
    arrayAppend(arr, v);
    skipSpace();
    if (pos >= end) return 0;
    const c = load<u8>(pos++);
    if (c == 0x5d) break;
    if (c != 0x2c) return 0;
  }
  depth--;
  return arr;
}

function parseObject(): usize {
  if (++depth > MAX_DEPTH) return 0;
  pos++;
  const obj = newObject(4);
  skipSpace();
  if (pos < end && load<u8>(pos) == 0x7d) {
    pos++;
    depth--;
    return obj;
  }
  for (;;) {
    skipSpace();
    if (pos >= end || load<u8>(pos) != 0x22) return 0;
    const key = parseString();
    if (key == 0) return 0;
    skipSpace();
    if (pos >= end || load<u8>(pos++) != 0x3a) return 0;
    const v = parseValue();
    if (v == 0) return 0;
    objectInsert(obj, key, v);
    skipSpace();
    if (pos >= end) return 0;
    const c = load<u8>(pos++);
    if (c == 0x7d) break;
    if (c != 0x2c) return 0;
  }
  depth--;
  return obj;
}

function hexDigit(c: u32): i32 {
  if (c >= 0x30 && c <= 0x39) return <i32>(c - 0x30);
  if (c >= 0x61 && c <= 0x66) return <i32>(c - 0x61 + 10);
  if (c >= 0x41 && c <= 0x46) return <i32>(c - 0x41 + 10);
  return -1;
}

function hex4(at: usize): i32 {
  if (at + 4 > end) return -1;
  let v: i32 = 0;
  for (let i: usize = 0; i < 4; i++) {
    const d = hexDigit(load<u8>(at + i));
    if (d < 0) return -1;
    v = (v << 4) | d;
  }
  return v;
}

function parseString(): usize {
  pos++;
  // The decoded string is never longer than its source.
  const start = pos;
  let scan = pos;
  while (scan < end && load<u8>(scan) != 0x22) scan += load<u8>(scan) == 0x5c ? 2 : 1;
  if (scan >= end) return 0;
  const out = malloc(scan - start + 1);
  let n: usize = 0;
  while (pos < end) {
    const c = load<u8>(pos);
    if (c == 0x22) {
      pos++;
      return newString(out, <u32>n);
    }
    if (c < 0x20) return 0;
    if (c != 0x5c) {
      store<u8>(out + n++, c);
      pos++;
      continue;
    }
    if (pos + 1 >= end) return 0;
    const e = load<u8>(pos + 1);
    pos += 2;
    if (e == 0x22 || e == 0x5c || e == 0x2f) store<u8>(out + n++, e);
    else if (e == 0x62) store<u8>(out + n++, 0x08);
    else if (e == 0x66) store<u8>(out + n++, 0x0c);
    else if (e == 0x6e) store<u8>(out + n++, 0x0a);
    else if (e == 0x72) store<u8>(out + n++, 0x0d);
    else if (e == 0x74) store<u8>(out + n++, 0x09);
    else if (e == 0x75) {
      let cp = hex4(pos);
      if (cp < 0) return 0;
      pos += 4;
      if (cp >= 0xd800 && cp <= 0xdbff) {
        // A surrogate pair (RFC 8259 §7) becomes one code point; an unpaired surrogate becomes
        // U+FFFD, as OPA (Go's encoding/json) decodes it.
        const low = pos + 6 <= end && load<u8>(pos) == 0x5c && load<u8>(pos + 1) == 0x75 ? hex4(pos + 2) : -1;
        if (low >= 0xdc00 && low <= 0xdfff) {
          pos += 6;
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        } else cp = 0xfffd;
      } else if (cp >= 0xdc00 && cp <= 0xdfff) cp = 0xfffd;
      n += encodeRune(out + n, cp);
    } else return 0;
  }
  return 0;
}

function digits(): usize {
  const start = pos;
  while (pos < end && load<u8>(pos) >= 0x30 && load<u8>(pos) <= 0x39) pos++;
  return pos - start;
}

/** A JSON number (RFC 8259 grammar); its text is kept, as OPA keeps a json.Number. */
function parseNumber(): usize {
  const start = pos;
  if (load<u8>(pos) == 0x2d) pos++;
  const intStart = pos;
  const intDigits = digits();
  if (intDigits == 0) return 0;
  if (intDigits > 1 && load<u8>(intStart) == 0x30) return 0; // no leading zeros (RFC 8259 §6)
  if (pos < end && load<u8>(pos) == 0x2e) {
    pos++;
    if (digits() == 0) return 0;
  }
  if (pos < end && (load<u8>(pos) == 0x65 || load<u8>(pos) == 0x45)) {
    pos++;
    if (pos < end && (load<u8>(pos) == 0x2b || load<u8>(pos) == 0x2d)) pos++;
    if (digits() == 0) return 0;
  }
  return newNumberText(start, <u32>(pos - start));
}

// ---- dumping -------------------------------------------------------------------------------------

let out: usize = 0;
let outLen: usize = 0;
let outCap: usize = 0;

function reserve(n: usize): void {
  if (outLen + n <= outCap) return;
  let cap: usize = outCap == 0 ? 256 : outCap * 2;
  while (cap < outLen + n) cap *= 2;
  const fresh = malloc(cap);
  if (outLen > 0) memory.copy(fresh, out, outLen);
  out = fresh;
  outCap = cap;
}

/** Starts a text in the output buffer (JSON dumps and Rego text share it; one at a time). */
export function textStart(): void {
  out = 0;
  outLen = 0;
  outCap = 0;
}

/** The text written since textStart, as a string value. */
export function textValue(): usize {
  return newString(out, <u32>outLen);
}

export function emit(b: u8): void {
  reserve(1);
  store<u8>(out + outLen++, b);
}

export function emitBytes(src: usize, n: usize): void {
  reserve(n);
  memory.copy(out + outLen, src, n);
  outLen += n;
}

export function emitAscii(text: string): void {
  for (let i = 0; i < text.length; i++) emit(<u8>text.charCodeAt(i));
}

/** The value as NUL-terminated JSON; returns its address. */
export function dumpJson(v: usize): usize {
  textStart();
  dump(v);
  emit(0);
  return out;
}

function dump(v: usize): void {
  const t = typeOf(v);
  if (t == NULL) emitAscii("null");
  else if (t == BOOLEAN) emitAscii(booleanValue(v) ? "true" : "false");
  else if (t == NUMBER) dumpNumber(v);
  else if (t == STRING) dumpString(stringBytes(v), stringLen(v));
  else if (t == ARRAY || t == SET) {
    emit(0x5b);
    const n = length(v);
    for (let i: u32 = 0; i < n; i++) {
      if (i > 0) emit(0x2c);
      dump(item(v, i));
    }
    emit(0x5d);
  } else if (t == OBJECT) {
    emit(0x7b);
    const n = length(v);
    for (let i: u32 = 0; i < n; i++) {
      if (i > 0) emit(0x2c);
      const key = objectKey(v, i);
      // JSON keys are strings; other keys (Rego allows any) are dumped as their JSON text, quoted.
      if (typeOf(key) == STRING) dumpString(stringBytes(key), stringLen(key));
      else {
        const saved = outLen;
        dump(key);
        const text = malloc(outLen - saved);
        memory.copy(text, out + saved, outLen - saved);
        const n2 = outLen - saved;
        outLen = saved;
        dumpString(text, <u32>n2);
      }
      emit(0x3a);
      dump(objectValue(v, i));
    }
    emit(0x7d);
  }
}

const HEX = "0123456789abcdef";

function dumpString(bytes: usize, n: u32): void {
  emit(0x22);
  for (let i: u32 = 0; i < n; i++) {
    const c = load<u8>(bytes + i);
    if (c == 0x22 || c == 0x5c) {
      emit(0x5c);
      emit(c);
    } else if (c == 0x0a) emitAscii("\\n");
    else if (c == 0x0d) emitAscii("\\r");
    else if (c == 0x09) emitAscii("\\t");
    else if (c < 0x20) {
      emitAscii("\\u00");
      emit(<u8>HEX.charCodeAt(c >> 4));
      emit(<u8>HEX.charCodeAt(c & 0xf));
    } else emit(c);
  }
  emit(0x22);
}

export function dumpNumber(v: usize): void {
  emitBytes(numberTextPtr(v), numberTextLen(v));
}
