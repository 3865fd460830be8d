// Reading a value's fields as Go's time.Parse does: one- or two-digit numbers, three-digit days
// of the year, signed integers, names from a table (case-insensitively), literal layout text, and
// fractional seconds. A ParseError is turned into Go's "cannot parse" message by the caller.
// Ported from Go's src/time/format.go (getnum, getnum3, atoi, lookup, skip, parseNanoseconds).
// Copyright 2009 The Go Authors. All rights reserved. BSD-3-Clause: third_party/go-time/LICENSE.
import { isDigitAt } from "./layout.ts";

export class ParseError extends Error {}

/** Go's errBad: the value does not match the layout element. */
export const bad = () => new ParseError("bad value");

/** Go's getnum: one or two digits (two when fixed). */
export function getnum(s: string, fixed: boolean): [number, string] {
  if (!isDigitAt(s, 0)) throw bad();
  if (!isDigitAt(s, 1)) {
    if (fixed) throw bad();
    return [Number(s[0]), s.slice(1)];
  }
  return [Number(s.slice(0, 2)), s.slice(2)];
}

/** Go's getnum3: one to three digits (three when fixed). */
export function getnum3(s: string, fixed: boolean): [number, string] {
  let n = 0;
  let i = 0;
  for (; i < 3 && isDigitAt(s, i); i++) n = n * 10 + Number(s[i]);
  if (i === 0 || (fixed && i !== 3)) throw bad();
  return [n, s.slice(i)];
}

/** Go's time.atoi: an optional sign and decimal digits, all of the string. */
export function goAtoi(s: string): number {
  const m = /^([+-]?)(\d+)$/.exec(s);
  if (!m) throw bad();
  const n = Number(m[2]);
  if (n > 2 ** 63) throw bad();
  return m[1] === "-" ? -n : n;
}

/** Case-insensitive (ASCII) prefix match against a table, as Go's lookup. */
export function lookup(tab: string[], val: string): [number, string] {
  for (let i = 0; i < tab.length; i++) {
    const v = tab[i] as string;
    if (val.length >= v.length && val.slice(0, v.length).toLowerCase() === v.toLowerCase()) {
      return [i, val.slice(v.length)];
    }
  }
  throw bad();
}

/** Go's skip: the value after the layout's literal `prefix` (a space matches any run of spaces). */
export function skip(value: string, prefix: string): string {
  let v = value;
  let p = prefix;
  while (p.length > 0) {
    if (p[0] === " ") {
      if (v.length > 0 && v[0] !== " ") throw bad();
      p = p.replace(/^ +/, "");
      v = v.replace(/^ +/, "");
      continue;
    }
    if (v.length === 0 || v[0] !== p[0]) throw bad();
    p = p.slice(1);
    v = v.slice(1);
  }
  return v;
}

/** The length of a fractional second at the start of value (its separator and digits); 0 if none. */
export function fractionLength(value: string): number {
  if (value.length < 2 || (value[0] !== "." && value[0] !== ",") || !isDigitAt(value, 1)) return 0;
  let n = 2;
  while (isDigitAt(value, n)) n++;
  return n;
}

/** Go's parseNanoseconds: the first `nbytes` characters of value (".123") as nanoseconds. */
export function parseNanoseconds(value: string, nbytes: number): number {
  if (value[0] !== "." && value[0] !== ",") throw bad();
  const n = Math.min(nbytes, 10);
  const ns = goAtoi(value.slice(1, n));
  if (ns < 0) throw new ParseError("fractional second out of range");
  return ns * 10 ** (10 - n);
}
