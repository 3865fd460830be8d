// Go's reference layouts ("2006-01-02T15:04:05Z07:00"): the tokenizer that finds the next layout
// element (Go's nextStdChunk), and the named layouts OPA accepts in place of a layout string.
// Ported from Go's src/time/format.go (nextStdChunk, std* constants, isDigit, startsWithLowerCase).
// Copyright 2009 The Go Authors. All rights reserved. BSD-3-Clause: third_party/go-time/LICENSE.

/** Go's named layouts that OPA accepts in place of a layout string. */
export const NAMED_LAYOUTS: Record<string, string> = {
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

/** A layout element (Go's std* constants); fractional seconds carry their digit count and separator. */
export type Std =
  | { k: "LongMonth" | "Month" | "NumMonth" | "ZeroMonth" | "LongWeekDay" | "WeekDay" }
  | { k: "Day" | "UnderDay" | "ZeroDay" | "UnderYearDay" | "ZeroYearDay" }
  | { k: "Hour" | "Hour12" | "ZeroHour12" | "Minute" | "ZeroMinute" | "Second" | "ZeroSecond" }
  | { k: "LongYear" | "Year" | "PM" | "pm" | "TZ" }
  | OffsetStd
  | FractionStd;

/** A numeric zone offset element; the ISO 8601 forms also read and write "Z". */
export type OffsetStd =
  | { k: "ISO8601TZ" | "ISO8601SecondsTZ" | "ISO8601ShortTZ" | "ISO8601ColonTZ" | "ISO8601ColonSecondsTZ" }
  | { k: "NumTZ" | "NumSecondsTz" | "NumShortTZ" | "NumColonTZ" | "NumColonSecondsTZ" };

export type FractionStd = { k: "FracSecond0" | "FracSecond9"; digits: number; sep: string };

/** A layout split at its next element: the literal text before it, the element, the layout after it. */
export interface Chunk {
  prefix: string;
  std: Std | undefined;
  suffix: string;
}

/** An element found at the start of a layout's rest: it begins `skip` characters in, and is `length` long. */
interface Element {
  std: Std;
  skip: number;
  length: number;
}

export const isDigitAt = (s: string, i: number) => i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57;
const startsWithLower = (s: string) => s.length > 0 && s.charCodeAt(0) >= 97 && s.charCodeAt(0) <= 122;

/** A number zero-padded to `width` digits, its sign in front. */
export const pad = (n: number, width: number) => {
  const s = String(Math.abs(n)).padStart(width, "0");
  return n < 0 ? `-${s}` : s;
};

const ZERO_X: Std["k"][] = ["ZeroMonth", "ZeroDay", "ZeroHour12", "ZeroMinute", "ZeroSecond", "Year"];

// Longest first: "-070000" before "-0700" before "-07".
const NUMERIC_ZONES: Array<[string, OffsetStd["k"]]> = [
  ["-070000", "NumSecondsTz"],
  ["-07:00:00", "NumColonSecondsTZ"],
  ["-0700", "NumTZ"],
  ["-07:00", "NumColonTZ"],
  ["-07", "NumShortTZ"],
];
const ISO_ZONES: Array<[string, OffsetStd["k"]]> = [
  ["Z070000", "ISO8601SecondsTZ"],
  ["Z07:00:00", "ISO8601ColonSecondsTZ"],
  ["Z0700", "ISO8601TZ"],
  ["Z07:00", "ISO8601ColonTZ"],
  ["Z07", "ISO8601ShortTZ"],
];

const element = (k: Std["k"], length: number, skip = 0): Element => ({ std: { k } as Std, skip, length });

/** Go's nextStdChunk: the layout split at its first element. */
export function nextStdChunk(layout: string): Chunk {
  for (let i = 0; i < layout.length; i++) {
    const found = elementAt(layout.slice(i));
    if (found) {
      const start = i + found.skip;
      return { prefix: layout.slice(0, start), std: found.std, suffix: layout.slice(start + found.length) };
    }
  }
  return { prefix: layout, std: undefined, suffix: "" };
}

function elementAt(rest: string): Element | undefined {
  switch (rest[0]) {
    case "J":
      return monthNameAt(rest);
    case "M":
      return weekDayNameAt(rest) ?? (rest.startsWith("MST") ? element("TZ", 3) : undefined);
    case "0":
      return zeroPaddedAt(rest);
    case "1":
      return rest[1] === "5" ? element("Hour", 2) : element("NumMonth", 1);
    case "2":
      return rest.startsWith("2006") ? element("LongYear", 4) : element("Day", 1);
    case "_":
      return underscoreAt(rest);
    case "3":
      return element("Hour12", 1);
    case "4":
      return element("Minute", 1);
    case "5":
      return element("Second", 1);
    case "P":
      return rest[1] === "M" ? element("PM", 2) : undefined;
    case "p":
      return rest[1] === "m" ? element("pm", 2) : undefined;
    case "-":
      return zoneAt(rest, NUMERIC_ZONES);
    case "Z":
      return zoneAt(rest, ISO_ZONES);
    case ".":
    case ",":
      return fractionAt(rest);
    default:
      return undefined;
  }
}

/** "Jan" and "January", unless the word goes on in lower case ("Janet"). */
function monthNameAt(rest: string): Element | undefined {
  if (!rest.startsWith("Jan")) return undefined;
  if (rest.startsWith("January")) return element("LongMonth", 7);
  return startsWithLower(rest.slice(3)) ? undefined : element("Month", 3);
}

/** "Mon" and "Monday", unless the word goes on in lower case ("Month"). */
function weekDayNameAt(rest: string): Element | undefined {
  if (!rest.startsWith("Mon")) return undefined;
  if (rest.startsWith("Monday")) return element("LongWeekDay", 6);
  return startsWithLower(rest.slice(3)) ? undefined : element("WeekDay", 3);
}

/** "01".."06" (zero-padded month, day, hour, minute, second; two-digit year) and "002". */
function zeroPaddedAt(rest: string): Element | undefined {
  const next = rest[1];
  if (next !== undefined && next >= "1" && next <= "6") return element(ZERO_X[Number(next) - 1] as Std["k"], 2);
  return rest.startsWith("002") ? element("ZeroYearDay", 3) : undefined;
}

/** "_2" (space-padded day), "__2" (day of year); "_2006" is a literal "_" and a long year. */
function underscoreAt(rest: string): Element | undefined {
  if (rest[1] === "2") return rest.startsWith("_2006") ? element("LongYear", 4, 1) : element("UnderDay", 2);
  return rest.startsWith("__2") ? element("UnderYearDay", 3) : undefined;
}

function zoneAt(rest: string, forms: Array<[string, OffsetStd["k"]]>): Element | undefined {
  const form = forms.find(([text]) => rest.startsWith(text));
  return form ? element(form[1], form[0].length) : undefined;
}

/** ".000" or ",999": only a run of one digit not followed by another digit is a fractional second. */
function fractionAt(rest: string): Element | undefined {
  const digit = rest[1];
  if (digit !== "0" && digit !== "9") return undefined;
  let end = 1;
  while (end < rest.length && rest[end] === digit) end++;
  if (isDigitAt(rest, end)) return undefined;
  const k = digit === "0" ? "FracSecond0" : "FracSecond9";
  return { std: { k, digits: end - 1, sep: rest[0] as string }, skip: 0, length: end };
}
