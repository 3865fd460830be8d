// A linear-time matcher for the JS regular expressions regex.ts and glob.ts emit: the pattern as a
// Thompson NFA, run as a Pike VM (Russ Cox, "Regular Expression Matching: the Virtual Machine
// Approach"): every thread advances in lockstep over the subject, in priority order, so the first
// match found is the leftmost-first one Go's regexp (and a backtracking engine) reports, with its
// captures. Time is O(pattern × subject), whatever the pattern.
//
// Why: V8 matches by backtracking, exponential on nested repetition (`(a+)+$` on "aaaa…!") and
// polynomial on adjacent ones; Go's RE2, which OPA uses, is linear. A host built-in runs outside the
// Wasm evaluation budget and cannot be interrupted, so a call whose backtracking could be expensive
// (`costly`, from the pattern's shape and the subject's length) runs here instead; the usual short
// subjects stay on V8, which is faster for them.
//
// Only the emitted subset is read: alternation, (capturing, non-capturing and `(?i:…)`) groups,
// greedy and lazy quantifiers, classes and single characters (tested through a one-character V8
// RegExp of their own source, so class semantics are V8's), `^` `$` `\b` `\B`, and one-character
// lookarounds. Anything else (or a program over MAX_PROGRAM instructions) is `undefined`: V8 then.

/** A match as RegExp.exec gives it: the whole match, the groups (undefined when unset), its index. */
export type MatchArray = Array<string | undefined> & { index: number };

const MAX_PROGRAM = 20_000;
/** V8 is used while its worst case stays below this many backtracking steps. */
const BACKTRACK_LIMIT = 1e6;

class Unsupported extends Error {}

/** One character's class, as V8 decides it: a RegExp of the class alone, answers cached. */
class CharTest {
  readonly #re: RegExp;
  readonly #ascii = new Int8Array(128); // 0 unknown, 1 no, 2 yes
  readonly #other = new Map<number, boolean>();

  constructor(source: string, flags: string) {
    try {
      this.#re = new RegExp(`^(?:${source})$`, flags);
    } catch {
      throw new Unsupported(source);
    }
  }

  test(cp: number): boolean {
    if (cp < 128) {
      const known = this.#ascii[cp] as number;
      if (known !== 0) return known === 2;
      const yes = this.#re.test(String.fromCodePoint(cp));
      this.#ascii[cp] = yes ? 2 : 1;
      return yes;
    }
    let yes = this.#other.get(cp);
    if (yes === undefined) {
      yes = this.#re.test(String.fromCodePoint(cp));
      if (this.#other.size > 4096) this.#other.clear();
      this.#other.set(cp, yes);
    }
    return yes;
  }
}

// Assertions.
const BEGIN = 0;
const END = 1;
const WORD_BOUNDARY = 2;
const NOT_WORD_BOUNDARY = 3;
const AFTER = 4; // the character before matches `test`
const BEFORE = 5; // the character after matches `test`

type Node =
  | { t: "char"; test: CharTest }
  | { t: "assert"; kind: number; test?: CharTest }
  | { t: "cat"; items: Node[] }
  | { t: "alt"; items: Node[] }
  | { t: "group"; index: number; body: Node }
  | { t: "repeat"; min: number; max: number; greedy: boolean; body: Node };

/** How V8's backtracking could blow up on this pattern. */
interface Shape {
  /** Repetitions (each multiplies the paths a backtracking engine may try). */
  repeats: number;
  /** A repetition of something that itself repeats or alternates: exponential. */
  nested: boolean;
  /** Alternatives, in all: the base of the exponential. */
  branches: number;
}

/** Recursive descent over the emitted subset, keeping the shape as it goes. */
class Parser {
  readonly #s: string;
  readonly #flags: string;
  #i = 0;
  groups = 0;
  readonly shape: Shape = { repeats: 0, nested: false, branches: 0 };

  constructor(source: string, flags: string) {
    this.#s = source;
    this.#flags = flags;
  }

