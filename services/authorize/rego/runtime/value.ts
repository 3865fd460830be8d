// Rego values in linear memory, with Rego's ordering and equality.
//   null     [1]
//   boolean  [2][u32 0|1]
//   number   numbers.ts: its text (json.Number, printed as is), an int64 when the text is one
//   string   [4][u32 len][u32 bytes]
//   array    [5][u32 len][u32 cap][u32 items]
//   object   [6][u32 len][u32 cap][u32 keys][u32 values]   keys kept sorted (binary search)
//   set      [7][u32 len][u32 cap][u32 items]              items sorted, unique
import { consume, consumeBytes } from "./budget";
import { malloc } from "./memory";
import { compareNumbers } from "./numbers";

export const NULL: u8 = 1;
export const BOOLEAN: u8 = 2;
export const NUMBER: u8 = 3;
export const STRING: u8 = 4;
export const ARRAY: u8 = 5;
export const OBJECT: u8 = 6;
export const SET: u8 = 7;

// @ts-ignore: decorator
@inline export function typeOf(v: usize): u8 {
  return load<u8>(v);
}

export function newNull(): usize {
  const v = malloc(4);
  store<u32>(v, NULL);
  return v;
}

export function newBoolean(b: bool): usize {
  const v = malloc(8);
  store<u32>(v, BOOLEAN);
  store<u32>(v, b ? 1 : 0, 4);
  return v;
}

export function booleanValue(v: usize): bool {
  return load<u32>(v, 4) != 0;
}

export function newString(bytes: usize, len: u32): usize {
  const v = malloc(12);
  store<u32>(v, STRING);
  store<u32>(v, len, 4);
  store<u32>(v, <u32>bytes, 8);
  return v;
}

export function stringLen(v: usize): u32 {
  return load<u32>(v, 4);
}

export function stringBytes(v: usize): usize {
  return <usize>load<u32>(v, 8);
}

function newCollection(type: u8, cap: u32, slots: u32): usize {
  const v = malloc(16 + (slots == 2 ? 4 : 0));
  store<u32>(v, type);
  store<u32>(v, 0, 4);
  store<u32>(v, cap, 8);
  store<u32>(v, <u32>malloc(<usize>(cap == 0 ? 1 : cap) * 4), 12);
  if (slots == 2) store<u32>(v, <u32>malloc(<usize>(cap == 0 ? 1 : cap) * 4), 16);
  return v;
}

export function newArray(cap: u32): usize {
  return newCollection(ARRAY, cap, 1);
}

export function newSet(cap: u32): usize {
  return newCollection(SET, cap, 1);
}

export function newObject(cap: u32): usize {
  return newCollection(OBJECT, cap, 2);
}

// @ts-ignore: decorator
@inline export function length(v: usize): u32 {
  return load<u32>(v, 4);
}

export function item(v: usize, i: u32): usize {
  return <usize>load<u32>(<usize>load<u32>(v, 12) + <usize>i * 4);
}

export function objectKey(v: usize, i: u32): usize {
  return <usize>load<u32>(<usize>load<u32>(v, 12) + <usize>i * 4);
}

export function objectValue(v: usize, i: u32): usize {
  return <usize>load<u32>(<usize>load<u32>(v, 16) + <usize>i * 4);
}

/** Makes room for one more slot in each of the collection's arrays. */
function grow(v: usize, slots: u32): void {
  const len = length(v);
  const cap = load<u32>(v, 8);
  if (len < cap) return;
  const next = cap == 0 ? 4 : cap * 2;
  for (let s: u32 = 0; s < slots; s++) {
    const offset = 12 + s * 4;
    const fresh = malloc(<usize>next * 4);
    memory.copy(fresh, <usize>load<u32>(v + offset), <usize>len * 4);
    store<u32>(v + offset, <u32>fresh);
  }
  store<u32>(v, next, 8);
}

export function arrayAppend(arr: usize, value: usize): void {
  grow(arr, 1);
  const len = length(arr);
  store<u32>(<usize>load<u32>(arr, 12) + <usize>len * 4, <u32>value);
  store<u32>(arr, len + 1, 4);
}

