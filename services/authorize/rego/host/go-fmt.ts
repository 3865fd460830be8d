// Go's fmt.Sprintf for the argument types OPA's sprintf hands it: int64, *big.Int, float64 and
// string. Verbs, flags (+ - # 0 space), width and precision (also `*`), argument indexes (`%[2]d`)
// and Go's error forms (`%!d(string=x)`, `%!v(MISSING)`, `%!(EXTRA int64=1)`, `%!(BADWIDTH)`,
// `%!(NOVERB)`, `%!d(BADINDEX)`, ...), as Go's fmt package and math/big's Int.Format behave (see
// golang/go src/fmt/fmt_test.go, whose cases test/authorize/rego-builtins-sprintf.test.ts checks).
// Widths count code points, as Go counts runes. `%p` of a big integer would print a Go pointer
// address, which cannot be reproduced: it is an error.
import { UnsupportedCall } from "./args.ts";
import { canBackquote, type FloatVerb, formatFloat, isPrint, quote, quoteRune } from "./go-strconv.ts";

export type GoValue =
  | { type: "int64"; value: bigint }
  | { type: "*big.Int"; value: bigint }
  | { type: "float64"; value: number }
  | { type: "string"; value: string };

const BIG_INT_BASES: Record<string, number> = { b: 2, o: 8, O: 8, d: 10, s: 10, v: 10, x: 16, X: 16 };
const BIG_INT_PREFIXES: Record<string, string> = { b: "0b", o: "0", x: "0x", X: "0X" };
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INT64_BASES: Record<string, number> = { v: 10, d: 10, b: 2, o: 8, O: 8, x: 16, X: 16 };
const UINT64 = 2n ** 64n;
const MAX_RUNE = 0x10ffff;
const RUNE_ERROR = 0xfffd;
/** fmt's bound on widths and precisions (its tooLarge). */
const TOO_LARGE = 1_000_000;

/** An integer as Go's OPA sprintf passes it: int64 when it fits, *big.Int otherwise. */
export function goInt(value: bigint): GoValue {
  return value >= INT64_MIN && value <= INT64_MAX ? { type: "int64", value } : { type: "*big.Int", value };
}

/** Where the next argument is, and whether an index `[n]` just set it. */
interface Cursor {
  argNum: number;
  afterIndex: boolean;
}

interface Flags {
  plus: boolean;
  minus: boolean;
  sharp: boolean;
  space: boolean;
  zero: boolean;
  plusV: boolean;
  sharpV: boolean;
  wid: number;
  widPresent: boolean;
  prec: number;
  precPresent: boolean;
}

const noFlags = (): Flags => ({
  plus: false,
  minus: false,
  sharp: false,
  space: false,
  zero: false,
  plusV: false,
  sharpV: false,
  wid: 0,
  widPresent: false,
  prec: 0,
  precPresent: false,
});

const runeCount = (s: string) => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

const isDigit = (c: string | undefined) => c !== undefined && c >= "0" && c <= "9";

/** Go's parsenum: a decimal number at s[start..end), or none; absurdly long numbers end the format. */
function parseNum(s: string, start: number, end: number): { num: number; isNum: boolean; next: number } {
  if (start >= end) return { num: 0, isNum: false, next: end };
  let num = 0;
  let isNum = false;
  let next = start;
  for (; next < end && isDigit(s[next]); next++) {
    if (num > TOO_LARGE || num < -TOO_LARGE) return { num: 0, isNum: false, next: end };
    num = num * 10 + Number(s[next]);
    isNum = true;
  }
  return { num, isNum, next };
}

/** Go's parseArgNumber: `[n]` at the start of s, one-based. */
function parseArgNumber(s: string): { index: number; width: number; ok: boolean } {
  if (s.length < 3) return { index: 0, width: 1, ok: false };
  for (let i = 1; i < s.length; i++) {
    if (s[i] === "]") {
      const { num, isNum, next } = parseNum(s, 1, i);
      if (!isNum || next !== i) return { index: 0, width: i + 1, ok: false };
      return { index: num - 1, width: i + 1, ok: true };
    }
  }
  return { index: 0, width: 1, ok: false };
}

