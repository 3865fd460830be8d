// time.* as OPA (topdown/time.go) on Go's time package: timestamps are int64 nanoseconds since the
// epoch, layouts are Go reference layouts ("2006-01-02T15:04:05Z07:00"), durations Go's syntax.
// Zones come from Intl (IANA names; "" and "UTC" are UTC, "Local" the process zone).
//
// Go's time.Parse, Time.Format, ParseDuration and the layout tokenizer are ported from Go's
// src/time/format.go into time/ (layout.ts, parse.ts, fields.ts, format.ts, zone.ts, duration.ts;
// calendar.ts and moment.ts follow time.go's Date and daysIn); this module holds the built-ins.
// Copyright 2009 The Go Authors. All rights reserved. Those ports are under Go's BSD-3-Clause
// license: third_party/go-time/LICENSE.
import {
  type Builtin,
  integerCandidates,
  intOperand,
  intResult,
  num,
  operandTypeError,
  sameForAll,
  str,
  TurnCache,
} from "./args.ts";
import { daysIn, INT64_MAX, INT64_MIN, LONG_DAYS } from "./time/calendar.ts";
import { parseDuration } from "./time/duration.ts";
import { formatTime } from "./time/format.ts";
import { NAMED_LAYOUTS } from "./time/layout.ts";
import { fromWall, type Moment, moment } from "./time/moment.ts";
import { parseTime } from "./time/parse.ts";
import { loadZone, UTC } from "./time/zone.ts";

// ---------------------------------------------------------------------------------------------
// Timestamp operands: ns, [ns, tz] or [ns, tz, layout] (OPA's tzTime)

const TIME_OPERAND = "either number (ns) or [number (ns), string (tz)]";

/**
 * A timestamp operand: its zone and layout, and the moments it may be. Beyond 2^53 ns (every
 * timestamp since 1970-04-15) the host receives the nanoseconds rounded, so it is the bounds of the
 * integers that round alike; a built-in answers only when both give the same result (sameForAll).
 */
interface TzTime {
  moments: Moment[];
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
  const bounds = integerCandidates(value, 1);
  if (bounds.some((ns) => ns < INT64_MIN || ns > INT64_MAX)) throw new Error("timestamp too big");
  return { moments: bounds.map((ns) => moment(ns, zone)), layout };
}

/** A result of a timestamp operand's moment, when the same for every moment it may be. */
function ofMoment<T>(x: unknown, pos: number, result: (m: Moment, layout: string) => T): T {
  const { moments, layout } = tzTime(x);
  return sameForAll(
    moments.map((m) => result(m, layout)),
    pos,
  );
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

  "time.format": (x) =>
    ofMoment(x, 1, (m, layout) =>
      formatTime(m, layout === "" ? (NAMED_LAYOUTS.RFC3339Nano as string) : (NAMED_LAYOUTS[layout] ?? layout)),
    ),

  "time.date": (x) => ofMoment(x, 1, (m) => [m.year, m.month, m.day]),

  "time.clock": (x) => ofMoment(x, 1, (m) => [m.hour, m.minute, m.second]),

  "time.weekday": (x) => ofMoment(x, 1, (m) => LONG_DAYS[m.weekday]),

  "time.add_date": (x, years, months, days) => {
    tzTime(x); // the timestamp's errors first, as OPA
    const y = Number(intOperand(years, 2));
    const mo = Number(intOperand(months, 3));
    const d = Number(intOperand(days, 4));
    return ofMoment(x, 1, (m) =>
      intResult(fromWall(m.zone, m.year + y, m.month + mo, m.day + d, m.hour, m.minute, m.second, m.nanos)),
    );
  },

  "time.diff": (a, b) => {
    const second = tzTime(b).moments;
    return ofMoment(a, 1, (t1) =>
      sameForAll(
        second.map((t) => {
          // As Go: the second time in the first one's zone, then the earlier one first.
          const t2 = moment(t.ns, t1.zone);
          return t1.ns > t2.ns ? wallClockDifference(t2, t1) : wallClockDifference(t1, t2);
        }),
        2,
      ),
    );
  },
};

/** [years, months, days, hours, minutes, seconds] from x to y (x ≤ y), each field borrowing from the next larger one. */
function wallClockDifference(x: Moment, y: Moment): number[] {
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
}
