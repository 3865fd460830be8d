// regex.* as OPA, on Go's regexp (RE2 syntax, leftmost-first). A Go pattern is parsed with Go's
// grammar (regexp/syntax, Perl flags) and re-emitted as a JS RegExp (flag v) of the same meaning:
// `.` excludes only \n, \s \d \w \b are ASCII, ^ $ are text anchors unless (?m), flags (?imsU) are
// scoped as in Go, POSIX and Unicode classes are translated. What RE2 lacks (backreferences,
// lookaround, possessive or atomic groups, \C, \Z, \G) is rejected as Go rejects it.
//
// Matching itself is V8's backtracking engine, so results agree with Go's; a capture inside a
// repeated group is reset at each repetition in JS where RE2 keeps its last value. Backtracking is
// exponential on some patterns (`(a+)+$`) where Go's RE2 is linear, and a host built-in runs outside
// the evaluation budget: a match whose backtracking could be costly for its subject's length runs
// on the linear-time matcher of linear-regex.ts instead, which keeps RE2's bound (pattern × subject).
import { type Builtin, intOperand, str } from "./args.ts";
import { LinearRegExp, type MatchArray } from "./linear-regex.ts";

export class RegexSyntaxError extends Error {
  constructor(code: string, expr: string) {
    super(`error parsing regexp: ${code}: \`${expr}\``);
  }
}

type Ranges = Array<[number, number]>;

const MAX_RUNE = 0x10ffff;

const PERL: Record<string, Ranges> = {
  d: [[0x30, 0x39]],
  s: [
    [0x09, 0x0a],
    [0x0c, 0x0d],
    [0x20, 0x20],
  ],
  w: [
    [0x30, 0x39],
    [0x41, 0x5a],
    [0x5f, 0x5f],
    [0x61, 0x7a],
  ],
};

const POSIX: Record<string, Ranges> = {
  alnum: [
    [0x30, 0x39],
    [0x41, 0x5a],
    [0x61, 0x7a],
  ],
  alpha: [
    [0x41, 0x5a],
    [0x61, 0x7a],
  ],
  ascii: [[0x00, 0x7f]],
  blank: [
    [0x09, 0x09],
    [0x20, 0x20],
  ],
  cntrl: [
    [0x00, 0x1f],
    [0x7f, 0x7f],
  ],
  digit: [[0x30, 0x39]],
  graph: [[0x21, 0x7e]],
  lower: [[0x61, 0x7a]],
  print: [[0x20, 0x7e]],
  punct: [
    [0x21, 0x2f],
    [0x3a, 0x40],
    [0x5b, 0x60],
    [0x7b, 0x7e],
  ],
  space: [
    [0x09, 0x0d],
    [0x20, 0x20],
  ],
  upper: [[0x41, 0x5a]],
  word: [
    [0x30, 0x39],
    [0x41, 0x5a],
    [0x61, 0x7a],
    [0x5f, 0x5f],
  ],
  xdigit: [
    [0x30, 0x39],
    [0x41, 0x46],
    [0x61, 0x66],
  ],
};

// Go's unicode.Categories; "C" there is Cc|Cf|Co|Cs (no unassigned code points, unlike \p{C}).
const CATEGORIES = new Set(
  "C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps S Sc Sk Sm So Z Zl Zp Zs".split(" "),
);

const cp = (n: number) => `\\u{${n.toString(16)}}`;
const rangesBody = (ranges: Ranges) => ranges.map(([lo, hi]) => (lo === hi ? cp(lo) : `${cp(lo)}-${cp(hi)}`)).join("");
const rangesClass = (ranges: Ranges, negated: boolean) => `[${negated ? "^" : ""}${rangesBody(ranges)}]`;

const scriptCache = new Map<string, boolean>();

function isScript(name: string): boolean {
  let ok = scriptCache.get(name);
  if (ok === undefined) {
    try {
      new RegExp(`\\p{Script=${name}}`, "v");
      ok = /^[A-Za-z_]+$/.test(name);
    } catch {
      ok = false;
    }
    scriptCache.set(name, ok);
  }
  return ok;
}

