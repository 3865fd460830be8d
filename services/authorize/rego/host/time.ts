// time.* as OPA (topdown/time.go) on Go's time package: timestamps are int64 nanoseconds since the
// epoch, layouts are Go reference layouts ("2006-01-02T15:04:05Z07:00"), durations Go's syntax.
// Zones come from Intl (IANA names; "" and "UTC" are UTC, "Local" the process zone).
import { type Builtin, intOperand, intResult, num, operandTypeError, str, TurnCache } from "./args.ts";

const NS = 1_000_000_000n;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

const LONG_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const SHORT_DAYS = LONG_DAYS.map((d) => d.slice(0, 3));
const LONG_MONTHS = [
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
const SHORT_MONTHS = LONG_MONTHS.map((m) => m.slice(0, 3));

/** Go's named layouts that OPA accepts in place of a layout string. */
const NAMED_LAYOUTS: Record<string, string> = {
  ANSIC: "Mon Jan _2 15:04:05 2006",
  UnixDate: "Mon Jan _2 15:04:05 MST 2006",
  RubyDate: "Mon Jan 02 15:04:05 -0700 2006",
  RFC822: "02 Jan 06 15:04 MST",
  RFC822Z: "02 Jan 06 15:04 -0700",
  RFC850: "Monday, 02-Jan-06 15:04:05 MST",
  RFC1123: "Mon, 02 Jan 2006 15:04:05 MST",
  RFC1123Z: "Mon, 02 Jan 2006 15:04:05 -0700",
  RFC3339: "2006-01-02T15:04:05Z07:00",
  RFC3339Nano: "2006-01-02T15:04:05.999999999Z07:00",
};

// ---------------------------------------------------------------------------------------------
// Calendar arithmetic (proleptic Gregorian, days since 1970-01-01)

function floorDiv(a: number, b: number): number {
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

function civilFromDays(days: number): [number, number, number] {
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

function isLeap(year: number): boolean {
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
}

function daysIn(month: number, year: number): number {
  if (month === 2) return isLeap(year) ? 29 : 28;
  return [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1] as number;
}

/** Go's time.Date normalisation: seconds since the epoch of a wall clock read as UTC. */
function wallSeconds(year: number, month: number, day: number, hour: number, min: number, sec: number): number {
  const m0 = month - 1;
  const y = year + floorDiv(m0, 12);
  const m = m0 - floorDiv(m0, 12) * 12 + 1;
  return (daysFromCivil(y, m, 1) + day - 1) * 86400 + hour * 3600 + min * 60 + sec;
}

// ---------------------------------------------------------------------------------------------
// Zones

export interface Zone {
  /** Offset east of UTC, in seconds, at an instant (seconds since the epoch). */
  offsetAt(epochSec: number): number;
  /** The zone abbreviation at an instant ("UTC", "CET", ...), as Go's MST layout element prints it. */
  nameAt(epochSec: number): string;
}

export const UTC: Zone = { offsetAt: () => 0, nameAt: () => "UTC" };

// Intl covers years ±270000; beyond, no valid int64 nanosecond timestamp exists anyway.
const INTL_LIMIT_SEC = 8.64e12;

class IntlZone implements Zone {
  readonly #parts: Intl.DateTimeFormat;
  readonly #names: Intl.DateTimeFormat[];

  constructor(name: string) {
    this.#parts = new Intl.DateTimeFormat("en-US", {
      timeZone: name,
      hourCycle: "h23",
      era: "short",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    this.#names = ["en-US", "en-GB"].map(
      (locale) => new Intl.DateTimeFormat(locale, { timeZone: name, timeZoneName: "short" }),
    );
  }

  offsetAt(epochSec: number): number {
    if (Math.abs(epochSec) > INTL_LIMIT_SEC) return 0;
    const fields: Record<string, string> = {};
    for (const p of this.#parts.formatToParts(new Date(epochSec * 1000))) fields[p.type] = p.value;
    let year = Number(fields.year);
    if (fields.era === "BC" || fields.era === "B") year = 1 - year;
    const wall = wallSeconds(
      year,
      Number(fields.month),
      Number(fields.day),
      Number(fields.hour),
      Number(fields.minute),
      Number(fields.second),
    );
    return wall - Math.floor(epochSec);
  }

  // Go prints the tz database abbreviation. Intl has no such field: its short names in en-US or
  // en-GB match the common ones (EST, CET, BST); otherwise the tz database's own numeric form.
  nameAt(epochSec: number): string {
    const date = new Date(Math.max(-INTL_LIMIT_SEC, Math.min(INTL_LIMIT_SEC, epochSec)) * 1000);
    for (const f of this.#names) {
      const name = f.formatToParts(date).find((p) => p.type === "timeZoneName")?.value ?? "";
      if (/^[A-Z]{3,5}$/.test(name) && name !== "GMT") return name;
      if (name === "GMT" && this.offsetAt(epochSec) === 0) return "GMT";
    }
    const offset = this.offsetAt(epochSec);
    const abs = Math.abs(offset);
    const hh = String(Math.floor(abs / 3600)).padStart(2, "0");
    const mm = Math.floor(abs / 60) % 60;
    return `${offset < 0 ? "-" : "+"}${hh}${mm ? String(mm).padStart(2, "0") : ""}`;
  }
}

const zones = new Map<string, Zone>();

/** Go's time.LoadLocation over Intl's time zone data. */
export function loadZone(name: string): Zone {
  if (name === "" || name === "UTC") return UTC;
  const key = name === "Local" ? Intl.DateTimeFormat().resolvedOptions().timeZone : name;
  let zone = zones.get(key);
  if (!zone) {
    // Intl also reads offsets ("+01:00"); Go's LoadLocation reads only zone names.
    if (/^[+-]/.test(key)) throw new Error(`unknown time zone ${name}`);
    try {
      zone = key === "UTC" ? UTC : new IntlZone(key);
    } catch {
      throw new Error(`unknown time zone ${name}`);
    }
    zones.set(key, zone);
  }
  return zone;
}

/** A moment in a zone, with its wall clock fields. */
export interface Moment {
  ns: bigint;
  zone: Zone;
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  nanos: number;
  weekday: number;
  yday: number;
  offset: number;
}

export function moment(ns: bigint, zone: Zone): Moment {
  let sec = ns / NS;
  let nanos = ns - sec * NS;
  if (nanos < 0n) {
    sec -= 1n;
    nanos += NS;
  }
  const epochSec = Number(sec);
  const offset = zone.offsetAt(epochSec);
  const local = epochSec + offset;
  const days = floorDiv(local, 86400);
  const secOfDay = local - days * 86400;
  const [year, month, day] = civilFromDays(days);
  return {
    ns,
    zone,
    year,
    month,
    day,
    hour: floorDiv(secOfDay, 3600),
    minute: floorDiv(secOfDay, 60) % 60,
    second: secOfDay % 60,
    nanos: Number(nanos),
    weekday: (((days + 4) % 7) + 7) % 7,
    yday: days - daysFromCivil(year, 1, 1) + 1,
    offset,
  };
}

function rangeError(): Error {
  return new Error("time outside of valid range");
}

/** Go's time.Date in a zone, as int64 nanoseconds; out of range is an error as OPA's toSafeUnixNano. */
function fromWall(
  zone: Zone,
  year: number,
  month: number,
  day: number,
  hour: number,
  min: number,
  sec: number,
  nanos: number,
): bigint {
  const wall = wallSeconds(year, month, day, hour, min, sec);
  if (!Number.isFinite(wall) || Math.abs(wall) > 1e11) throw rangeError();
  // As Go: the offset at the wall time read as UTC, corrected if that lands in another period.
  let offset = zone.offsetAt(wall);
  if (offset !== 0) {
    const other = zone.offsetAt(wall - offset);
    if (other !== offset) offset = other;
  }
  const ns = BigInt(wall - offset) * NS + BigInt(nanos);
  if (ns < INT64_MIN || ns > INT64_MAX) throw rangeError();
  return ns;
}

function checkRange(ns: bigint): bigint {
  if (ns < INT64_MIN || ns > INT64_MAX) throw rangeError();
  return ns;
}

// ---------------------------------------------------------------------------------------------
// Timestamp operands: ns, [ns, tz] or [ns, tz, layout] (OPA's tzTime)

const TIME_OPERAND = "either number (ns) or [number (ns), string (tz)]";

interface TzTime {
  m: Moment;
  layout: string;
}

function tzTime(v: unknown): TzTime {
  let n: unknown = v;
  let zone = UTC;
  let layout = "";
  if (Array.isArray(v)) {
    if (v.length === 0) throw operandTypeError(1, v, TIME_OPERAND);
    n = num(v[0], 1);
    if (v.length > 1) zone = loadZone(str(v[1], 1));
    if (v.length > 2) layout = str(v[2], 1);
  } else if (typeof v !== "number") {
    throw operandTypeError(1, v, TIME_OPERAND);
  }
  const value = num(n, 1);
  if (!Number.isInteger(value)) throw new Error("timestamp too big");
  const ns = intOperand(value, 1);
  if (ns < INT64_MIN || ns > INT64_MAX) throw new Error("timestamp too big");
  return { m: moment(ns, zone), layout };
}

// ---------------------------------------------------------------------------------------------
// Go layouts: the tokenizer (time.nextStdChunk), Format and Parse

type Std =
  | { k: "LongMonth" | "Month" | "NumMonth" | "ZeroMonth" | "LongWeekDay" | "WeekDay" }
  | { k: "Day" | "UnderDay" | "ZeroDay" | "UnderYearDay" | "ZeroYearDay" }
  | { k: "Hour" | "Hour12" | "ZeroHour12" | "Minute" | "ZeroMinute" | "Second" | "ZeroSecond" }
  | { k: "LongYear" | "Year" | "PM" | "pm" | "TZ" }
  | { k: "ISO8601TZ" | "ISO8601SecondsTZ" | "ISO8601ShortTZ" | "ISO8601ColonTZ" | "ISO8601ColonSecondsTZ" }
  | { k: "NumTZ" | "NumSecondsTz" | "NumShortTZ" | "NumColonTZ" | "NumColonSecondsTZ" }
  | { k: "FracSecond0" | "FracSecond9"; digits: number; sep: string };

interface Chunk {
  prefix: string;
  std: Std | undefined;
  suffix: string;
}

const isDigitAt = (s: string, i: number) => i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57;
const startsWithLower = (s: string) => s.length > 0 && s.charCodeAt(0) >= 97 && s.charCodeAt(0) <= 122;

const ZERO_X: Std["k"][] = ["ZeroMonth", "ZeroDay", "ZeroHour12", "ZeroMinute", "ZeroSecond", "Year"];

function nextStdChunk(layout: string): Chunk {
  const at = (i: number, k: Std["k"], len: number): Chunk => ({
    prefix: layout.slice(0, i),
    std: { k } as Std,
    suffix: layout.slice(i + len),
  });
  for (let i = 0; i < layout.length; i++) {
    const rest = layout.slice(i);
    switch (layout[i]) {
      case "J":
        if (rest.startsWith("Jan")) {
          if (rest.startsWith("January")) return at(i, "LongMonth", 7);
          if (!startsWithLower(rest.slice(3))) return at(i, "Month", 3);
        }
        break;
      case "M":
        if (rest.startsWith("Mon")) {
          if (rest.startsWith("Monday")) return at(i, "LongWeekDay", 6);
          if (!startsWithLower(rest.slice(3))) return at(i, "WeekDay", 3);
        }
        if (rest.startsWith("MST")) return at(i, "TZ", 3);
        break;
      case "0":
        if (rest.length >= 2 && rest[1] !== undefined && rest[1] >= "1" && rest[1] <= "6") {
          return at(i, ZERO_X[Number(rest[1]) - 1] as Std["k"], 2);
        }
        if (rest.startsWith("002")) return at(i, "ZeroYearDay", 3);
        break;
      case "1":
        if (rest[1] === "5") return at(i, "Hour", 2);
        return at(i, "NumMonth", 1);
      case "2":
        if (rest.startsWith("2006")) return at(i, "LongYear", 4);
        return at(i, "Day", 1);
      case "_":
        if (rest[1] === "2") {
          // "_2006" is a literal "_" and a long year.
          if (rest.startsWith("_2006"))
            return { prefix: layout.slice(0, i + 1), std: { k: "LongYear" }, suffix: rest.slice(5) };
          return at(i, "UnderDay", 2);
        }
        if (rest.startsWith("__2")) return at(i, "UnderYearDay", 3);
        break;
      case "3":
        return at(i, "Hour12", 1);
      case "4":
        return at(i, "Minute", 1);
      case "5":
        return at(i, "Second", 1);
      case "P":
        if (rest[1] === "M") return at(i, "PM", 2);
        break;
      case "p":
        if (rest[1] === "m") return at(i, "pm", 2);
        break;
      case "-":
        if (rest.startsWith("-070000")) return at(i, "NumSecondsTz", 7);
        if (rest.startsWith("-07:00:00")) return at(i, "NumColonSecondsTZ", 9);
        if (rest.startsWith("-0700")) return at(i, "NumTZ", 5);
        if (rest.startsWith("-07:00")) return at(i, "NumColonTZ", 6);
        if (rest.startsWith("-07")) return at(i, "NumShortTZ", 3);
        break;
      case "Z":
        if (rest.startsWith("Z070000")) return at(i, "ISO8601SecondsTZ", 7);
        if (rest.startsWith("Z07:00:00")) return at(i, "ISO8601ColonSecondsTZ", 9);
        if (rest.startsWith("Z0700")) return at(i, "ISO8601TZ", 5);
        if (rest.startsWith("Z07:00")) return at(i, "ISO8601ColonTZ", 6);
        if (rest.startsWith("Z07")) return at(i, "ISO8601ShortTZ", 3);
        break;
      case ".":
      case ",":
        if (rest[1] === "0" || rest[1] === "9") {
          const ch = rest[1];
          let j = i + 1;
          while (j < layout.length && layout[j] === ch) j++;
          // Only a run of one digit not followed by another digit is a fractional second.
          if (!isDigitAt(layout, j)) {
            return {
              prefix: layout.slice(0, i),
              std: { k: ch === "0" ? "FracSecond0" : "FracSecond9", digits: j - (i + 1), sep: layout[i] as string },
              suffix: layout.slice(j),
            };
          }
        }
        break;
    }
  }
  return { prefix: layout, std: undefined, suffix: "" };
}

const pad = (n: number, width: number) => {
  const s = String(Math.abs(n)).padStart(width, "0");
  return n < 0 ? `-${s}` : s;
};

function formatOffset(std: Std["k"], offset: number): string {
  const iso = std.startsWith("ISO8601");
  if (offset === 0 && iso) return "Z";
  let zone = Math.trunc(offset / 60);
  let abs = offset;
  let out = "+";
  if (zone < 0) {
    out = "-";
    zone = -zone;
    abs = -abs;
  }
  out += pad(Math.trunc(zone / 60), 2);
  const colon = std.includes("Colon");
  if (colon) out += ":";
  if (std !== "NumShortTZ" && std !== "ISO8601ShortTZ") out += pad(zone % 60, 2);
  if (std.includes("Seconds")) {
    if (colon) out += ":";
    out += pad(abs % 60, 2);
  }
  return out;
}

/** Go's Time.Format. */
export function formatTime(m: Moment, layout: string): string {
  let out = "";
  let rest = layout;
  for (;;) {
    const { prefix, std, suffix } = nextStdChunk(rest);
    out += prefix;
    if (!std) break;
    rest = suffix;
    switch (std.k) {
      case "Year":
        out += pad(m.year % 100, 2);
        break;
      case "LongYear":
        out += pad(m.year, 4);
        break;
      case "Month":
        out += SHORT_MONTHS[m.month - 1];
        break;
      case "LongMonth":
        out += LONG_MONTHS[m.month - 1];
        break;
      case "NumMonth":
        out += m.month;
        break;
      case "ZeroMonth":
        out += pad(m.month, 2);
        break;
      case "WeekDay":
        out += SHORT_DAYS[m.weekday];
        break;
      case "LongWeekDay":
        out += LONG_DAYS[m.weekday];
        break;
      case "Day":
        out += m.day;
        break;
      case "UnderDay":
        out += m.day < 10 ? ` ${m.day}` : m.day;
        break;
      case "ZeroDay":
        out += pad(m.day, 2);
        break;
      case "UnderYearDay":
        out += String(m.yday).padStart(3, " ");
        break;
      case "ZeroYearDay":
        out += pad(m.yday, 3);
        break;
      case "Hour":
        out += pad(m.hour, 2);
        break;
      case "Hour12":
        out += m.hour % 12 === 0 ? 12 : m.hour % 12;
        break;
      case "ZeroHour12":
        out += pad(m.hour % 12 === 0 ? 12 : m.hour % 12, 2);
        break;
      case "Minute":
        out += m.minute;
        break;
      case "ZeroMinute":
        out += pad(m.minute, 2);
        break;
      case "Second":
        out += m.second;
        break;
      case "ZeroSecond":
        out += pad(m.second, 2);
        break;
      case "PM":
        out += m.hour >= 12 ? "PM" : "AM";
        break;
      case "pm":
        out += m.hour >= 12 ? "pm" : "am";
        break;
      case "TZ": {
        const name = m.zone.nameAt(Number(m.ns / NS));
        if (name) {
          out += name;
        } else {
          const zone = Math.trunc(m.offset / 60);
          out += `${zone < 0 ? "-" : "+"}${pad(Math.trunc(Math.abs(zone) / 60), 2)}${pad(Math.abs(zone) % 60, 2)}`;
        }
        break;
      }
      case "FracSecond0":
      case "FracSecond9": {
        const trim = std.k === "FracSecond9";
        if (trim && (std.digits === 0 || m.nanos === 0)) break;
        let digits = pad(m.nanos, 9);
        if (std.digits < 9) digits = digits.slice(0, std.digits);
        if (trim) digits = digits.replace(/0+$/, "");
        if (digits !== "" || !trim) out += std.sep + digits;
        break;
      }
      default:
        out += formatOffset(std.k, m.offset);
    }
  }
  return out;
}

class ParseError extends Error {}

const bad = () => new ParseError("bad value");

/** Go's getnum: one or two digits (two when fixed). */
function getnum(s: string, fixed: boolean): [number, string] {
  if (!isDigitAt(s, 0)) throw bad();
  if (!isDigitAt(s, 1)) {
    if (fixed) throw bad();
    return [Number(s[0]), s.slice(1)];
  }
  return [Number(s.slice(0, 2)), s.slice(2)];
}

function getnum3(s: string, fixed: boolean): [number, string] {
  let n = 0;
  let i = 0;
  for (; i < 3 && isDigitAt(s, i); i++) n = n * 10 + Number(s[i]);
  if (i === 0 || (fixed && i !== 3)) throw bad();
  return [n, s.slice(i)];
}

/** Go's time.atoi: an optional sign and decimal digits, all of the string. */
function goAtoi(s: string): number {
  const m = /^([+-]?)(\d+)$/.exec(s);
  if (!m) throw bad();
  const n = Number(m[2]);
  if (n > 2 ** 63) throw bad();
  return m[1] === "-" ? -n : n;
}

/** Case-insensitive (ASCII) prefix match against a table, as Go's lookup. */
function lookup(tab: string[], val: string): [number, string] {
  for (let i = 0; i < tab.length; i++) {
    const v = tab[i] as string;
    if (val.length >= v.length && val.slice(0, v.length).toLowerCase() === v.toLowerCase()) {
      return [i, val.slice(v.length)];
    }
  }
  throw bad();
}

function skip(value: string, prefix: string): string {
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

function parseNanoseconds(value: string, nbytes: number): number {
  if (value[0] !== "." && value[0] !== ",") throw bad();
  const n = Math.min(nbytes, 10);
  const ns = goAtoi(value.slice(1, n));
  if (ns < 0) throw new ParseError("fractional second out of range");
  return ns * 10 ** (10 - n);
}

/** Go's parseTimeZone: the length of a zone abbreviation at the start of value, or 0. */
function parseTimeZone(value: string): number {
  if (value.length < 3) return 0;
  if (value.startsWith("ChST") || value.startsWith("MeST")) return 4;
  if (value.startsWith("GMT")) return 3 + signedOffsetLength(value.slice(3));
  if (value[0] === "+" || value[0] === "-") return signedOffsetLength(value);
  let upper = 0;
  while (upper < 6 && upper < value.length && (value[upper] as string) >= "A" && (value[upper] as string) <= "Z")
    upper++;
  switch (upper) {
    case 3:
      return 3;
    case 4:
      return value[3] === "T" || value.startsWith("WITA") ? 4 : 0;
    case 5:
      return value[4] === "T" ? 5 : 0;
    default:
      return 0;
  }
}

function signedOffsetLength(value: string): number {
  if (value[0] !== "+" && value[0] !== "-") return 0;
  const m = /^\d+/.exec(value.slice(1));
  if (!m || Number(m[0]) > 12) return 0;
  return 1 + m[0].length;
}

/** Go's time.Parse (in UTC, as OPA), to int64 nanoseconds. */
export function parseTime(layoutIn: string, valueIn: string): bigint {
  let layout = layoutIn;
  let value = valueIn;
  let year = 0;
  let month = -1;
  let day = -1;
  let yday = -1;
  let hour = 0;
  let min = 0;
  let sec = 0;
  let nsec = 0;
  let utc = false;
  let zoneOffset: number | undefined;
  let amSet = false;
  let pmSet = false;
  const fail = (element: string, extra = "") =>
    new Error(
      `parsing time ${JSON.stringify(valueIn)} as ${JSON.stringify(layoutIn)}: cannot parse ${element}${extra}`,
    );

  for (;;) {
    const { prefix, std, suffix } = nextStdChunk(layout);
    const stdstr = layout.slice(prefix.length, layout.length - suffix.length);
    try {
      value = skip(value, prefix);
    } catch {
      throw fail(JSON.stringify(value), ` as ${JSON.stringify(prefix)}`);
    }
    if (!std) {
      if (value.length !== 0) {
        throw new Error(`parsing time ${JSON.stringify(valueIn)}: extra text: ${JSON.stringify(value)}`);
      }
      break;
    }
    layout = suffix;
    const hold = value;
    let rangeErr = "";
    try {
      switch (std.k) {
        case "Year": {
          if (value.length < 2) throw bad();
          year = goAtoi(value.slice(0, 2));
          value = value.slice(2);
          year += year >= 69 ? 1900 : 2000;
          break;
        }
        case "LongYear":
          if (value.length < 4 || !isDigitAt(value, 0)) throw bad();
          year = goAtoi(value.slice(0, 4));
          value = value.slice(4);
          break;
        case "Month":
          [month, value] = lookup(SHORT_MONTHS, value);
          month++;
          break;
        case "LongMonth":
          [month, value] = lookup(LONG_MONTHS, value);
          month++;
          break;
        case "NumMonth":
        case "ZeroMonth":
          [month, value] = getnum(value, std.k === "ZeroMonth");
          if (month <= 0 || month > 12) rangeErr = "month";
          break;
        case "WeekDay":
          [, value] = lookup(SHORT_DAYS, value);
          break;
        case "LongWeekDay":
          [, value] = lookup(LONG_DAYS, value);
          break;
        case "Day":
        case "UnderDay":
        case "ZeroDay":
          if (std.k === "UnderDay" && value[0] === " ") value = value.slice(1);
          [day, value] = getnum(value, std.k === "ZeroDay");
          break;
        case "UnderYearDay":
        case "ZeroYearDay":
          for (let i = 0; i < 2; i++) if (std.k === "UnderYearDay" && value[0] === " ") value = value.slice(1);
          [yday, value] = getnum3(value, std.k === "ZeroYearDay");
          break;
        case "Hour":
          [hour, value] = getnum(value, false);
          if (hour < 0 || hour >= 24) rangeErr = "hour";
          break;
        case "Hour12":
        case "ZeroHour12":
          [hour, value] = getnum(value, std.k === "ZeroHour12");
          if (hour < 0 || hour > 12) rangeErr = "hour";
          break;
        case "Minute":
        case "ZeroMinute":
          [min, value] = getnum(value, std.k === "ZeroMinute");
          if (min < 0 || min >= 60) rangeErr = "minute";
          break;
        case "Second":
        case "ZeroSecond": {
          [sec, value] = getnum(value, std.k === "ZeroSecond");
          if (sec < 0 || sec >= 60) {
            rangeErr = "second";
            break;
          }
          // A fractional second may follow even when the layout has none.
          if (value.length >= 2 && (value[0] === "." || value[0] === ",") && isDigitAt(value, 1)) {
            const next = nextStdChunk(layout).std;
            if (next?.k === "FracSecond0" || next?.k === "FracSecond9") break;
            let n = 2;
            while (n < value.length && isDigitAt(value, n)) n++;
            nsec = parseNanoseconds(value, n);
            value = value.slice(n);
          }
          break;
        }
        case "PM":
        case "pm": {
          if (value.length < 2) throw bad();
          const p = value.slice(0, 2);
          value = value.slice(2);
          const [pm, am] = std.k === "PM" ? ["PM", "AM"] : ["pm", "am"];
          if (p === pm) pmSet = true;
          else if (p === am) amSet = true;
          else throw bad();
          break;
        }
        case "TZ": {
          if (value.startsWith("UTC")) {
            utc = true;
            value = value.slice(3);
            break;
          }
          const n = parseTimeZone(value);
          if (n === 0) throw bad();
          // Go resolves an abbreviation in the local zone (UTC for OPA here) or fabricates a zone
          // around the wall clock: either way the instant is the wall clock read as UTC, unless a
          // numeric offset was also given.
          value = value.slice(n);
          break;
        }
        case "FracSecond0": {
          const n = 1 + std.digits;
          if (value.length < n) throw bad();
          nsec = parseNanoseconds(value, n);
          value = value.slice(n);
          break;
        }
        case "FracSecond9": {
          if (value.length < 2 || (value[0] !== "." && value[0] !== ",") || !isDigitAt(value, 1)) break;
          let i = 0;
          while (i + 1 < value.length && isDigitAt(value, i + 1)) i++;
          nsec = parseNanoseconds(value, 1 + i);
          value = value.slice(1 + i);
          break;
        }
        default: {
          // Numeric zone offsets; the ISO 8601 forms also take "Z".
          if (std.k.startsWith("ISO8601") && value[0] === "Z") {
            value = value.slice(1);
            utc = true;
            break;
          }
          let sign: string;
          let hh: string;
          let mm = "00";
          let ss = "00";
          if (std.k === "ISO8601ColonTZ" || std.k === "NumColonTZ") {
            if (value.length < 6 || value[3] !== ":") throw bad();
            [sign, hh, mm] = [value.slice(0, 1), value.slice(1, 3), value.slice(4, 6)];
            value = value.slice(6);
          } else if (std.k === "NumShortTZ" || std.k === "ISO8601ShortTZ") {
            if (value.length < 3) throw bad();
            [sign, hh] = [value.slice(0, 1), value.slice(1, 3)];
            value = value.slice(3);
          } else if (std.k === "ISO8601ColonSecondsTZ" || std.k === "NumColonSecondsTZ") {
            if (value.length < 9 || value[3] !== ":" || value[6] !== ":") throw bad();
            [sign, hh, mm, ss] = [value.slice(0, 1), value.slice(1, 3), value.slice(4, 6), value.slice(7, 9)];
            value = value.slice(9);
          } else if (std.k === "ISO8601SecondsTZ" || std.k === "NumSecondsTz") {
            if (value.length < 7) throw bad();
            [sign, hh, mm, ss] = [value.slice(0, 1), value.slice(1, 3), value.slice(3, 5), value.slice(5, 7)];
            value = value.slice(7);
          } else {
            if (value.length < 5) throw bad();
            [sign, hh, mm] = [value.slice(0, 1), value.slice(1, 3), value.slice(3, 5)];
            value = value.slice(5);
          }
          const [h] = getnum(hh, true);
          const [mi] = getnum(mm, true);
          const [s] = getnum(ss, true);
          if (h > 24) rangeErr = "time zone offset hour";
          if (mi > 60) rangeErr = "time zone offset minute";
          if (s > 60) rangeErr = "time zone offset second";
          const off = (h * 60 + mi) * 60 + s;
          if (sign === "+") zoneOffset = off;
          else if (sign === "-") zoneOffset = -off;
          else throw bad();
        }
      }
    } catch (error) {
      if (!(error instanceof ParseError)) throw error;
      if (error.message !== "bad value") throw fail(JSON.stringify(hold), `: ${error.message}`);
      throw fail(JSON.stringify(hold), ` as ${JSON.stringify(stdstr)}`);
    }
    if (rangeErr) throw new Error(`parsing time ${JSON.stringify(valueIn)}: ${rangeErr} out of range`);
  }
  if (pmSet && hour < 12) hour += 12;
  else if (amSet && hour === 12) hour = 0;

  const outOfRange = (what: string) => new Error(`parsing time ${JSON.stringify(valueIn)}: ${what}`);
  if (yday >= 0) {
    let d = 0;
    let m = 0;
    let yd = yday;
    if (isLeap(year)) {
      if (yd === 31 + 29) {
        m = 2;
        d = 29;
      } else if (yd > 31 + 29) {
        yd--;
      }
    }
    if (yd < 1 || yd > 365) throw outOfRange("day-of-year out of range");
    if (m === 0) {
      const before = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];
      m = Math.floor((yd - 1) / 31) + 1;
      if ((before[m] as number) < yd) m++;
      d = yd - (before[m - 1] as number);
    }
    if (month >= 0 && month !== m) throw outOfRange("day-of-year does not match month");
    month = m;
    if (day >= 0 && day !== d) throw outOfRange("day-of-year does not match day");
    day = d;
  } else {
    if (month < 0) month = 1;
    if (day < 0) day = 1;
  }
  if (day < 1 || day > daysIn(month, year)) throw outOfRange("day out of range");

  // As Go: "Z"/"UTC" first, then a numeric offset; otherwise the wall clock is read as UTC.
  const wall = wallSeconds(year, month, day, hour, min, sec) - (utc ? 0 : (zoneOffset ?? 0));
  return checkRange(BigInt(wall) * NS + BigInt(nsec));
}

// ---------------------------------------------------------------------------------------------
// Go's time.ParseDuration

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

export function parseDuration(orig: string): bigint {
  const invalid = () => new Error(`time: invalid duration ${JSON.stringify(orig)}`);
  const LIMIT = 2n ** 63n;
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
    if (!(s[0] === "." || isDigitAt(s, 0))) throw invalid();
    // [0-9]*
    let v = 0n;
    let i = 0;
    for (; isDigitAt(s, i); i++) {
      v = v * 10n + BigInt(s.charCodeAt(i) - 48);
      if (v > LIMIT) throw invalid();
    }
    const pre = i > 0;
    s = s.slice(i);
    // (\.[0-9]*)?
    let f = 0n;
    let scale = 1;
    let post = false;
    if (s[0] === ".") {
      s = s.slice(1);
      let j = 0;
      let overflow = false;
      for (; isDigitAt(s, j); j++) {
        if (overflow) continue;
        if (f > (LIMIT - 1n) / 10n) {
          overflow = true;
          continue;
        }
        const y = f * 10n + BigInt(s.charCodeAt(j) - 48);
        if (y > LIMIT) {
          overflow = true;
          continue;
        }
        f = y;
        scale *= 10;
      }
      post = j > 0;
      s = s.slice(j);
    }
    if (!pre && !post) throw invalid();
    let u = 0;
    while (u < s.length && s[u] !== "." && !isDigitAt(s, u)) u++;
    if (u === 0) throw new Error(`time: missing unit in duration ${JSON.stringify(orig)}`);
    const unitName = s.slice(0, u);
    s = s.slice(u);
    const unit = DURATION_UNITS[unitName];
    if (unit === undefined) {
      throw new Error(`time: unknown unit ${JSON.stringify(unitName)} in duration ${JSON.stringify(orig)}`);
    }
    if (v > LIMIT / unit) throw invalid();
    v *= unit;
    if (f > 0n) {
      // As Go: float64 arithmetic for the fraction, truncated.
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > LIMIT) throw invalid();
    }
    d += v;
    if (d > LIMIT) throw invalid();
  }
  if (neg) return -d;
  if (d > LIMIT - 1n) throw invalid();
  return d;
}

// ---------------------------------------------------------------------------------------------
// The built-ins

// time.now_ns is the evaluation's start time in OPA: one value per evaluation (see TurnCache).
const now = new TurnCache<string, bigint>();

export function nowNs(): bigint {
  return now.get("now", () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n);
}

export const timeBuiltins: Record<string, Builtin> = {
  "time.now_ns": () => intResult(nowNs()),

  "time.parse_rfc3339_ns": (value) => intResult(parseTime(NAMED_LAYOUTS.RFC3339 as string, str(value, 1))),

  "time.parse_ns": (layout, value) => {
    const l = str(layout, 1);
    const v = str(value, 2);
    return intResult(parseTime(NAMED_LAYOUTS[l] ?? l, v));
  },

  "time.parse_duration_ns": (duration) => intResult(parseDuration(str(duration, 1))),

  "time.format": (x) => {
    const { m, layout } = tzTime(x);
    return formatTime(m, layout === "" ? (NAMED_LAYOUTS.RFC3339Nano as string) : (NAMED_LAYOUTS[layout] ?? layout));
  },

  "time.date": (x) => {
    const { m } = tzTime(x);
    return [m.year, m.month, m.day];
  },

  "time.clock": (x) => {
    const { m } = tzTime(x);
    return [m.hour, m.minute, m.second];
  },

  "time.weekday": (x) => LONG_DAYS[tzTime(x).m.weekday],

  "time.add_date": (x, years, months, days) => {
    const { m } = tzTime(x);
    const y = Number(intOperand(years, 2));
    const mo = Number(intOperand(months, 3));
    const d = Number(intOperand(days, 4));
    return intResult(fromWall(m.zone, m.year + y, m.month + mo, m.day + d, m.hour, m.minute, m.second, m.nanos));
  },

  "time.diff": (a, b) => {
    const t1 = tzTime(a).m;
    // As Go: the second time in the first one's zone, then the earlier one first.
    const t2 = moment(tzTime(b).m.ns, t1.zone);
    const [x, y] = t1.ns > t2.ns ? [t2, t1] : [t1, t2];
    let year = y.year - x.year;
    let month = y.month - x.month;
    let day = y.day - x.day;
    let hour = y.hour - x.hour;
    let min = y.minute - x.minute;
    let sec = y.second - x.second;
    if (sec < 0) {
      sec += 60;
      min--;
    }
    if (min < 0) {
      min += 60;
      hour--;
    }
    if (hour < 0) {
      hour += 24;
      day--;
    }
    if (day < 0) {
      day += daysIn(x.month, x.year);
      month--;
    }
    if (month < 0) {
      month += 12;
      year--;
    }
    return [year, month, day, hour, min, sec];
  },
};