/** `#` on floats: always a decimal point, and %g keeps its trailing zeros (significant digits). */
function keepPoint(signed: string, verb: string, prec: number): string {
  const at = signed.search(/[eE]/);
  let body = at < 0 ? signed : signed.slice(0, at);
  const tail = at < 0 ? "" : signed.slice(at);
  let digits = verb === "v" || verb === "g" || verb === "G" ? (prec === -1 ? 6 : prec) : 0;
  // Digits count from the first non-zero one.
  digits -= body.slice(1).replace(".", "").replace(/^0+/, "").length;
  if (!body.includes(".")) {
    if (body.length === 2 && body[1] === "0") digits--;
    body += ".";
  }
  return body + "0".repeat(Math.max(digits, 0)) + tail;
}

class Printer {
  out = "";
  f: Flags = noFlags();
  reordered = false;
  goodArgNum = true;

  // -------------------------------------------------------------------------------------------
  // padding (fmt's pad, padString, writePadding)

  writePadding(n: number): void {
    if (n > 0) this.out += (this.f.zero ? "0" : " ").repeat(n);
  }

  pad(s: string): void {
    if (!this.f.widPresent || this.f.wid === 0) {
      this.out += s;
      return;
    }
    const width = this.f.wid - runeCount(s);
    if (this.f.minus) {
      this.out += s;
      this.writePadding(width);
    } else {
      this.writePadding(width);
      this.out += s;
    }
  }

  /** pad without zeros (numbers already zero-filled to their precision). */
  padSpaces(s: string): void {
    const zero = this.f.zero;
    this.f.zero = false;
    this.pad(s);
    this.f.zero = zero;
  }

  // -------------------------------------------------------------------------------------------
  // strings

  truncate(s: string): string {
    if (!this.f.precPresent) return s;
    let n = this.f.prec;
    let i = 0;
    for (const ch of s) {
      if (--n < 0) return s.slice(0, i);
      i += ch.length;
    }
    return s;
  }

  fmtS(s: string): void {
    this.pad(this.truncate(s));
  }

  /** %x / %X of a string: its UTF-8 bytes in hex, `% x` spaced, `%#x` prefixed. */
  fmtSx(s: string, upper: boolean): void {
    let bytes = Buffer.from(s, "utf8");
    if (this.f.precPresent && this.f.prec < bytes.length) bytes = bytes.subarray(0, this.f.prec);
    if (bytes.length === 0) {
      if (this.f.widPresent) this.writePadding(this.f.wid);
      return;
    }
    const prefix = upper ? "0X" : "0x";
    let text = this.f.sharp ? prefix : "";
    bytes.forEach((b, i) => {
      if (this.f.space && i > 0) text += this.f.sharp ? ` ${prefix}` : " ";
      const hex = b.toString(16).padStart(2, "0");
      text += upper ? hex.toUpperCase() : hex;
    });
    const free = this.f.widPresent ? this.f.wid - text.length : 0;
    if (free > 0 && !this.f.minus) this.writePadding(free);
    this.out += text;
    if (free > 0 && this.f.minus) this.writePadding(free);
  }

  fmtQ(s: string): void {
    const t = this.truncate(s);
    if (this.f.sharp && canBackquote(t)) this.pad(`\`${t}\``);
    else this.pad(quote(t, this.f.plus));
  }

  fmtString(s: string, verb: string, value: GoValue): void {
    if (verb === "v") {
      if (this.f.sharpV) this.fmtQ(s);
      else this.fmtS(s);
    } else if (verb === "s") this.fmtS(s);
    else if (verb === "x" || verb === "X") this.fmtSx(s, verb === "X");
    else if (verb === "q") this.fmtQ(s);
    else this.badVerb(verb, value);
  }

  // -------------------------------------------------------------------------------------------
  // integers

  fmtInteger(v: bigint, base: number, verb: string, upper: boolean): void {
    const negative = v < 0n;
    const u = negative ? -v : v;
    const prec = this.integerPrecision(u, negative);
    if (prec === undefined) return;
    let digits = u.toString(base);
    if (upper) digits = digits.toUpperCase();
    digits = this.basePrefix(digits.padStart(prec, "0"), base, verb, upper);
    this.padSpaces(this.sign(negative) + digits);
  }

  /** The least number of digits (zeros in front); undefined when nothing but padding is printed. */
  integerPrecision(u: bigint, negative: boolean): number | undefined {
    if (this.f.precPresent) {
      if (this.f.prec !== 0 || u !== 0n) return this.f.prec;
      // Precision 0 and value 0: only the padding.
      const zero = this.f.zero;
      this.f.zero = false;
      this.writePadding(this.f.wid);
      this.f.zero = zero;
      return undefined;
    }
    if (!this.f.zero || !this.f.widPresent) return 0;
    return negative || this.f.plus || this.f.space ? this.f.wid - 1 : this.f.wid; // room for the sign
  }

