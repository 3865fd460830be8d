// uuid.*, semver.*, bits.*, strings.replace_n and rand.intn as OPA.
import { randomBytes, randomInt, randomUUID } from "node:crypto";
import {
  type Builtin,
  bigIntOperand,
  compareStrings,
  HOST_WORK_LIMIT,
  intOperand,
  intResult,
  isObject,
  operandError,
  operandTypeError,
  str,
  TurnCache,
  tooMuchWork,
} from "./args.ts";

// ---------------------------------------------------------------------------------------------
// uuid (OPA internal/uuid over google/uuid)

// OPA caches uuid.rfc4122 per key for the evaluation: the same key gives the same UUID within one
// evaluation and a new one in the next (see TurnCache for how an evaluation is delimited here).
const uuids = new TurnCache<string, string>();

/** google/uuid's Parse: 36 chars, urn:uuid: + 36, {36} (braces unchecked, as Go), or 32 hex digits. */
function parseUUID(s: string): Uint8Array | undefined {
  let t = Buffer.from(s, "utf8").toString("latin1"); // byte offsets, as Go
  switch (t.length) {
    case 36:
      break;
    case 45:
      if (t.slice(0, 9).toLowerCase() !== "urn:uuid:") return undefined;
      t = t.slice(9);
      break;
    case 38:
      t = t.slice(1, 37);
      break;
    case 32:
      return /^[0-9a-fA-F]{32}$/.test(t) ? Uint8Array.from(Buffer.from(t, "hex")) : undefined;
    default:
      return undefined;
  }
  if (t[8] !== "-" || t[13] !== "-" || t[18] !== "-" || t[23] !== "-") return undefined;
  const hex = t.slice(0, 8) + t.slice(9, 13) + t.slice(14, 18) + t.slice(19, 23) + t.slice(24, 36);
  return /^[0-9a-fA-F]{32}$/.test(hex) ? Uint8Array.from(Buffer.from(hex, "hex")) : undefined;
}

function variant(b: number): string {
  if ((b & 0xc0) === 0x80) return "RFC4122";
  if ((b & 0xe0) === 0xc0) return "Microsoft";
  if ((b & 0xe0) === 0xe0) return "Future";
  return "Reserved";
}

function macVariables(b: number): string {
  if ((b & 0b11) === 0b11) return "local:multicast";
  if ((b & 0b01) === 0b01) return "global:multicast";
  if ((b & 0b10) === 0b10) return "local:unicast";
  return "global:unicast";
}

