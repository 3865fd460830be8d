// Reading a value by a layout, as Go's time.Parse (in UTC, as OPA): the layout's literal text
// must match, each element reads its field, then the fields make one instant — a day of the year
// resolves to month and day, AM/PM adjusts the hour, a zone offset (or "Z"/"UTC") shifts the wall
// clock.
// Ported from Go's src/time/format.go (Parse, parse).
// Copyright 2009 The Go Authors. All rights reserved. BSD-3-Clause: third_party/go-time/LICENSE.
import {
  checkRange,
  daysIn,
  isLeap,
  LONG_DAYS,
  LONG_MONTHS,
  NS,
  SHORT_DAYS,
  SHORT_MONTHS,
  wallSeconds,
} from "./calendar.ts";
import { bad, fractionLength, getnum, getnum3, goAtoi, lookup, ParseError, parseNanoseconds, skip } from "./fields.ts";
import { type FractionStd, isDigitAt, nextStdChunk, type OffsetStd, type Std } from "./layout.ts";
import { readOffset, readZoneName } from "./zone.ts";

/** Go's parse: the layout and value being read, and the fields read so far. */
interface ParseState {
  /** The whole layout and value, for error messages. */
  readonly source: { layout: string; value: string };
  /** The layout after the element being read, and the value still to read. */
  layout: string;
  value: string;
  /** A field read but out of range ("month", "hour", ...): reported once the element is read. */
  range: string;
  year: number;
  /** -1 until read. */
  month: number;
  day: number;
  yday: number;
  hour: number;
  min: number;
  sec: number;
  nsec: number;
  /** "Z" or "UTC" was read: the wall clock is UTC whatever offset was read. */
  utc: boolean;
  zoneOffset: number | undefined;
  am: boolean;
  pm: boolean;
}

/** Go's time.Parse (in UTC, as OPA), to int64 nanoseconds. */
export function parseTime(layout: string, value: string): bigint {
  const state = readFields(layout, value);
  return instantOf(state);
}

function readFields(layout: string, value: string): ParseState {
  const s: ParseState = {
    source: { layout, value },
    layout,
    value,
    range: "",
    year: 0,
    month: -1,
    day: -1,
    yday: -1,
    hour: 0,
    min: 0,
    sec: 0,
    nsec: 0,
    utc: false,
    zoneOffset: undefined,
    am: false,
    pm: false,
  };
  for (;;) {
    const { prefix, std, suffix } = nextStdChunk(s.layout);
    const element = s.layout.slice(prefix.length, s.layout.length - suffix.length);
    skipLiteral(s, prefix);
    if (!std) break;
    s.layout = suffix;
    readElement(s, std, element);
  }
  if (s.value.length !== 0) throw new Error(`parsing time ${quote(value)}: extra text: ${quote(s.value)}`);
  return s;
}

const quote = (s: string) => JSON.stringify(s);

function cannotParse(s: ParseState, what: string): Error {
  return new Error(`parsing time ${quote(s.source.value)} as ${quote(s.source.layout)}: cannot parse ${what}`);
}

function skipLiteral(s: ParseState, prefix: string): void {
  try {
    s.value = skip(s.value, prefix);
  } catch {
    throw cannotParse(s, `${quote(s.value)} as ${quote(prefix)}`);
  }
}

function readElement(s: ParseState, std: Std, element: string): void {
  const hold = s.value;
  try {
    READERS[std.k](s, std);
  } catch (error) {
    if (!(error instanceof ParseError)) throw error;
    if (error.message !== "bad value") throw cannotParse(s, `${quote(hold)}: ${error.message}`);
    throw cannotParse(s, `${quote(hold)} as ${quote(element)}`);
  }
  if (s.range) throw new Error(`parsing time ${quote(s.source.value)}: ${s.range} out of range`);
}

type Reader = (s: ParseState, std: Std) => void;

