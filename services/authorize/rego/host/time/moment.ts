// Instants and wall clocks: a Moment is an int64 nanosecond instant with its wall-clock fields in
// a zone; fromWall goes the other way, as Go's time.Date (src/time/time.go) does.
// Copyright 2009 The Go Authors. All rights reserved. BSD-3-Clause: third_party/go-time/LICENSE.
import {
  civilFromDays,
  daysFromCivil,
  floorDiv,
  INT64_MAX,
  INT64_MIN,
  NS,
  rangeError,
  wallSeconds,
} from "./calendar.ts";
import type { Zone } from "./zone.ts";

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

/** Go's time.Date in a zone, as int64 nanoseconds; out of range is an error as OPA's toSafeUnixNano. */
export function fromWall(
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
