// Durations in Go's syntax ("1h30m", "-1.5s", "300ms"): a sign, then terms of a decimal number
// and a unit, summed as int64 nanoseconds; anything out of int64's range is invalid.
// Ported from Go's src/time/format.go (ParseDuration, leadingInt, leadingFraction).
// Copyright 2009 The Go Authors. All rights reserved. BSD-3-Clause: third_party/go-time/LICENSE.
import { NS } from "./calendar.ts";
import { isDigitAt } from "./layout.ts";

const DURATION_UNITS: Record<string, bigint> = {
  ns: 1n,
  us: 1000n,
  "\u00b5s": 1000n,
  "\u03bcs": 1000n,
  ms: 1_000_000n,
  s: NS,
  m: 60n * NS,
  h: 3600n * NS,
};

const LIMIT = 2n ** 63n;

/** Go's time.ParseDuration, to int64 nanoseconds. */
export function parseDuration(orig: string): bigint {
  const invalid = () => new Error(`time: invalid duration ${JSON.stringify(orig)}`);
  let s = orig;
  let neg = false;
  if (s !== "" && (s[0] === "-" || s[0] === "+")) {
    neg = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "0") return 0n;
  if (s === "") throw invalid();
  let d = 0n;
  while (s !== "") {
    const term = readTerm(s, orig, invalid);
    d += term.ns;
    if (d > LIMIT) throw invalid();
    s = term.rest;
  }
  if (neg) return -d;
  if (d > LIMIT - 1n) throw invalid();
  return d;
}

/** One `<decimal><unit>` term at the start of `s`, in nanoseconds. */
function readTerm(s: string, orig: string, invalid: () => Error): { ns: bigint; rest: string } {
  if (!(s[0] === "." || isDigitAt(s, 0))) throw invalid();
  const whole = leadingInt(s, invalid);
  let rest = s.slice(whole.digits);
  const fraction = rest[0] === "." ? leadingFraction(rest.slice(1)) : { value: 0n, scale: 1, digits: 0 };
  if (rest[0] === ".") rest = rest.slice(1 + fraction.digits);
  // "." alone is no number.
  if (whole.digits === 0 && fraction.digits === 0) throw invalid();
  let u = 0;
  while (u < rest.length && rest[u] !== "." && !isDigitAt(rest, u)) u++;
  if (u === 0) throw new Error(`time: missing unit in duration ${JSON.stringify(orig)}`);
  const unitName = rest.slice(0, u);
  const unit = DURATION_UNITS[unitName];
  if (unit === undefined) {
    throw new Error(`time: unknown unit ${JSON.stringify(unitName)} in duration ${JSON.stringify(orig)}`);
  }
  if (whole.value > LIMIT / unit) throw invalid();
  let ns = whole.value * unit;
  if (fraction.value > 0n) {
    // As Go: float64 arithmetic for the fraction, truncated.
    ns += BigInt(Math.trunc(Number(fraction.value) * (Number(unit) / fraction.scale)));
    if (ns > LIMIT) throw invalid();
  }
  return { ns, rest: rest.slice(u) };
}

/** Go's leadingInt: the leading digits' value (past int64's range is invalid). */
function leadingInt(s: string, invalid: () => Error): { value: bigint; digits: number } {
  let value = 0n;
  let i = 0;
  for (; isDigitAt(s, i); i++) {
    value = value * 10n + BigInt(s.charCodeAt(i) - 48);
    if (value > LIMIT) throw invalid();
  }
  return { value, digits: i };
}

/** Go's leadingFraction: the leading digits as value / scale; digits past int64's precision are dropped. */
function leadingFraction(s: string): { value: bigint; scale: number; digits: number } {
  let value = 0n;
  let scale = 1;
  let overflow = false;
  let i = 0;
  for (; isDigitAt(s, i); i++) {
    if (overflow) continue;
    const next = value * 10n + BigInt(s.charCodeAt(i) - 48);
    if (value > (LIMIT - 1n) / 10n || next > LIMIT) {
      overflow = true;
      continue;
    }
    value = next;
    scale *= 10;
  }
  return { value, scale, digits: i };
}