  parse(): Node {
    const node = this.#alternation(false);
    if (this.#i < this.#s.length) throw new Unsupported(this.#s);
    return node;
  }

  #alternation(fold: boolean): Node {
    const items = [this.#concat(fold)];
    while (this.#s[this.#i] === "|") {
      this.#i++;
      items.push(this.#concat(fold));
    }
    if (items.length === 1) return items[0] as Node;
    this.shape.branches += items.length;
    return { t: "alt", items };
  }

  #concat(fold: boolean): Node {
    const items: Node[] = [];
    for (let c = this.#s[this.#i]; c !== undefined && c !== "|" && c !== ")"; c = this.#s[this.#i]) {
      items.push(this.#quantified(this.#atom(c, fold)));
    }
    return { t: "cat", items };
  }

  #quantified(body: Node): Node {
    const q = /^(?:([*+?])|\{(\d+)(,(\d*))?\})(\??)/.exec(this.#s.slice(this.#i, this.#i + 24));
    if (!q) return body;
    this.#i += q[0].length;
    const [min, max] = q[1] ? bounds(q[1]) : braces(q[2] as string, q[3], q[4]);
    this.shape.repeats++;
    if (max !== 1 && complex(body)) this.shape.nested = true;
    return { t: "repeat", min, max, greedy: q[5] !== "?", body };
  }

  #atom(c: string, fold: boolean): Node {
    if (c === "(") return this.#group(fold);
    if (c === "^" || c === "$") {
      this.#i++;
      return { t: "assert", kind: c === "^" ? BEGIN : END };
    }
    if (c === "\\" && (this.#s[this.#i + 1] === "b" || this.#s[this.#i + 1] === "B")) {
      this.#i += 2;
      return { t: "assert", kind: this.#s[this.#i - 1] === "b" ? WORD_BOUNDARY : NOT_WORD_BOUNDARY };
    }
    return { t: "char", test: this.#charTest(fold) };
  }

  #group(fold: boolean): Node {
    const open = /^\((\?:|\?i:|\?<=|\?=)?/.exec(this.#s.slice(this.#i, this.#i + 4))?.[0] as string;
    this.#i += open.length;
    if (open === "(?<=" || open === "(?=") {
      const test = this.#charTest(fold);
      this.#close();
      return { t: "assert", kind: open === "(?<=" ? AFTER : BEFORE, test };
    }
    const index = open === "(" ? ++this.groups : 0;
    const body = this.#alternation(fold || open === "(?i:");
    this.#close();
    return index > 0 ? { t: "group", index, body } : body;
  }

  #close(): void {
    if (this.#s[this.#i] !== ")") throw new Unsupported(this.#s);
    this.#i++;
  }

  /** One character: a class (nested classes and escapes skipped whole), an escape or a literal. */
  #charTest(fold: boolean): CharTest {
    const start = this.#i;
    if (this.#s[this.#i] === "[") this.#skipClass();
    else if (this.#s[this.#i] === "\\") this.#skipEscape();
    else this.#i += (this.#s.codePointAt(this.#i) as number) > 0xffff ? 2 : 1;
    return new CharTest(this.#s.slice(start, this.#i), fold ? `${this.#flags}i` : this.#flags);
  }

  #skipClass(): void {
    let depth = 0;
    do {
      const c = this.#s[this.#i];
      if (c === undefined) throw new Unsupported(this.#s);
      if (c === "\\") {
        this.#skipEscape();
        continue;
      }
      if (c === "[") depth++;
      else if (c === "]") depth--;
      this.#i++;
    } while (depth > 0);
  }

  /** `\u{…}`, `\p{…}`, `\P{…}`, or a backslash and one character. */
  #skipEscape(): void {
    const braced = /^\\[upP]\{[^}]*\}/.exec(this.#s.slice(this.#i, this.#i + 64));
    if (braced) this.#i += braced[0].length;
    else if (this.#i + 1 < this.#s.length) this.#i += 2;
    else throw new Unsupported(this.#s);
  }
}

const bounds = (q: string): [number, number] => (q === "*" ? [0, -1] : q === "+" ? [1, -1] : [0, 1]);

function braces(min: string, comma: string | undefined, max: string | undefined): [number, number] {
  const lo = Number(min);
  if (comma === undefined) return [lo, lo];
  return [lo, max === "" || max === undefined ? -1 : Number(max)];
}

function complex(node: Node): boolean {
  switch (node.t) {
    case "repeat":
    case "alt":
      return true;
    case "cat":
      return node.items.some(complex);
    case "group":
      return complex(node.body);
    default:
      return false;
  }
}

// Instructions.
const CHAR = 0;
const SPLIT = 1; // to x first, then y
const JMP = 2;
const SAVE = 3;
const ASSERT = 4;
const MATCH = 5;

interface Inst {
  op: number;
  x: number;
  y: number;
  test?: CharTest;
}

/** The NFA as a program: SAVE 0, the pattern, SAVE 1, MATCH. */
class Compiler {
  readonly prog: Inst[] = [];

  compile(node: Node): Inst[] {
    this.#emit(SAVE, 0);
    this.#node(node);
    this.#emit(SAVE, 1);
    this.#emit(MATCH);
    return this.prog;
  }

  #emit(op: number, x = 0, y = 0, test?: CharTest): number {
    if (this.prog.length >= MAX_PROGRAM) throw new Unsupported("program too large");
    this.prog.push({ op, x, y, test });
    return this.prog.length - 1;
  }

  #node(node: Node): void {
    switch (node.t) {
      case "char":
        this.#emit(CHAR, 0, 0, node.test);
        return;
      case "assert":
        this.#emit(ASSERT, node.kind, 0, node.test);
        return;
      case "cat":
        for (const item of node.items) this.#node(item);
        return;
      case "alt":
        this.#alternatives(node.items);
        return;
      case "group":
        this.#emit(SAVE, 2 * node.index);
        this.#node(node.body);
        this.#emit(SAVE, 2 * node.index + 1);
        return;
      case "repeat":
        this.#repeat(node);
    }
  }

  /** SPLIT to the first alternative or on to the next SPLIT; each alternative then JMPs past the rest. */
  #alternatives(items: Node[]): void {
    const jumps: number[] = [];
    items.forEach((item, k) => {
      const last = k === items.length - 1;
      const split = last ? -1 : this.#emit(SPLIT, this.prog.length + 1);
      this.#node(item);
      if (last) return;
      jumps.push(this.#emit(JMP));
      (this.prog[split] as Inst).y = this.prog.length;
    });
    for (const j of jumps) (this.prog[j] as Inst).x = this.prog.length;
  }

  #repeat(node: Extract<Node, { t: "repeat" }>): void {
    for (let k = 0; k < node.min; k++) this.#node(node.body);
    if (node.max === -1) {
      const split = this.#emit(SPLIT);
      this.#node(node.body);
      this.#emit(JMP, split);
      this.#fork(split, split + 1, this.prog.length, node.greedy);
      return;
    }
    const splits: number[] = [];
    for (let k = node.min; k < node.max; k++) {
      splits.push(this.#emit(SPLIT));
      this.#node(node.body);
    }
    for (const split of splits) this.#fork(split, split + 1, this.prog.length, node.greedy);
  }

  /** A SPLIT between the body and what follows: greedy prefers the body. */
  #fork(split: number, body: number, out: number, greedy: boolean): void {
    const inst = this.prog[split] as Inst;
    inst.x = greedy ? body : out;
    inst.y = greedy ? out : body;
  }
}

const isWordUnit = (c: number) =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f;

const isHighSurrogate = (c: number) => c >= 0xd800 && c <= 0xdbff;
const isLowSurrogate = (c: number) => c >= 0xdc00 && c <= 0xdfff;

function codePointBefore(s: string, pos: number): number {
  const low = s.charCodeAt(pos - 1);
  if (isLowSurrogate(low) && pos >= 2) {
    const high = s.charCodeAt(pos - 2);
    if (isHighSurrogate(high)) return (high - 0xd800) * 0x400 + (low - 0xdc00) + 0x10000;
  }
  return low;
}

function holds(inst: Inst, s: string, pos: number): boolean {
  switch (inst.x) {
    case BEGIN:
      return pos === 0;
    case END:
      return pos === s.length;
    case WORD_BOUNDARY:
    case NOT_WORD_BOUNDARY: {
      const boundary =
        (pos > 0 && isWordUnit(s.charCodeAt(pos - 1))) !== (pos < s.length && isWordUnit(s.charCodeAt(pos)));
      return boundary === (inst.x === WORD_BOUNDARY);
    }
    case AFTER:
      return pos > 0 && (inst.test as CharTest).test(codePointBefore(s, pos));
    default:
      return pos < s.length && (inst.test as CharTest).test(s.codePointAt(pos) as number);
  }
}

/** The threads at one position: a sparse set of program counters, each with its captures. */
class Threads {
  readonly pcs: Int32Array;
  readonly caps: Int32Array[];
  readonly #sparse: Int32Array;
  size = 0;

  constructor(n: number) {
    this.pcs = new Int32Array(n);
    this.#sparse = new Int32Array(n);
    this.caps = new Array(n);
  }

  has(pc: number): boolean {
    const i = this.#sparse[pc] as number;
    return i < this.size && this.pcs[i] === pc;
  }

  add(pc: number, caps: Int32Array): void {
    this.#sparse[pc] = this.size;
    this.pcs[this.size] = pc;
    this.caps[this.size++] = caps;
  }
}

export class LinearRegExp {
  readonly #prog: Inst[];
  readonly #slots: number;
  readonly #shape: Shape;
  readonly #stack: Array<[number, Int32Array]> = [];

  private constructor(prog: Inst[], groups: number, shape: Shape) {
    this.#prog = prog;
    this.#slots = 2 * (groups + 1);
    this.#shape = shape;
  }

  /** The matcher for a RegExp source and its flags ("u" or "v"); undefined outside the emitted subset. */
  static compile(source: string, flags: string): LinearRegExp | undefined {
    try {
      const parser = new Parser(source, flags.replace(/[gi]/g, ""));
      const node = parser.parse();
      return new LinearRegExp(new Compiler().compile(node), parser.groups, parser.shape);
    } catch (error) {
      if (error instanceof Unsupported) return undefined;
      throw error;
    }
  }

  /**
   * Whether backtracking over `length` code units might exceed BACKTRACK_LIMIT steps: about
   * (n+1)^(repeats+1) for a flat pattern, (branches+2)^n once repetitions nest.
   */
  costly(length: number): boolean {
    const { repeats, nested, branches } = this.#shape;
    const log = nested ? length * Math.log(branches + 2) : (repeats + 1) * Math.log(length + 1);
    return log > Math.log(BACKTRACK_LIMIT);
  }

  /** The leftmost-first match starting at or after `start`, as RegExp.exec (with lastIndex = start). */
  exec(s: string, start: number): MatchArray | null {
    const n = this.#prog.length;
    // As V8 with flag u or v: a start inside a surrogate pair backs up to the pair.
    const from =
      start > 0 && isLowSurrogate(s.charCodeAt(start)) && isHighSurrogate(s.charCodeAt(start - 1)) ? start - 1 : start;
    let current = new Threads(n);
    let next = new Threads(n);
    let matched: Int32Array | undefined;
    const none = new Int32Array(this.#slots).fill(-1);
    for (let pos = from; pos <= s.length; ) {
      if (!matched) this.#follow(current, 0, none, s, pos);
      if (current.size === 0) break;
      const cp = pos < s.length ? (s.codePointAt(pos) as number) : -1;
      const after = pos + (cp > 0xffff ? 2 : 1);
      matched = this.#step(current, next, cp, s, after) ?? matched;
      [current, next] = [next, current];
      next.size = 0;
      pos = after;
    }
    return matched ? toMatch(s, matched) : null;
  }

  /** Advances each thread over `cp`, in priority order; a match cuts the threads after it. */
  #step(current: Threads, next: Threads, cp: number, s: string, after: number): Int32Array | undefined {
    for (let i = 0; i < current.size; i++) {
      const inst = this.#prog[current.pcs[i] as number] as Inst;
      if (inst.op === MATCH) return current.caps[i];
      if (inst.op === CHAR && cp >= 0 && (inst.test as CharTest).test(cp)) {
        this.#follow(next, (current.pcs[i] as number) + 1, current.caps[i] as Int32Array, s, after);
      }
    }
    return undefined;
  }

  /** Adds a thread and everything it reaches without consuming a character, depth first by priority. */
  #follow(list: Threads, pc0: number, caps0: Int32Array, s: string, pos: number): void {
    const stack = this.#stack;
    stack.push([pc0, caps0]);
    while (stack.length > 0) {
      const [pc, caps] = stack.pop() as [number, Int32Array];
      if (list.has(pc)) continue;
      list.add(pc, caps);
      const inst = this.#prog[pc] as Inst;
      if (inst.op === JMP) stack.push([inst.x, caps]);
      else if (inst.op === SPLIT) stack.push([inst.y, caps], [inst.x, caps]);
      else if (inst.op === SAVE) stack.push([pc + 1, saved(caps, inst.x, pos)]);
      else if (inst.op === ASSERT && holds(inst, s, pos)) stack.push([pc + 1, caps]);
    }
  }
}

function saved(caps: Int32Array, slot: number, pos: number): Int32Array {
  const copy = caps.slice();
  copy[slot] = pos;
  return copy;
}

function toMatch(s: string, caps: Int32Array): MatchArray {
  const groups: Array<string | undefined> = [];
  for (let g = 0; g < caps.length; g += 2) {
    const start = caps[g] as number;
    const end = caps[g + 1] as number;
    groups.push(start >= 0 && end >= 0 ? s.slice(start, end) : undefined);
  }
  return Object.assign(groups, { index: caps[0] as number });
}