  basePrefix(digits: string, base: number, verb: string, upper: boolean): string {
    let out = digits;
    if (this.f.sharp && base === 2) out = `0b${out}`;
    if (this.f.sharp && base === 8 && !out.startsWith("0")) out = `0${out}`;
    if (this.f.sharp && base === 16) out = `0${upper ? "X" : "x"}${out}`;
    return verb === "O" ? `0o${out}` : out;
  }

  sign(negative: boolean): string {
    if (negative) return "-";
    if (this.f.plus) return "+";
    return this.f.space ? " " : "";
  }

  /** %c: the code point (as uint64); not a valid one is U+FFFD. */
  fmtC(u: bigint): void {
    const r = u > BigInt(MAX_RUNE) ? RUNE_ERROR : Number(u);
    this.pad(String.fromCodePoint(r >= 0xd800 && r <= 0xdfff ? RUNE_ERROR : r));
  }

  fmtQc(u: bigint): void {
    const r = u > BigInt(MAX_RUNE) ? RUNE_ERROR : Number(u);
    this.pad(quoteRune(r, this.f.plus));
  }

  /** %U: U+0078, with # also the character: U+0078 'x'. */
  fmtUnicode(u: bigint): void {
    const prec = this.f.precPresent && this.f.prec > 4 ? this.f.prec : 4;
    let text = `U+${u.toString(16).toUpperCase().padStart(prec, "0")}`;
    if (this.f.sharp && u <= BigInt(MAX_RUNE) && isPrint(Number(u))) text += ` '${String.fromCodePoint(Number(u))}'`;
    this.padSpaces(text);
  }

  fmtInt64(v: bigint, verb: string, value: GoValue): void {
    const base = INT64_BASES[verb];
    const asUint64 = v < 0n ? v + UINT64 : v;
    if (base !== undefined) this.fmtInteger(v, base, verb, verb === "X");
    else if (verb === "c") this.fmtC(asUint64);
    else if (verb === "q") this.fmtQc(asUint64);
    else if (verb === "U") this.fmtUnicode(asUint64);
    else this.badVerb(verb, value);
  }

  /** math/big's Int.Format: the integer verbs with all of fmt's integer flags; others are errors. */
  fmtBigInt(x: bigint, verb: string): void {
    const base = BIG_INT_BASES[verb];
    if (base === undefined) {
      this.out += `%!${verb}(big.Int=${x})`;
      return;
    }
    let digits = (x < 0n ? -x : x).toString(base);
    if (verb === "X") digits = digits.toUpperCase();
    if (this.f.precPresent && this.f.prec === 0 && digits === "0") return; // nothing at all
    const zeros = this.f.precPresent ? Math.max(this.f.prec - digits.length, 0) : 0;
    const head = this.bigIntSign(x) + this.bigIntPrefix(verb);
    const free = this.f.widPresent ? this.f.wid - (head.length + zeros + digits.length) : 0;
    const [left, right, extraZeros] = this.bigIntPadding(Math.max(free, 0));
    this.out += " ".repeat(left) + head + "0".repeat(zeros + extraZeros) + digits + " ".repeat(right);
  }

  // Int.Format asks the state for its flags, which report %+v and %#v as + and #.
  bigIntSign(x: bigint): string {
    if (x < 0n) return "-";
    if (this.f.plus || this.f.plusV) return "+";
    return this.f.space ? " " : "";
  }

  bigIntPrefix(verb: string): string {
    if (verb === "O") return "0o";
    return this.f.sharp || this.f.sharpV ? (BIG_INT_PREFIXES[verb] ?? "") : "";
  }

  /** Int.Format's padding: right with -, zeros with 0 unless a precision is given, else left. */
  bigIntPadding(free: number): [number, number, number] {
    if (this.f.minus) return [0, free, 0];
    if (this.f.zero && !this.f.precPresent) return [0, 0, free];
    return [free, 0, 0];
  }

  // -------------------------------------------------------------------------------------------
  // floats

