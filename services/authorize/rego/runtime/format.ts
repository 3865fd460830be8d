// Values as OPA prints them (ast.Value.String()): what sprintf's %v shows for composite values,
// and the tagged arguments the host's sprintf formats (rt_sprintf_args).
import { consumeBytes, consumeMany } from "./budget";
import { abortWith2 } from "./eval";
import { dumpNumber, emit, emitAscii, emitBytes, textStart, textValue } from "./json";
import { malloc } from "./memory";
import { isPrint, isPrintKnown } from "./unicode";
import { RUNE_ERROR, decodeRune, decodedWidth } from "./utf8";
import {
  ARRAY, BOOLEAN, NULL, NUMBER, OBJECT, STRING,
  arrayAppend, booleanValue, item, length, newArray, newString, objectKey, objectValue, stringBytes, stringLen, typeOf,
} from "./value";

const LOWER_HEX = "0123456789abcdef";

function emitHex(x: i32, digits: i32): void {
  for (let shift = (digits - 1) * 4; shift >= 0; shift -= 4) emit(<u8>LOWER_HEX.charCodeAt((x >> shift) & 0xf));
}

/** A string as Go's strconv.Quote writes it (the form OPA prints strings inside composite values). */
function emitQuoted(bytes: usize, n: usize): void {
  consumeBytes(n);
  emit(0x22);
  const end = bytes + n;
  let at = bytes;
  while (at < end) {
    const r = decodeRune(at, end);
    const width = decodedWidth;
    if (r == RUNE_ERROR && width == 1) {
      emitAscii("\\x");
      emitHex(<i32>load<u8>(at), 2);
    } else if (r == 0x22 || r == 0x5c) {
      emit(0x5c);
      emit(<u8>r);
    } else if (!isPrintKnown(r)) {
      abortWith2("eval_builtin_error: ", "a character assigned after Unicode 14.0 inside a composite value is not supported");
    } else if (isPrint(r)) {
      emitBytes(at, width);
    } else if (r == 0x07) emitAscii("\\a");
    else if (r == 0x08) emitAscii("\\b");
    else if (r == 0x0c) emitAscii("\\f");
    else if (r == 0x0a) emitAscii("\\n");
    else if (r == 0x0d) emitAscii("\\r");
    else if (r == 0x09) emitAscii("\\t");
    else if (r == 0x0b) emitAscii("\\v");
    else if (r < 0x20 || r == 0x7f) {
      emitAscii("\\x");
      emitHex(r, 2);
    } else if (r < 0x10000) {
      emitAscii("\\u");
      emitHex(r, 4);
    } else {
      emitAscii("\\U");
      emitHex(r, 8);
    }
    at += width;
  }
  emit(0x22);
}

/** OPA's ast.Value.String(): `[1, "a"]`, `{1, 2}`, `set()`, `{"a": 1}`, keys and elements in Rego order. */
function emitRego(v: usize): void {
  const t = typeOf(v);
  if (t == NULL) emitAscii("null");
  else if (t == BOOLEAN) emitAscii(booleanValue(v) ? "true" : "false");
  else if (t == NUMBER) dumpNumber(v);
  else if (t == STRING) emitQuoted(stringBytes(v), stringLen(v));
  else {
    const n = length(v);
    consumeMany(n);
    if (t == ARRAY) emit(0x5b);
    else if (t == OBJECT || n > 0) emit(0x7b);
    else {
      emitAscii("set()");
      return;
    }
    for (let i: u32 = 0; i < n; i++) {
      if (i > 0) emitAscii(", ");
      if (t == OBJECT) {
        emitRego(objectKey(v, i));
        emitAscii(": ");
        emitRego(objectValue(v, i));
      } else emitRego(item(v, i));
    }
    emit(t == ARRAY ? 0x5d : 0x7d);
  }
}

/** The value's Rego text as a string value. */
export function regoText(v: usize): usize {
  textStart();
  emitRego(v);
  return textValue();
}

function tag(letter: string): usize {
  const at = malloc(1);
  store<u8>(at, <u8>letter.charCodeAt(0));
  return newString(at, 1);
}

function pair(a: usize, b: usize): usize {
  const out = newArray(2);
  arrayAppend(out, a);
  arrayAppend(out, b);
  return out;
}

/**
 * sprintf's operands for the host's formatter, each as OPA hands it to Go's fmt: a string as
 * ["s", s]; a number as ["n", its text] (the host formats it as Go formats an int, big.Int or
 * float64); any other value as ["s", its Rego text].
 */
export function rt_sprintf_args(args: usize): usize {
  if (typeOf(args) != ARRAY) {
    abortWith2("eval_type_error: sprintf: operand 2 must be array but got ", typeNameOf(args));
    return 0;
  }
  const n = length(args);
  consumeMany(n);
  const out = newArray(n);
  for (let i: u32 = 0; i < n; i++) {
    const a = item(args, i);
    const t = typeOf(a);
    if (t == STRING) arrayAppend(out, pair(tag("s"), a));
    else if (t == NUMBER) {
      textStart();
      dumpNumber(a);
      arrayAppend(out, pair(tag("n"), textValue()));
    } else arrayAppend(out, pair(tag("s"), regoText(a)));
  }
  return out;
}

/** OPA's type names, as its operand type errors print them. */
export function typeNameOf(v: usize): string {
  const t = typeOf(v);
  if (t == NULL) return "null";
  if (t == BOOLEAN) return "boolean";
  if (t == NUMBER) return "number";
  if (t == STRING) return "string";
  if (t == ARRAY) return "array";
  if (t == OBJECT) return "object";
  return "set";
}