function uuidFields(u: Uint8Array): Record<string, unknown> {
  const byte = (i: number) => u[i] as number;
  const version = byte(6) >> 4;
  const out: Record<string, unknown> = { version, variant: variant(byte(8)) };
  if (version === 1 || version === 2) {
    const be = (from: number, to: number) => BigInt(`0x${Buffer.from(u.slice(from, to)).toString("hex")}`);
    // 100 ns intervals since 1582-10-15, as nanoseconds since the Unix epoch (Go's truncating division).
    const time = be(0, 4) | (be(4, 6) << 32n) | ((be(6, 8) & 0xfffn) << 48n);
    const since = time - 122192928000000000n;
    // int64 arithmetic, wrapping as Go's does for times before 1677.
    out.time = intResult(BigInt.asIntN(64, (since / 10_000_000n) * 1_000_000_000n + (since % 10_000_000n) * 100n));
    out.nodeid = [...u.slice(10, 16)].map((b) => b.toString(16).padStart(2, "0")).join("-");
    out.macvariables = macVariables(byte(10));
    out.clocksequence = ((byte(8) << 8) | byte(9)) & 0x3fff;
    if (version === 2) {
      out.id = Number(be(0, 4));
      const domain = byte(9);
      out.domain = ["Person", "Group", "Org"][domain] ?? `Domain${domain}`;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// semver (OPA internal/semver): MAJOR.MINOR.PATCH[-pre][+meta], an optional leading "v"

interface Version {
  major: bigint;
  minor: bigint;
  patch: bigint;
  pre: string;
}

// SemVer 2.0.0 (semver.org §2, §9, §10), as OPA's strict parser: numbers without leading zeros,
// pre-release identifiers non-empty and numeric ones without leading zeros, build metadata non-empty.
const NUMBER = "0|[1-9]\\d*";
const PRE_ID = `(?:${NUMBER}|\\d*[A-Za-z-][0-9A-Za-z-]*)`;
const SEMVER = new RegExp(
  `^v?(${NUMBER})\\.(${NUMBER})\\.(${NUMBER})(?:-(${PRE_ID}(?:\\.${PRE_ID})*))?(?:\\+[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*)?$`,
);
const INT64_MAX = 2n ** 63n - 1n;

function cut(s: string, sep: string): [string, string] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ""] : [s.slice(0, i), s.slice(i + 1)];
}

function parseSemver(input: string): Version | undefined {
  const m = SEMVER.exec(input);
  if (!m) return undefined;
  const [major, minor, patch] = [m[1], m[2], m[3]].map((n) => BigInt(n as string));
  if ([major, minor, patch].some((n) => (n as bigint) > INT64_MAX)) return undefined;
  return { major: major as bigint, minor: minor as bigint, patch: patch as bigint, pre: m[4] ?? "" };
}

const cmp = <T>(a: T, b: T) => (a > b ? 1 : a < b ? -1 : 0);

function compareSemver(v: Version, o: Version): number {
  const c = cmp(v.major, o.major) || cmp(v.minor, o.minor) || cmp(v.patch, o.patch);
  if (c !== 0) return c;
  if (v.pre === o.pre) return 0;
  if (v.pre === "") return 1;
  if (o.pre === "") return -1;
  return comparePrerelease(v.pre, o.pre);
}

/** Pre-release identifiers, one by one; with equal ones, more identifiers sort later (as OPA's internal/semver). */
function comparePrerelease(preA: string, preB: string): number {
  let [a, restA] = cut(preA, ".");
  let [b, restB] = cut(preB, ".");
  for (;;) {
    const c = compareIdentifiers(a, b);
    if (c !== 0) return c;
    // Equal to the last identifier ("01" and "1" are the same number): equal precedence.
    if (restA === "" && restB === "") return 0;
    if (restA !== "" && restB === "") return 1;
    if (restA === "" && restB !== "") return -1;
    [a, restA] = cut(restA, ".");
    [b, restB] = cut(restB, ".");
  }
}

function compareIdentifiers(a: string, b: string): number {
  if (a === "" && b !== "") return -1;
  if (a !== "" && b === "") return 1;
  const aNum = /^\d+$/.test(a);
  const bNum = /^\d+$/.test(b);
  // Numeric identifiers sort before alphanumeric ones.
  if (aNum !== bNum) return aNum ? -1 : 1;
  return aNum ? cmp(atoi(a), atoi(b)) : compareStrings(a, b);
}

/** Go's strconv.Atoi saturates at int64's bounds. */
function atoi(digits: string): bigint {
  const n = BigInt(digits);
  return n > INT64_MAX ? INT64_MAX : n;
}

// ---------------------------------------------------------------------------------------------
// strings.replace_n: Go's strings.NewReplacer over the pairs in key order (earlier keys win)

function replaceN(pairs: Array<[string, string]>, s: string): string {
  const replacer = new Replacer(pairs);
  let out = "";
  let last = 0;
  let prevEmpty = false;
  for (let i = 0; i <= s.length; ) {
    const hit = replacer.at(s, i, prevEmpty);
    prevEmpty = hit !== undefined && hit[0] === "";
    if (hit) {
      out += s.slice(last, i) + hit[1];
      i += hit[0].length;
      last = i;
    } else {
      i += (s.codePointAt(i) ?? 0) > 0xffff ? 2 : 1;
    }
  }
  return out + s.slice(last);
}

/**
 * The pairs by the first UTF-16 unit of their pattern, in key order, so each position tries only
 * the patterns that can start there. The comparisons of one call are bounded (HOST_WORK_LIMIT):
 * many long patterns sharing a prefix still make them quadratic.
 */
class Replacer {
  readonly #byFirst = new Map<number, Array<[string, string]>>();
  readonly #empty: [string, string] | undefined;
  #work = 0;

  constructor(pairs: Array<[string, string]>) {
    this.#empty = pairs.find(([pattern]) => pattern === "");
    for (const pair of pairs) {
      if (pair[0] === "") continue;
      const first = pair[0].charCodeAt(0);
      const list = this.#byFirst.get(first);
      if (list) list.push(pair);
      else this.#byFirst.set(first, [pair]);
    }
  }

  /** The first pair whose pattern starts at `i`; after an empty match, the empty pattern does not match again there. */
  at(s: string, i: number, prevEmpty: boolean): [string, string] | undefined {
    // The empty pattern sorts first, and always matches.
    if (this.#empty && !prevEmpty) return this.#empty;
    for (const pair of this.#byFirst.get(s.charCodeAt(i)) ?? []) {
      this.#work += pair[0].length;
      if (this.#work > HOST_WORK_LIMIT) throw tooMuchWork();
      if (s.startsWith(pair[0], i)) return pair;
    }
    return undefined;
  }
}

/** The largest bits.lsh shift: results up to about 20 000 decimal digits. */
const MAX_SHIFT = 65_536n;

// rand.intn is deterministic per (string, n) within an evaluation in OPA.
const randoms = new TurnCache<string, bigint>();

/** A uniform integer in [0, max). */
function randomBelow(max: bigint): bigint {
  if (max <= 2n ** 48n) return BigInt(randomInt(Number(max)));
  const bytes = Math.ceil(max.toString(2).length / 8);
  const range = 1n << BigInt(bytes * 8);
  const limit = range - (range % max);
  for (;;) {
    const r = BigInt(`0x${randomBytes(bytes).toString("hex")}`);
    if (r < limit) return r % max;
  }
}

export const miscBuiltins: Record<string, Builtin> = {
  "uuid.rfc4122": (k) => uuids.get(str(k, 1), () => randomUUID()),

  // Not a UUID: undefined, not an error (OPA).
  "uuid.parse": (x) => {
    const u = parseUUID(str(x, 1));
    return u ? uuidFields(u) : undefined;
  },

  // OPA: a non-string is simply not valid.
  "semver.is_valid": (x) => typeof x === "string" && parseSemver(x) !== undefined,

  "semver.compare": (a, b) => {
    const x = str(a, 1);
    const y = str(b, 2);
    const va = parseSemver(x);
    if (!va) throw new Error(`operand 1: string ${JSON.stringify(x)} is not a valid SemVer`);
    const vb = parseSemver(y);
    if (!vb) throw new Error(`operand 2: string ${JSON.stringify(y)} is not a valid SemVer`);
    return compareSemver(va, vb);
  },

  "bits.or": (a, b) => intResult(bigIntOperand(a, 1) | bigIntOperand(b, 2)),
  "bits.and": (a, b) => intResult(bigIntOperand(a, 1) & bigIntOperand(b, 2)),
  "bits.xor": (a, b) => intResult(bigIntOperand(a, 1) ^ bigIntOperand(b, 2)),
  "bits.negate": (a) => intResult(~bigIntOperand(a, 1)),
  "bits.lsh": (a, b) => {
    const x = bigIntOperand(a, 1);
    const n = bigIntOperand(b, 2);
    if (n < 0n) throw operandError(2, "must be an unsigned integer number but got a negative integer");
    // A shift makes a number of any size from a small input: bounded (a million bits take
    // seconds to write out as JSON).
    if (n > MAX_SHIFT) throw tooMuchWork();
    return intResult(x << n);
  },
  "bits.rsh": (a, b) => {
    const x = bigIntOperand(a, 1);
    const n = bigIntOperand(b, 2);
    if (n < 0n) throw operandError(2, "must be an unsigned integer number but got a negative integer");
    return intResult(x >> n); // arithmetic shift, flooring, as big.Int.Rsh
  },

  "strings.replace_n": (patterns, value) => {
    if (!isObject(patterns)) throw operandTypeError(1, patterns, "object");
    const s = str(value, 2);
    const pairs: Array<[string, string]> = Object.keys(patterns)
      .sort(compareStrings)
      .map((k) => {
        const v = patterns[k];
        if (typeof v !== "string") throw operandError(1, "non-string value found in pattern object");
        return [k, v];
      });
    return replaceN(pairs, s);
  },

  "rand.intn": (s, n) => {
    const key = str(s, 1);
    let max = intOperand(n, 2);
    if (max === 0n) return 0;
    if (max < 0n) max = -max;
    return intResult(randoms.get(`${key}-${max}`, () => randomBelow(max)));
  },
};
