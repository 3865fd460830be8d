// Zones: Go's time.LoadLocation over Intl's time zone data (IANA names; "" and "UTC" are UTC,
// "Local" the process zone), and the zone elements of layouts — abbreviations ("MST") and
// numeric offsets ("-07:00", "Z0700") as time.Parse reads them and Time.Format writes them.
// parseTimeZone, parseSignedOffset and the offset parts of parse and appendFormat are ported
// from Go's src/time/format.go.
// Copyright 2009 The Go Authors. All rights reserved. BSD-3-Clause: third_party/go-time/LICENSE.
import { wallSeconds } from "./calendar.ts";
import { bad, getnum } from "./fields.ts";
import { type OffsetStd, pad } from "./layout.ts";

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

// ---- reading zone elements (time.Parse) ---------------------------------------------------------

/** The MST element: "UTC", or an abbreviation Go recognises (the instant stays the wall clock read as UTC). */
export function readZoneName(value: string): { rest: string; utc: boolean } {
  if (value.startsWith("UTC")) return { rest: value.slice(3), utc: true };
  // Go resolves an abbreviation in the local zone (UTC for OPA here) or fabricates a zone around
  // the wall clock: either way the instant is the wall clock read as UTC, unless a numeric offset
  // was also given.
  const n = parseTimeZone(value);
  if (n === 0) throw bad();
  return { rest: value.slice(n), utc: false };
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

/** Go's parseSignedOffset: the length of "+3", "-12" after GMT; 0 if there is none. */
function signedOffsetLength(value: string): number {
  if (value[0] !== "+" && value[0] !== "-") return 0;
  const m = /^\d+/.exec(value.slice(1));
  if (!m || Number(m[0]) > 12) return 0;
  return 1 + m[0].length;
}

/** A numeric offset as read: seconds east of UTC, or "Z" for UTC; `range` names a field out of range. */
export interface OffsetRead {
  rest: string;
  offset: number | "Z";
  range: string;
}

/** Where a form's fields are: total length, the positions of its colons, and where minutes and seconds start. */
interface OffsetForm {
  length: number;
  colons: number[];
  minutes?: number;
  seconds?: number;
}

const OFFSET_FORMS = {
  short: { length: 3, colons: [] }, // -07
  plain: { length: 5, colons: [], minutes: 3 }, // -0700
  colon: { length: 6, colons: [3], minutes: 4 }, // -07:00
  seconds: { length: 7, colons: [], minutes: 3, seconds: 5 }, // -070000
  colonSeconds: { length: 9, colons: [3, 6], minutes: 4, seconds: 7 }, // -07:00:00
} satisfies Record<string, OffsetForm>;

function offsetForm(k: OffsetStd["k"]): OffsetForm {
  const colon = k.includes("Colon");
  if (k.includes("Seconds")) return colon ? OFFSET_FORMS.colonSeconds : OFFSET_FORMS.seconds;
  if (colon) return OFFSET_FORMS.colon;
  return k.includes("Short") ? OFFSET_FORMS.short : OFFSET_FORMS.plain;
}

/** A numeric zone offset element; the ISO 8601 forms also read "Z". */
export function readOffset(k: OffsetStd["k"], value: string): OffsetRead {
  if (k.startsWith("ISO8601") && value[0] === "Z") return { rest: value.slice(1), offset: "Z", range: "" };
  const form = offsetForm(k);
  if (value.length < form.length || form.colons.some((at) => value[at] !== ":")) throw bad();
  const field = (at: number | undefined) => (at === undefined ? 0 : getnum(value.slice(at, at + 2), true)[0]);
  const [hours, minutes, seconds] = [field(1), field(form.minutes), field(form.seconds)];
  const range = offsetRangeError(hours, minutes, seconds);
  const offset = (hours * 60 + minutes) * 60 + seconds;
  const sign = value[0];
  if (sign !== "+" && sign !== "-") throw bad();
  return { rest: value.slice(form.length), offset: sign === "+" ? offset : -offset, range };
}

/** As Go, the last field out of range is the one reported. */
function offsetRangeError(hours: number, minutes: number, seconds: number): string {
  if (seconds > 60) return "time zone offset second";
  if (minutes > 60) return "time zone offset minute";
  if (hours > 24) return "time zone offset hour";
  return "";
}

// ---- writing zone elements (Time.Format) --------------------------------------------------------

/** The MST element: the zone's abbreviation, or the offset as -0700 when it has none. */
export function formatZoneName(zone: Zone, epochSec: number, offset: number): string {
  const name = zone.nameAt(epochSec);
  if (name) return name;
  const minutes = Math.trunc(offset / 60);
  const abs = Math.abs(minutes);
  return `${minutes < 0 ? "-" : "+"}${pad(Math.trunc(abs / 60), 2)}${pad(abs % 60, 2)}`;
}

/** A numeric offset element; the ISO 8601 forms write "Z" for UTC. */
export function formatOffset(k: OffsetStd["k"], offset: number): string {
  if (offset === 0 && k.startsWith("ISO8601")) return "Z";
  // As Go: the sign is that of the whole minutes, and the seconds are negated along with them (an
  // offset under a minute west, as some LMT offsets, prints "+0000-52" like Go's).
  const west = Math.trunc(offset / 60) < 0;
  const minutes = Math.abs(Math.trunc(offset / 60));
  const seconds = west ? -offset : offset;
  const form = offsetForm(k);
  const separator = form.colons.length > 0 ? ":" : "";
  let out = `${west ? "-" : "+"}${pad(Math.trunc(minutes / 60), 2)}`;
  if (form.minutes !== undefined) out += separator + pad(minutes % 60, 2);
  if (form.seconds !== undefined) out += separator + pad(seconds % 60, 2);
  return out;
}