  fmtFloat(v: number, verb: FloatVerb | "v", defaultPrec: number): void {
    if (this.f.sharp && (verb === "x" || verb === "X")) {
      throw new UnsupportedCall(`%#${verb} of a floating-point number is not supported by Mandate`);
    }
    const prec = this.f.precPresent ? this.f.prec : defaultPrec;
    let num = this.signedFloat(formatFloat(v, verb === "v" ? "g" : verb, prec));
    if (num[1] === "I" || num[1] === "N") {
      // Infinities and NaN are never zero-padded; NaN shows a sign only when asked.
      if (num[1] === "N" && !this.f.space && !this.f.plus) num = num.slice(1);
      this.padSpaces(num);
      return;
    }
    if (this.f.sharp && verb !== "b") num = keepPoint(num, verb, prec);
    this.padFloat(num);
  }

  /** A signed float padded: the sign shown only when asked or negative, before any zeros. */
  padFloat(num: string): void {
    if (!this.f.plus && num[0] === "+") {
      this.pad(num.slice(1));
    } else if (this.f.zero && this.f.widPresent && this.f.wid > num.length) {
      this.out += num[0];
      this.writePadding(this.f.wid - num.length);
      this.out += num.slice(1);
    } else {
      this.pad(num);
    }
  }

  /** The number with a sign in front: +, -, or a space for the space flag. */
  signedFloat(text: string): string {
    const num = text[0] === "-" || text[0] === "+" ? text : `+${text}`;
    return this.f.space && num[0] === "+" && !this.f.plus ? ` ${num.slice(1)}` : num;
  }

  fmtFloat64(v: number, verb: string, value: GoValue): void {
    if (verb === "v" || verb === "b" || verb === "g" || verb === "G" || verb === "x" || verb === "X") {
      this.fmtFloat(v, verb, -1);
    } else if (verb === "f" || verb === "e" || verb === "E") {
      this.fmtFloat(v, verb, 6);
    } else if (verb === "F") {
      this.fmtFloat(v, "f", 6);
    } else {
      this.badVerb(verb, value);
    }
  }

  // -------------------------------------------------------------------------------------------
  // arguments

  printArg(value: GoValue, verb: string): void {
    if (verb === "T") {
      this.fmtS(value.type);
    } else if (verb === "p" && value.type === "*big.Int") {
      throw new UnsupportedCall(
        "sprintf: %p of a big integer prints a Go pointer address, which Mandate cannot reproduce",
      );
    } else if (verb === "p") {
      this.badVerb(verb, value);
    } else if (value.type === "int64") {
      this.fmtInt64(value.value, verb, value);
    } else if (value.type === "*big.Int") {
      this.fmtBigInt(value.value, verb);
    } else if (value.type === "float64") {
      this.fmtFloat64(value.value, verb, value);
    } else {
      this.fmtString(value.value, verb, value);
    }
  }

  /** `%!d(string=foo)`: the value in %v with the flags as they are. */
  badVerb(verb: string, value: GoValue): void {
    this.out += `%!${verb}(${value.type}=`;
    this.printArg(value, "v");
    this.out += ")";
  }

  /** An argument index `[n]` at i: moves the cursor to it (a bad one spoils the verb). */
  argNumber(format: string, i: number, numArgs: number, state: Cursor): number {
    if (format[i] !== "[") {
      state.afterIndex = false;
      return i;
    }
    this.reordered = true;
    const { index, width, ok } = parseArgNumber(format.slice(i));
    if (ok && index >= 0 && index < numArgs) {
      state.argNum = index;
      state.afterIndex = true;
      return i + width;
    }
    this.goodArgNum = false;
    state.afterIndex = ok;
    return i + width;
  }

  /** A `*` width or precision: an int64 argument within fmt's bound. */
  intFromArg(args: GoValue[], argNum: number): { num: number; isInt: boolean; argNum: number } {
    const arg = args[argNum];
    if (!arg) return { num: 0, isInt: false, argNum };
    if (arg.type !== "int64" || arg.value > BigInt(TOO_LARGE) || arg.value < BigInt(-TOO_LARGE)) {
      return { num: 0, isInt: false, argNum: argNum + 1 };
    }
    return { num: Number(arg.value), isInt: true, argNum: argNum + 1 };
  }

  setFlag(c: string): boolean {
    if (c === "#") this.f.sharp = true;
    else if (c === "0")
      this.f.zero = !this.f.minus; // zero padding only to the left
    else if (c === "+") this.f.plus = true;
    else if (c === "-") {
      this.f.minus = true;
      this.f.zero = false;
    } else if (c === " ") this.f.space = true;
    else return false;
    return true;
  }

