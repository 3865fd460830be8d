// Writing a moment by a layout, as Go's Time.Format: the layout's literal text is copied, each
// element is replaced by the moment's field in that element's form.
// Ported from Go's src/time/format.go (Time.Format, appendFormat).
// Copyright 2009 The Go Authors. All rights reserved. BSD-3-Clause: third_party/go-time/LICENSE.
import { LONG_DAYS, LONG_MONTHS, NS, SHORT_DAYS, SHORT_MONTHS } from "./calendar.ts";
import { type FractionStd, nextStdChunk, pad, type Std } from "./layout.ts";
import type { Moment } from "./moment.ts";
import { formatOffset, formatZoneName } from "./zone.ts";

/** Go's Time.Format. */
export function formatTime(m: Moment, layout: string): string {
  let out = "";
  let rest = layout;
  for (;;) {
    const { prefix, std, suffix } = nextStdChunk(rest);
    out += prefix;
    if (!std) return out;
    out += formatElement(m, std);
    rest = suffix;
  }
}

function formatElement(m: Moment, std: Std): string {
  switch (std.k) {
    case "Year":
      return pad(m.year % 100, 2);
    case "LongYear":
      return pad(m.year, 4);
    case "Month":
      return SHORT_MONTHS[m.month - 1] as string;
    case "LongMonth":
      return LONG_MONTHS[m.month - 1] as string;
    case "NumMonth":
      return String(m.month);
    case "ZeroMonth":
      return pad(m.month, 2);
    case "WeekDay":
      return SHORT_DAYS[m.weekday] as string;
    case "LongWeekDay":
      return LONG_DAYS[m.weekday] as string;
    case "Day":
      return String(m.day);
    case "UnderDay":
      return String(m.day).padStart(2, " ");
    case "ZeroDay":
      return pad(m.day, 2);
    case "UnderYearDay":
      return String(m.yday).padStart(3, " ");
    case "ZeroYearDay":
      return pad(m.yday, 3);
    default:
      return formatClockElement(m, std);
  }
}

function formatClockElement(m: Moment, std: Std): string {
  switch (std.k) {
    case "Hour":
      return pad(m.hour, 2);
    case "Hour12":
      return String(hour12(m.hour));
    case "ZeroHour12":
      return pad(hour12(m.hour), 2);
    case "Minute":
      return String(m.minute);
    case "ZeroMinute":
      return pad(m.minute, 2);
    case "Second":
      return String(m.second);
    case "ZeroSecond":
      return pad(m.second, 2);
    case "PM":
      return m.hour >= 12 ? "PM" : "AM";
    case "pm":
      return m.hour >= 12 ? "pm" : "am";
    case "TZ":
      return formatZoneName(m.zone, Number(m.ns / NS), m.offset);
    case "FracSecond0":
    case "FracSecond9":
      return formatFraction(m.nanos, std);
    default:
      return formatOffset(std.k as Parameters<typeof formatOffset>[0], m.offset);
  }
}

function hour12(hour: number): number {
  return hour % 12 === 0 ? 12 : hour % 12;
}

/** ".000" writes that many digits; ".999" as many as needed, none (nor the separator) for a whole second. */
function formatFraction(nanos: number, std: FractionStd): string {
  const trim = std.k === "FracSecond9";
  if (trim && (std.digits === 0 || nanos === 0)) return "";
  let digits = pad(nanos, 9);
  if (std.digits < 9) digits = digits.slice(0, std.digits);
  if (trim) digits = digits.replace(/0+$/, "");
  return digits !== "" || !trim ? std.sep + digits : "";
}