interface Flags {
  i: boolean;
  m: boolean;
  s: boolean;
  U: boolean;
}

const isFlag = (c: string | undefined): c is keyof Flags => c === "i" || c === "m" || c === "s" || c === "U";
const isAlnum = (c: string) => /^[0-9A-Za-z]$/.test(c);
const isOctal = (c: string | undefined) => c !== undefined && c >= "0" && c <= "7";
const hexValue = (c: string | undefined) => (c !== undefined && /^[0-9A-Fa-f]$/.test(c) ? Number.parseInt(c, 16) : -1);

/** \A \z \b \B: Go's text anchors and ASCII word boundaries. */
const ESCAPE_ANCHORS = new Map([
  ["A", "^"],
  ["z", "$"],
  ["b", "\\b"],
  ["B", "\\B"],
]);

/** \d \s \w (ASCII, as Go) and their negations \D \S \W. */
const perlClass = (c: string) => rangesClass(PERL[c.toLowerCase()] as Ranges, c !== c.toLowerCase());

/** Go's single-letter control escapes. */
const CONTROL_ESCAPES = new Map([
  ["a", 7],
  ["f", 12],
  ["n", 10],
  ["r", 13],
  ["t", 9],
  ["v", 11],
]);

/** A Unicode class by Go's name (category, script, Any, C) as a JS class expression; undefined if Go has none. */
function unicodeClassExpression(name: string, negated: boolean): string | undefined {
  if (name === "Any") return negated ? "[]" : `[${cp(0)}-${cp(MAX_RUNE)}]`;
  if (name === "C") return `[${negated ? "^" : ""}\\p{Cc}\\p{Cf}\\p{Co}\\p{Cs}]`;
  if (CATEGORIES.has(name)) return `\\${negated ? "P" : "p"}{${name}}`;
  if (isScript(name)) return `\\${negated ? "P" : "p"}{Script=${name}}`;
  return undefined;
}

/** A Go regexp translated to a JS RegExp source, with its capture names by group number. */
export interface Translation {
  source: string;
  names: Array<string | undefined>;
}

class Translator {
  readonly #s: string;
  #i = 0;
  #flags: Flags = { i: false, m: false, s: false, U: false };
  #depth = 0;
  readonly names: Array<string | undefined> = [undefined];

  constructor(source: string) {
    this.#s = source;
  }

