// Calendar arithmetic on the proleptic Gregorian calendar: days since 1970-01-01 (Howard
// Hinnant's civil-date algorithms), month lengths, and the wall-clock normalisation of Go's
// time.Date (month 13 is January of the next year, day 0 the last of the previous month).
// daysIn and wallSeconds follow Go's src/time/time.go.
// Copyright 2009 The Go Authors. All rights reserved. BSD-3-Clause: third_party/go-time/LICENSE.

export const NS = 1_000_000_000n;
export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;

export const LONG_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
export const SHORT_DAYS = LONG_DAYS.map((d) => d.slice(0, 3));
export const LONG_MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];
export const SHORT_MONTHS = LONG_MONTHS.map((m) => m.slice(0, 3));

export function floorDiv(a: number, b: number): number {
  return Math.floor(a / b);
}

export function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = floorDiv(y, 400);
  const yoe = y - era * 400;
  const doy = floorDiv(153 * (month + (month > 2 ? -3 : 9)) + 2, 5) + day - 1;
  const doe = yoe * 365 + floorDiv(yoe, 4) - floorDiv(yoe, 100) + doy;
  return era * 146097 + doe - 719468;
}

export function civilFromDays(days: number): [number, number, number] {
  const z = days + 719468;
  const era = floorDiv(z, 146097);
  const doe = z - era * 146097;
  const yoe = floorDiv(doe - floorDiv(doe, 1460) + floorDiv(doe, 36524) - floorDiv(doe, 146096), 365);
  const doy = doe - (365 * yoe + floorDiv(yoe, 4) - floorDiv(yoe, 100));
  const mp = floorDiv(5 * doy + 2, 153);
  const d = doy - floorDiv(153 * mp + 2, 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

export function isLeap(year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
}

export function daysIn(month: number, year: number): number {
  if (month === 2) return isLeap(year) ? 29 : 28;
  return [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] as number;
}

/** Go's time.Date normalisation: seconds since the epoch of a wall clock read as UTC. */
export function wallSeconds(year: number, month: number, day: number, hour: number, min: number, sec: number): number {
  const m0 = month - 1;
  const y = year + floorDiv(m0, 12);
  const m = m0 - floorDiv(m0, 12) * 12 + 1;
  return (daysFromCivil(y, m, 1) + day - 1) * 86400 + hour * 3600 + min * 60 + sec;
}

export function rangeError(): Error {
  return new Error("time outside of valid range");
}

/** An instant as int64 nanoseconds; out of range is an error, as OPA's toSafeUnixNano. */
export function checkRange(ns: bigint): bigint {
  if (ns < INT64_MIN || ns > INT64_MAX) throw rangeError();
  return ns;
}