/** Reads a number of one or two digits (two when `fixed`). */
function takeNum(s: ParseState, fixed: boolean): number {
  const [n, rest] = getnum(s.value, fixed);
  s.value = rest;
  return n;
}

/** Reads a name from a table; its index. */
function takeName(s: ParseState, names: string[]): number {
  const [i, rest] = lookup(names, s.value);
  s.value = rest;
  return i;
}

function readYear(s: ParseState): void {
  if (s.value.length < 2) throw bad();
  const year = goAtoi(s.value.slice(0, 2));
  s.value = s.value.slice(2);
  s.year = year + (year >= 69 ? 1900 : 2000);
}

function readLongYear(s: ParseState): void {
  if (s.value.length < 4 || !isDigitAt(s.value, 0)) throw bad();
  s.year = goAtoi(s.value.slice(0, 4));
  s.value = s.value.slice(4);
}

function readNumMonth(s: ParseState, std: Std): void {
  s.month = takeNum(s, std.k === "ZeroMonth");
  if (s.month <= 0 || s.month > 12) s.range = "month";
}

function readDay(s: ParseState, std: Std): void {
  if (std.k === "UnderDay" && s.value[0] === " ") s.value = s.value.slice(1);
  s.day = takeNum(s, std.k === "ZeroDay");
}

function readYearDay(s: ParseState, std: Std): void {
  for (let i = 0; i < 2; i++) if (std.k === "UnderYearDay" && s.value[0] === " ") s.value = s.value.slice(1);
  const [yday, rest] = getnum3(s.value, std.k === "ZeroYearDay");
  s.yday = yday;
  s.value = rest;
}

function readHour(s: ParseState): void {
  s.hour = takeNum(s, false);
  if (s.hour < 0 || s.hour >= 24) s.range = "hour";
}

function readHour12(s: ParseState, std: Std): void {
  s.hour = takeNum(s, std.k === "ZeroHour12");
  if (s.hour < 0 || s.hour > 12) s.range = "hour";
}

function readMinute(s: ParseState, std: Std): void {
  s.min = takeNum(s, std.k === "ZeroMinute");
  if (s.min < 0 || s.min >= 60) s.range = "minute";
}

function readSecond(s: ParseState, std: Std): void {
  s.sec = takeNum(s, std.k === "ZeroSecond");
  if (s.sec < 0 || s.sec >= 60) {
    s.range = "second";
    return;
  }
  // A fractional second may follow even when the layout has none (unless it has one next).
  const n = fractionLength(s.value);
  if (n === 0) return;
  const next = nextStdChunk(s.layout).std;
  if (next?.k === "FracSecond0" || next?.k === "FracSecond9") return;
  s.nsec = parseNanoseconds(s.value, n);
  s.value = s.value.slice(n);
}

/** ".000": exactly that many digits. */
function readFixedFraction(s: ParseState, std: Std): void {
  const n = 1 + (std as FractionStd).digits;
  if (s.value.length < n) throw bad();
  s.nsec = parseNanoseconds(s.value, n);
  s.value = s.value.slice(n);
}

/** ".999": any number of digits, or none at all. */
function readOptionalFraction(s: ParseState): void {
  const n = fractionLength(s.value);
  if (n === 0) return;
  s.nsec = parseNanoseconds(s.value, n);
  s.value = s.value.slice(n);
}

function readMeridiem(s: ParseState, std: Std): void {
  if (s.value.length < 2) throw bad();
  const text = s.value.slice(0, 2);
  s.value = s.value.slice(2);
  const [pm, am] = std.k === "PM" ? ["PM", "AM"] : ["pm", "am"];
  if (text === pm) s.pm = true;
  else if (text === am) s.am = true;
  else throw bad();
}

function readZone(s: ParseState): void {
  const { rest, utc } = readZoneName(s.value);
  s.value = rest;
  if (utc) s.utc = true;
}