  translate(): string {
    const out = this.#alternation();
    if (this.#i < this.#s.length) throw new RegexSyntaxError("unexpected )", this.#s);
    return out;
  }

  #peek(offset = 0): string | undefined {
    let i = this.#i;
    for (let k = 0; k < offset && i < this.#s.length; k++) i += (this.#s.codePointAt(i) as number) > 0xffff ? 2 : 1;
    if (i >= this.#s.length) return undefined;
    return String.fromCodePoint(this.#s.codePointAt(i) as number);
  }

  #fold(atom: string): string {
    return this.#flags.i ? `(?i:${atom})` : atom;
  }

  #alternation(): string {
    const branches = [this.#concat()];
    while (this.#s[this.#i] === "|") {
      this.#i++;
      branches.push(this.#concat());
    }
    return branches.join("|");
  }

  #concat(): string {
    const items: string[] = [];
    let lastRepeat = false;
    for (;;) {
      const c = this.#peek();
      if (c === undefined || c === "|" || c === ")") return items.join("");
      const start = this.#i;
      const quantifier = this.#quantifier(c);
      if (quantifier !== undefined) {
        this.#repeat(items, quantifier, start, lastRepeat);
        lastRepeat = true;
        continue;
      }
      if (c === "(") {
        // A flags-only group, (?i), adds nothing: a following repetition applies to the item before.
        const group = this.#group();
        if (group !== undefined) items.push(group);
      } else if (c === "\\") {
        this.#escape(items);
      } else {
        items.push(this.#atom(c));
      }
      lastRepeat = false;
    }
  }

  /** `*`, `+`, `?` or a `{n,m}` repetition at the current position (consumed), as a JS quantifier. */
  #quantifier(c: string): string | undefined {
    if (c === "*" || c === "+" || c === "?") {
      this.#i++;
      return c;
    }
    return c === "{" ? this.#braces() : undefined;
  }

  /** Applies a quantifier (and a following `?`, which flips greediness) to the last item. */
  #repeat(items: string[], quantifier: string, start: number, lastRepeat: boolean): void {
    let nonGreedy = this.#flags.U;
    if (this.#s[this.#i] === "?") {
      this.#i++;
      nonGreedy = !nonGreedy;
    }
    const expr = this.#s.slice(start, this.#i);
    if (lastRepeat) throw new RegexSyntaxError("invalid nested repetition operator", expr);
    if (items.length === 0) throw new RegexSyntaxError("missing argument to repetition operator", expr);
    items.push(`(?:${items.pop()})${quantifier}${nonGreedy ? "?" : ""}`);
  }

  /** Anchors, `.`, a bracketed class, or a literal character (a `{` that starts no repetition included). */
  #atom(c: string): string {
    switch (c) {
      case "^":
        this.#i++;
        return this.#flags.m ? `(?:^|(?<=${cp(10)}))` : "^";
      case "$":
        this.#i++;
        return this.#flags.m ? `(?:$|(?=${cp(10)}))` : "$";
      case ".":
        this.#i++;
        return this.#flags.s ? "[\\s\\S]" : `[^${cp(10)}]`;
      case "[":
        return this.#fold(this.#charClass());
      default:
        this.#i += c.length;
        return this.#fold(isAlnum(c) ? c : cp(c.codePointAt(0) as number));
    }
  }

  /** `{n}`, `{n,}`, `{n,m}` as a JS quantifier, or undefined when `{` is a literal (Go's parseRepeat). */
  #braces(): string | undefined {
    const m = /^\{(0|[1-9][0-9]*)(?:(,)(0|[1-9][0-9]*)?)?\}/.exec(this.#s.slice(this.#i));
    if (!m) return undefined;
    const toInt = (s: string) => (s.length > 8 ? -1 : Number(s));
    const min = toInt(m[1] as string);
    const max = m[2] ? (m[3] === undefined ? -2 : toInt(m[3])) : min;
    const expr = m[0];
    if (min < 0 || min > 1000 || max === -1 || max > 1000 || (max >= 0 && min > max)) {
      throw new RegexSyntaxError("invalid repeat count", expr);
    }
    this.#i += expr.length;
    return max === -2 ? `{${min},}` : max === min ? `{${min}}` : `{${min},${max}}`;
  }