  /** %v's flags: # and + mean Go syntax and field names, not themselves. */
  verbV(): void {
    this.f.sharpV = this.f.sharp;
    this.f.sharp = false;
    this.f.plusV = this.f.plus;
    this.f.plus = false;
  }

  /** Width: digits, or `*` taking an argument (negative: left-justified). */
  parseWidth(format: string, i: number, args: GoValue[], state: Cursor): number {
    if (format[i] !== "*") {
      const width = parseNum(format, i, format.length);
      this.f.wid = width.num;
      this.f.widPresent = width.isNum;
      if (state.afterIndex && this.f.widPresent) this.goodArgNum = false; // "%[3]2d"
      return width.next;
    }
    const width = this.intFromArg(args, state.argNum);
    state.argNum = width.argNum;
    this.f.wid = width.num;
    this.f.widPresent = width.isInt;
    if (!width.isInt) this.out += "%!(BADWIDTH)";
    if (this.f.wid < 0) {
      this.f.wid = -this.f.wid;
      this.f.minus = true;
      this.f.zero = false;
    }
    state.afterIndex = false;
    return i + 1;
  }

  /** Precision after the dot at i: digits (none is 0), or `*` taking an argument (negative: none). */
  parsePrecision(format: string, i: number, args: GoValue[], state: Cursor): number {
    if (state.afterIndex) this.goodArgNum = false; // "%[3].2d"
    const at = this.argNumber(format, i, args.length, state);
    if (format[at] !== "*") {
      const precision = parseNum(format, at, format.length);
      this.f.prec = precision.isNum ? precision.num : 0;
      this.f.precPresent = true;
      return precision.next;
    }
    const precision = this.intFromArg(args, state.argNum);
    state.argNum = precision.argNum;
    this.f.prec = precision.num;
    this.f.precPresent = precision.isInt && precision.num >= 0;
    if (!this.f.precPresent) {
      this.f.prec = 0;
      this.out += "%!(BADPREC)"; // also a negative one
    }
    state.afterIndex = false;
    return at + 1;
  }

  /** One verb's argument: %% takes none; a bad index or a missing argument is reported in place. */
  printVerb(verb: string, args: GoValue[], state: Cursor): void {
    if (verb === "%") {
      this.out += "%"; // ignores width and precision
    } else if (!this.goodArgNum) {
      this.out += `%!${verb}(BADINDEX)`;
    } else if (state.argNum >= args.length) {
      this.out += `%!${verb}(MISSING)`;
    } else {
      if (verb === "v") this.verbV();
      this.printArg(args[state.argNum] as GoValue, verb);
      state.argNum++;
    }
  }

  /** Arguments no verb used, unless indexes reordered them: %!(EXTRA type=value, ...). */
  printExtra(args: GoValue[], from: number): void {
    if (this.reordered || from >= args.length) return;
    this.f = noFlags();
    this.out += "%!(EXTRA ";
    args.slice(from).forEach((arg, k) => {
      if (k > 0) this.out += ", ";
      this.out += `${arg.type}=`;
      this.printArg(arg, "v");
    });
    this.out += ")";
  }

  sprintf(format: string, args: GoValue[]): string {
    const end = format.length;
    const state: Cursor = { argNum: 0, afterIndex: false };
    let i = 0;
    while (i < end) {
      this.goodArgNum = true;
      const next = format.indexOf("%", i);
      this.out += format.slice(i, next < 0 ? end : next);
      if (next < 0) break;
      i = next + 1;
      this.f = noFlags();
      while (i < end && this.setFlag(format[i] as string)) i++;
      i = this.argNumber(format, i, args.length, state);
      i = this.parseWidth(format, i, args, state);
      if (i + 1 < end && format[i] === ".") i = this.parsePrecision(format, i + 1, args, state);
      if (!state.afterIndex) i = this.argNumber(format, i, args.length, state);
      if (i >= end) {
        this.out += "%!(NOVERB)";
        break;
      }
      const verb = String.fromCodePoint(format.codePointAt(i) as number);
      i += verb.length;
      this.printVerb(verb, args, state);
    }
    this.printExtra(args, state.argNum);
    return this.out;
  }
}

/** fmt.Sprintf(format, args...) for int64, *big.Int, float64 and string arguments. */
export function goSprintf(format: string, args: GoValue[]): string {
  return new Printer().sprintf(format, args);
}