/** Index of `key` in the sorted slot array, or -(insertion point) - 1. */
function search(items: usize, len: u32, key: usize): i32 {
  let lo: i32 = 0;
  let hi: i32 = <i32>len - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = compare(<usize>load<u32>(items + <usize>mid * 4), key);
    if (c == 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -(lo + 1);
}

/** Moving the slots after `at` is the one cost of building a set or object out of order (charged). */
function insertAt(items: usize, len: u32, at: u32, value: usize): void {
  consumeBytes(<usize>(len - at));
  memory.copy(items + <usize>(at + 1) * 4, items + <usize>at * 4, <usize>(len - at) * 4);
  store<u32>(items + <usize>at * 4, <u32>value);
}

export function setAdd(set: usize, value: usize): void {
  const found = search(<usize>load<u32>(set, 12), length(set), value);
  if (found >= 0) return;
  grow(set, 1);
  const len = length(set);
  insertAt(<usize>load<u32>(set, 12), len, <u32>(-found - 1), value);
  store<u32>(set, len + 1, 4);
}

/** Sets `key` to `value` (replacing an existing value). */
export function objectInsert(obj: usize, key: usize, value: usize): void {
  const found = search(<usize>load<u32>(obj, 12), length(obj), key);
  if (found >= 0) {
    store<u32>(<usize>load<u32>(obj, 16) + <usize>found * 4, <u32>value);
    return;
  }
  grow(obj, 2);
  const len = length(obj);
  const at = <u32>(-found - 1);
  insertAt(<usize>load<u32>(obj, 12), len, at, key);
  insertAt(<usize>load<u32>(obj, 16), len, at, value);
  store<u32>(obj, len + 1, 4);
}

/** The value under `key`, or 0 when absent. */
export function objectGet(obj: usize, key: usize): usize {
  const found = search(<usize>load<u32>(obj, 12), length(obj), key);
  return found >= 0 ? <usize>load<u32>(<usize>load<u32>(obj, 16) + <usize>found * 4) : 0;
}

export function setContains(set: usize, value: usize): bool {
  return search(<usize>load<u32>(set, 12), length(set), value) >= 0;
}

/** Rego's total order: null < boolean < number < string < array < object < set. */
export function compare(a: usize, b: usize): i32 {
  if (a == b) return 0;
  const ta = typeOf(a);
  const tb = typeOf(b);
  if (ta != tb) return ta < tb ? -1 : 1;
  switch (ta) {
    case NULL:
      return 0;
    case BOOLEAN: {
      const x = load<u32>(a, 4);
      const y = load<u32>(b, 4);
      return x == y ? 0 : x < y ? -1 : 1;
    }
    case NUMBER:
      return compareNumbers(a, b);
    case STRING: {
      const la = stringLen(a);
      const lb = stringLen(b);
      const n = la < lb ? la : lb;
      consumeBytes(<usize>n);
      const c = memory.compare(stringBytes(a), stringBytes(b), n);
      if (c != 0) return c < 0 ? -1 : 1;
      return la == lb ? 0 : la < lb ? -1 : 1;
    }
    case ARRAY:
    case SET: {
      const la = length(a);
      const lb = length(b);
      const n = la < lb ? la : lb;
      for (let i: u32 = 0; i < n; i++) {
        consume(1);
        const c = compare(item(a, i), item(b, i));
        if (c != 0) return c;
      }
      return la == lb ? 0 : la < lb ? -1 : 1;
    }
    default: {
      // Objects: by sorted keys, then by values in key order (as OPA does).
      const la = length(a);
      const lb = length(b);
      const n = la < lb ? la : lb;
      for (let i: u32 = 0; i < n; i++) {
        consume(1);
        const c = compare(objectKey(a, i), objectKey(b, i));
        if (c != 0) return c;
        const d = compare(objectValue(a, i), objectValue(b, i));
        if (d != 0) return d;
      }
      return la == lb ? 0 : la < lb ? -1 : 1;
    }
  }
}