  /** A group; undefined for a flags-only group, `(?i)`, whose flags hold for the rest of the enclosing one. */
  #group(): string | undefined {
    const start = this.#i;
    this.#i++; // (
    const saved = { ...this.#flags };
    const kind = this.#groupKind(start);
    if (kind === "flags") return undefined;
    if (++this.#depth > 1000) throw new RegexSyntaxError("expression nests too deeply", this.#s);
    const inner = this.#alternation();
    this.#depth--;
    if (this.#s[this.#i] !== ")") throw new RegexSyntaxError("missing closing )", this.#s);
    this.#i++;
    this.#flags = saved;
    return kind === "capture" ? `(${inner})` : `(?:${inner})`;
  }

  /** After "(": a capture (named or not), a non-capturing group with flags `(?i:…)`, or flags alone `(?i)`. */
  #groupKind(start: number): "capture" | "group" | "flags" {
    if (this.#s[this.#i] !== "?") {
      this.names.push(undefined);
      return "capture";
    }
    const rest = this.#s.slice(this.#i + 1);
    const named = rest.startsWith("P<") ? 2 : rest.startsWith("<") ? 1 : 0;
    if (named === 0) return this.#perlFlags(start);
    const end = this.#s.indexOf(">", this.#i);
    if (end < 0) throw new RegexSyntaxError("invalid named capture", this.#s.slice(start));
    const name = this.#s.slice(this.#i + 1 + named, end);
    // Go: a non-empty run of word characters; so (?<=...) and (?<!...) fail here, as in Go.
    if (!/^[A-Za-z0-9_]+$/.test(name))
      throw new RegexSyntaxError("invalid named capture", this.#s.slice(start, end + 1));
    this.#i = end + 1;
    this.names.push(name);
    return "capture";
  }

  /** Flags: (?i) (?-s) (?i:...), as Go's parsePerlFlags. */
  #perlFlags(start: number): "group" | "flags" {
    this.#i++; // ?
    const state = { flags: { ...this.#flags }, negate: false, sawFlag: false };
    for (;;) {
      const c = this.#s[this.#i];
      this.#i++;
      if (isFlag(c)) {
        state.flags[c] = !state.negate;
        state.sawFlag = true;
      } else if (c === "-" && !state.negate) {
        state.negate = true;
        state.sawFlag = false;
      } else {
        return this.#endFlags(c, state, start);
      }
    }
  }

  /** ":" starts the group's body, ")" ends flags alone; anything else, or a "-" with no flag after it, is an error. */
  #endFlags(
    c: string | undefined,
    state: { flags: Flags; negate: boolean; sawFlag: boolean },
    start: number,
  ): "group" | "flags" {
    if ((c !== ":" && c !== ")") || (state.negate && !state.sawFlag)) {
      throw new RegexSyntaxError("invalid or unsupported Perl syntax", this.#s.slice(start, this.#i));
    }
    this.#flags = state.flags;
    return c === ")" ? "flags" : "group";
  }

  /** A backslash sequence outside a class: an anchor, `\Q…\E`, a Unicode or Perl class, or one character. */
  #escape(items: string[]): void {
    const c = this.#s[this.#i + 1];
    const anchor = c === undefined ? undefined : ESCAPE_ANCHORS.get(c);
    if (anchor !== undefined) {
      this.#i += 2;
      items.push(anchor);
    } else if (c === "C") {
      throw new RegexSyntaxError("invalid escape sequence", "\\C");
    } else if (c === "Q") {
      this.#quoted(items);
    } else if (c === "p" || c === "P") {
      items.push(this.#fold(this.#unicodeClass()));
    } else if (c !== undefined && "dDsSwW".includes(c)) {
      this.#i += 2;
      items.push(this.#fold(perlClass(c)));
    } else {
      items.push(this.#fold(cp(this.#parseEscape())));
    }
  }

  /** \Q...\E: literal characters, each its own atom (an unclosed \Q runs to the end). */
  #quoted(items: string[]): void {
    this.#i += 2;
    let end = this.#s.indexOf("\\E", this.#i);
    if (end < 0) end = this.#s.length;
    for (const ch of this.#s.slice(this.#i, end)) items.push(this.#fold(cp(ch.codePointAt(0) as number)));
    this.#i = Math.min(this.#s.length, end + 2);
  }

  /** Go's parseEscape: a single escaped character, as a code point. */
  #parseEscape(): number {
    const start = this.#i;
    this.#i++; // backslash
    const c = this.#peek();
    if (c === undefined) throw new RegexSyntaxError("trailing backslash at end of expression", "");
    this.#i += c.length;
    const invalid = () => new RegexSyntaxError("invalid escape sequence", this.#s.slice(start, this.#i));
    if (c.length === 1 && c.charCodeAt(0) < 0x80 && !isAlnum(c)) return c.charCodeAt(0);
    if (isOctal(c)) return this.#octalEscape(c, invalid);
    if (c === "x") return this.#hexEscape(invalid);
    const code = CONTROL_ESCAPES.get(c);
    if (code === undefined) throw invalid();
    return code;
  }

  /** `\0`, `\012`: up to three octal digits; a lone non-zero digit would be a backreference, which RE2 lacks. */
  #octalEscape(first: string, invalid: () => RegexSyntaxError): number {
    if (first !== "0" && !isOctal(this.#s[this.#i])) throw invalid();
    let r = first.charCodeAt(0) - 48;
    for (let k = 1; k < 3 && isOctal(this.#s[this.#i]); k++) r = r * 8 + (this.#s.charCodeAt(this.#i++) - 48);
    return r;
  }

  /** `\x41` (two hex digits) or `\x{10FFFF}`. */
  #hexEscape(invalid: () => RegexSyntaxError): number {
    if (this.#s[this.#i] === "{") return this.#hexBraces(invalid);
    const x = hexValue(this.#s[this.#i]);
    const y = hexValue(this.#s[this.#i + 1]);
    this.#i = Math.min(this.#s.length, this.#i + 2);
    if (x < 0 || y < 0) throw invalid();
    return x * 16 + y;
  }

  #hexBraces(invalid: () => RegexSyntaxError): number {
    this.#i++; // {
    let r = 0;
    let n = 0;
    for (;;) {
      const h = this.#s[this.#i];
      if (h === undefined) throw invalid();
      this.#i++;
      if (h === "}") break;
      const v = hexValue(h);
      if (v < 0) throw invalid();
      r = r * 16 + v;
      if (r > MAX_RUNE) throw invalid();
      n++;
    }
    if (n === 0) throw invalid();
    return r;
  }

  /** `\pL`, `\p{Greek}`, `\P{^Lu}`: a JS class expression (usable inside a class in v mode). */
  #unicodeClass(): string {
    const start = this.#i;
    let negated = this.#s[this.#i + 1] === "P";
    this.#i += 2;
    let name = this.#unicodeClassName(start);
    const seq = this.#s.slice(start, this.#i);
    if (name.startsWith("^")) {
      negated = !negated;
      name = name.slice(1);
    }
    const expression = unicodeClassExpression(name, negated);
    if (expression === undefined) throw new RegexSyntaxError("invalid character class range", seq);
    return expression;
  }

  /** After `\p`: a one-letter name, or one in braces. */
  #unicodeClassName(start: number): string {
    if (this.#s[this.#i] !== "{") {
      const name = this.#peek() ?? "";
      this.#i += name.length;
      return name;
    }
    const end = this.#s.indexOf("}", this.#i);
    if (end < 0) throw new RegexSyntaxError("invalid character class range", this.#s.slice(start));
    const name = this.#s.slice(this.#i + 1, end);
    this.#i = end + 1;
    return name;
  }

  /** A bracketed class, as Go's parseClass. */
  #charClass(): string {
    const start = this.#i;
    this.#i++; // [
    let negated = false;
    if (this.#s[this.#i] === "^") {
      negated = true;
      this.#i++;
    }
    const parts: string[] = [];
    // A "]" first in the class is a literal.
    for (let first = true; ; first = false) {
      const c = this.#s[this.#i];
      if (c === undefined) throw new RegexSyntaxError("missing closing ]", this.#s.slice(start));
      if (c === "]" && !first) break;
      parts.push(this.#classItem(c, start));
    }
    this.#i++; // ]
    return `[${negated ? "^" : ""}${parts.join("")}]`;
  }

  /** One item of a class: `[:alpha:]`, `\pL`, `\d`, or a character or range of them. */
  #classItem(c: string, classStart: number): string {
    if (c === "[" && this.#s[this.#i + 1] === ":") {
      const posix = this.#posixClass();
      if (posix !== undefined) return posix;
    }
    const e = this.#s[this.#i + 1];
    if (c === "\\" && (e === "p" || e === "P")) return this.#unicodeClass();
    if (c === "\\" && e !== undefined && "dDsSwW".includes(e)) {
      this.#i += 2;
      return perlClass(e);
    }
    return this.#classRange(classStart);
  }

  /** `[:alpha:]`, `[:^digit:]`; undefined when no `:]` closes it (then `[` is a literal). */
  #posixClass(): string | undefined {
    const end = this.#s.indexOf(":]", this.#i + 2);
    if (end < 0) return undefined;
    const name = this.#s.slice(this.#i + 2, end);
    const neg = name.startsWith("^");
    const group = POSIX[neg ? name.slice(1) : name];
    if (!group) throw new RegexSyntaxError("invalid character class range", this.#s.slice(this.#i, end + 2));
    this.#i = end + 2;
    return rangesClass(group, neg);
  }

  /** A character, or a range `a-z` (a `-` before `]` is a literal). */
  #classRange(classStart: number): string {
    const rangeStart = this.#i;
    const lo = this.#classChar(classStart);
    let hi = lo;
    if (this.#s[this.#i] === "-" && this.#s[this.#i + 1] !== undefined && this.#s[this.#i + 1] !== "]") {
      this.#i++;
      hi = this.#classChar(classStart);
      if (hi < lo) throw new RegexSyntaxError("invalid character class range", this.#s.slice(rangeStart, this.#i));
    }
    return lo === hi ? cp(lo) : `${cp(lo)}-${cp(hi)}`;
  }

  #classChar(classStart: number): number {
    const c = this.#peek();
    if (c === undefined) throw new RegexSyntaxError("missing closing ]", this.#s.slice(classStart));
    if (c === "\\") return this.#parseEscape();
    this.#i += c.length;
    return c.codePointAt(0) as number;
  }
}

export function translateRegex(pattern: string): Translation {
  const t = new Translator(pattern);
  return { source: t.translate(), names: t.names };
}

export interface GoRegExp {
  re: RegExp;
  names: Array<string | undefined>;
  /** The linear-time matcher, made on first need (null: the source is outside its subset). */
  linear?: LinearRegExp | null;
}

const cache = new Map<string, GoRegExp>();
const CACHE_MAX = 100;

/** A Go regexp compiled to JS (cached, as OPA caches compiled patterns). */
export function compileRegex(pattern: string): GoRegExp {
  let compiled = cache.get(pattern);
  if (!compiled) {
    const { source, names } = translateRegex(pattern);
    let re: RegExp;
    try {
      re = new RegExp(source, "gv");
    } catch {
      throw new RegexSyntaxError("invalid or unsupported Perl syntax", pattern);
    }
    compiled = { re, names };
    if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
    cache.set(pattern, compiled);
  }
  return compiled;
}

/** The first match at or after `pos`: on V8, or on the linear matcher when backtracking could be costly. */
function execAt(compiled: GoRegExp, s: string, pos: number): MatchArray | null {
  if (compiled.linear === undefined)
    compiled.linear = LinearRegExp.compile(compiled.re.source, compiled.re.flags) ?? null;
  if (compiled.linear?.costly(s.length - pos)) return compiled.linear.exec(s, pos);
  compiled.re.lastIndex = pos;
  return compiled.re.exec(s);
}

const widthAt = (s: string, pos: number) => ((s.codePointAt(pos) ?? 0) > 0xffff ? 2 : 1);

/** Go's Regexp.allMatches: successive matches, an empty match right after a match skipped. */
function allMatches(compiled: GoRegExp, s: string, n: number): MatchArray[] {
  const out: MatchArray[] = [];
  const limit = n < 0 ? s.length + 1 : n;
  let pos = 0;
  let prevEnd = -1;
  while (out.length < limit && pos <= s.length) {
    const m = execAt(compiled, s, pos);
    if (!m) break;
    const end = m.index + (m[0] as string).length;
    let accept = true;
    if (end === pos) {
      if (m.index === prevEnd) accept = false;
      pos += pos < s.length ? widthAt(s, pos) : 1;
    } else {
      pos = end;
    }
    prevEnd = end;
    if (accept) out.push(m);
  }
  return out;
}

/** Go's Regexp.Expand over a JS match: $1, ${1}, $name, ${name}, $$. */
function expand(template: string, m: MatchArray, names: Array<string | undefined>): string {
  let out = "";
  let t = template;
  for (let dollar = t.indexOf("$"); dollar >= 0; dollar = t.indexOf("$")) {
    out += t.slice(0, dollar);
    t = t.slice(dollar + 1);
    if (t[0] === "$") {
      out += "$";
      t = t.slice(1);
      continue;
    }
    const ref = /^(?:\{([\p{L}\p{Nd}_]+)\}|([\p{L}\p{Nd}_]+))/u.exec(t);
    if (!ref) {
      out += "$";
      continue;
    }
    t = t.slice(ref[0].length);
    out += groupText((ref[1] ?? ref[2]) as string, m, names);
  }
  return out + t;
}

/** A group's text by number or name; "" when there is none (or it did not take part). */
function groupText(name: string, m: MatchArray, names: Array<string | undefined>): string {
  const numeric = /^(0|[1-9][0-9]{0,8})$/.test(name) ? Number(name) : -1;
  if (numeric >= 0) return m[numeric] ?? "";
  for (let i = 1; i < names.length; i++) {
    if (names[i] === name && m[i] !== undefined) return m[i] as string;
  }
  return "";
}

/** Go's Regexp.ReplaceAllString. */
function replaceAll(compiled: GoRegExp, src: string, template: string): string {
  const { names } = compiled;
  let out = "";
  let lastEnd = 0;
  let searchPos = 0;
  while (searchPos <= src.length) {
    const m = execAt(compiled, src, searchPos);
    if (!m) break;
    const start = m.index;
    const end = start + (m[0] as string).length;
    out += src.slice(lastEnd, start);
    // No replacement for an empty match right after the previous match.
    if (end > lastEnd || start === 0) out += expand(template, m, names);
    lastEnd = end;
    const width = searchPos < src.length ? widthAt(src, searchPos) : 0;
    if (searchPos + width > end) searchPos += width;
    else if (searchPos + 1 > end) searchPos++;
    else searchPos = end;
  }
  return out + src.slice(lastEnd);
}

function regexMatch(pattern: unknown, value: unknown): boolean {
  const p = str(pattern, 1);
  const v = str(value, 2);
  return execAt(compileRegex(p), v, 0) !== null;
}

export const regexBuiltins: Record<string, Builtin> = {
  "regex.match": regexMatch,
  // The deprecated name, still read by policies in Rego v0 compatibility mode.
  re_match: regexMatch,

  // OPA: any non-string or unparsable pattern is false, never an error.
  "regex.is_valid": (pattern) => {
    if (typeof pattern !== "string") return false;
    try {
      compileRegex(pattern);
      return true;
    } catch {
      return false;
    }
  },

  "regex.find_n": (pattern, value, n) => {
    const p = str(pattern, 1);
    const v = str(value, 2);
    const count = Number(intOperand(n, 3));
    return allMatches(compileRegex(p), v, count).map((m) => m[0]);
  },

  "regex.find_all_string_submatch_n": (pattern, value, n) => {
    const p = str(pattern, 1);
    const v = str(value, 2);
    const count = Number(intOperand(n, 3));
    return allMatches(compileRegex(p), v, count).map((m) => Array.from(m, (g) => g ?? ""));
  },

  "regex.replace": (base, pattern, value) => {
    const b = str(base, 1);
    const p = str(pattern, 2);
    const v = str(value, 3);
    return replaceAll(compileRegex(p), b, v);
  },
};

/** Go's Regexp.Split(s, -1): the text between matches; an empty match at the start adds nothing. */
function split(compiled: GoRegExp, pattern: string, s: string): string[] {
  if (pattern !== "" && s === "") return [""];
  const out: string[] = [];
  let begin = 0;
  let end = 0;
  for (const m of allMatches(compiled, s, -1)) {
    end = m.index;
    const matchEnd = m.index + (m[0] as string).length;
    if (matchEnd !== 0) out.push(s.slice(begin, end));
    begin = matchEnd;
  }
  if (end !== s.length) out.push(s.slice(begin));
  return out;
}

/**
 * regex.split with Go's RE2 semantics, as `mandate.regex_split`: opa-wasm answers regex.split
 * itself (V8's RegExp), before any host built-in of that name, so the planner calls this one.
 */
export const regexSplitBuiltins: Record<string, Builtin> = {
  "mandate.regex_split": (pattern, value) => {
    const p = str(pattern, 1);
    return split(compileRegex(p), p, str(value, 2));
  },
};