function readZoneOffset(s: ParseState, std: Std): void {
  const { rest, offset, range } = readOffset((std as OffsetStd).k, s.value);
  s.value = rest;
  if (offset === "Z") {
    s.utc = true;
    return;
  }
  s.zoneOffset = offset;
  s.range = range;
}

const READERS: Record<Std["k"], Reader> = {
  Year: readYear,
  LongYear: readLongYear,
  Month: (s) => {
    s.month = takeName(s, SHORT_MONTHS) + 1;
  },
  LongMonth: (s) => {
    s.month = takeName(s, LONG_MONTHS) + 1;
  },
  NumMonth: readNumMonth,
  ZeroMonth: readNumMonth,
  WeekDay: (s) => takeName(s, SHORT_DAYS),
  LongWeekDay: (s) => takeName(s, LONG_DAYS),
  Day: readDay,
  UnderDay: readDay,
  ZeroDay: readDay,
  UnderYearDay: readYearDay,
  ZeroYearDay: readYearDay,
  Hour: readHour,
  Hour12: readHour12,
  ZeroHour12: readHour12,
  Minute: readMinute,
  ZeroMinute: readMinute,
  Second: readSecond,
  ZeroSecond: readSecond,
  PM: readMeridiem,
  pm: readMeridiem,
  TZ: readZone,
  FracSecond0: readFixedFraction,
  FracSecond9: readOptionalFraction,
  ISO8601TZ: readZoneOffset,
  ISO8601SecondsTZ: readZoneOffset,
  ISO8601ShortTZ: readZoneOffset,
  ISO8601ColonTZ: readZoneOffset,
  ISO8601ColonSecondsTZ: readZoneOffset,
  NumTZ: readZoneOffset,
  NumSecondsTz: readZoneOffset,
  NumShortTZ: readZoneOffset,
  NumColonTZ: readZoneOffset,
  NumColonSecondsTZ: readZoneOffset,
};

/** The fields as one instant: the wall clock, shifted by the offset read (unless "Z" or "UTC" was). */
function instantOf(s: ParseState): bigint {
  const [month, day] = monthAndDay(s);
  if (day < 1 || day > daysIn(month, s.year)) throw outOfRange(s, "day out of range");
  const wall = wallSeconds(s.year, month, day, hour24(s), s.min, s.sec) - (s.utc ? 0 : (s.zoneOffset ?? 0));
  return checkRange(BigInt(wall) * NS + BigInt(s.nsec));
}

/** The hour on a 24-hour clock: 12 PM is noon, 12 AM midnight. */
function hour24(s: ParseState): number {
  if (s.pm && s.hour < 12) return s.hour + 12;
  if (s.am && s.hour === 12) return 0;
  return s.hour;
}

function outOfRange(s: ParseState, what: string): Error {
  return new Error(`parsing time ${quote(s.source.value)}: ${what}`);
}

/** Month and day: from the day of the year when one was read (and must agree with them), else as read (default 1). */
function monthAndDay(s: ParseState): [number, number] {
  if (s.yday < 0) return [s.month < 0 ? 1 : s.month, s.day < 0 ? 1 : s.day];
  const [month, day] = dayOfYear(s);
  if (s.month >= 0 && s.month !== month) throw outOfRange(s, "day-of-year does not match month");
  if (s.day >= 0 && s.day !== day) throw outOfRange(s, "day-of-year does not match day");
  return [month, day];
}

const DAYS_BEFORE = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];

function dayOfYear(s: ParseState): [number, number] {
  let yd = s.yday;
  if (isLeap(s.year)) {
    if (yd === 31 + 29) return [2, 29];
    if (yd > 31 + 29) yd--;
  }
  if (yd < 1 || yd > 365) throw outOfRange(s, "day-of-year out of range");
  let month = Math.floor((yd - 1) / 31) + 1;
  if ((DAYS_BEFORE[month] as number) < yd) month++;
  return [month, yd - (DAYS_BEFORE[month - 1] as number)];
}
