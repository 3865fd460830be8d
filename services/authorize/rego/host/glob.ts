// glob.match and glob.quote_meta as OPA, on gobwas/glob's syntax: `*` any run of characters
// without a delimiter, `**` any run, `?` one non-delimiter character, `[abc]` `[a-z]` `[!...]` one
// character (delimiters included), `{a,b}` alternatives, `\` escapes. A pattern is translated once
// into an anchored JS RegExp with the same meaning. Each `*` is a repetition, so backtracking is
// polynomial in the subject's length (to the power of the stars): a costly match runs on the
// linear-time matcher (linear-regex.ts), as regex.ts does.
import { type Builtin, operandError, operandTypeError, str, typeName } from "./args.ts";
import { LinearRegExp } from "./linear-regex.ts";

// OPA: `null` means no delimiters and `[]` means ["."] (topdown/glob.go).
const DEFAULT_DELIMITERS = ["."];

interface Glob {
  re: RegExp;
  /** The linear-time matcher, made on first need (null: never expected, the source is outside its subset). */
  linear?: LinearRegExp | null;
}

const cache = new Map<string, Glob>();
const CACHE_MAX = 100;

const lit = (c: string) => `\\u{${(c.codePointAt(0) as number).toString(16)}}`;

class GlobSyntaxError extends Error {}

/** gobwas/glob's lexer and parser, emitting a regular expression. */
function translate(pattern: string, delimiters: string[]): string {
  return `^${new GlobTranslator(pattern, delimiters).sequence(0)}$`;
}

class GlobTranslator {
  readonly #chars: string[];
  /** One character that is not a delimiter. */
  readonly #notDelim: string;
  #i = 0;

  constructor(pattern: string, delimiters: string[]) {
    this.#chars = Array.from(pattern);
    this.#notDelim = delimiters.length === 0 ? "[\\s\\S]" : `[^${delimiters.map(lit).join("")}]`;
  }

  /** A sequence, up to the end or (inside braces) a "," or "}". */
  sequence(depth: number): string {
    let out = "";
    while (this.#i < this.#chars.length) {
      const c = this.#chars[this.#i] as string;
      if (depth > 0 && (c === "," || c === "}")) break;
      out += this.#element(c, depth);
    }
    return out;
  }

  #element(c: string, depth: number): string {
    switch (c) {
      case "{":
        this.#i++;
        return this.#alternatives(depth);
      case "[":
        this.#i++;
        return this.#range();
      case "?":
        this.#i++;
        return this.#notDelim;
      case "*":
        this.#i++;
        return this.#star();
      default:
        return this.#text(depth > 0 ? "?*[{}," : "?*[{");
    }
  }

  /** After "{": sequences separated by ",", up to "}". */
  #alternatives(depth: number): string {
    const alternatives = [this.sequence(depth + 1)];
    while (this.#chars[this.#i] === ",") {
      this.#i++;
      alternatives.push(this.sequence(depth + 1));
    }
    // gobwas accepts an unclosed "{" as if closed at the end.
    if (this.#chars[this.#i] === "}") this.#i++;
    return `(?:${alternatives.join("|")})`;
  }

  /** After "*": a second "*" crosses delimiters. */
  #star(): string {
    if (this.#chars[this.#i] !== "*") return `${this.#notDelim}*`;
    this.#i++;
    return "[\\s\\S]*";
  }

  /** Text up to a breaker, with escapes resolved (a trailing backslash is dropped, as gobwas v0.2.3). */
  #text(breakers: string): string {
    let out = "";
    while (this.#i < this.#chars.length) {
      let c = this.#chars[this.#i] as string;
      if (c === "\\") {
        this.#i++;
        if (this.#i >= this.#chars.length) break;
        c = this.#chars[this.#i] as string;
      } else if (breakers.includes(c)) {
        break;
      }
      out += lit(c);
      this.#i++;
    }
    return out;
  }

  /** After "[": optional "!", then either lo-hi or a list of characters, then "]". */
  #range(): string {
    let not = false;
    let c = this.#next();
    if (c === "!") {
      not = true;
      c = this.#next();
    }
    let body: string;
    if (this.#chars[this.#i] === "-") {
      this.#i++;
      const hi = this.#next();
      // A reversed range matches nothing (JS would reject it).
      body = (hi.codePointAt(0) as number) < (c.codePointAt(0) as number) ? "" : `${lit(c)}-${lit(hi)}`;
    } else {
      this.#i--;
      body = this.#text("]");
    }
    if (this.#next() !== "]") throw new GlobSyntaxError("expected close range character");
    return `[${not ? "^" : ""}${body}]`;
  }

  #next(): string {
    if (this.#i >= this.#chars.length) throw new GlobSyntaxError("unexpected end of input");
    return this.#chars[this.#i++] as string;
  }
}

function compileGlob(pattern: string, delimiters: string[]): Glob {
  const key = `${pattern}-${delimiters.join("")}`;
  let glob = cache.get(key);
  if (!glob) {
    glob = { re: new RegExp(translate(pattern, delimiters), "u") };
    if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
    cache.set(key, glob);
  }
  return glob;
}

/** Whether `text` matches: on V8, or on the linear matcher when backtracking could be costly. */
export function globMatches(pattern: string, delimiters: string[], text: string): boolean {
  const glob = compileGlob(pattern, delimiters);
  if (glob.linear === undefined) glob.linear = LinearRegExp.compile(glob.re.source, glob.re.flags) ?? null;
  if (glob.linear?.costly(text.length)) return glob.linear.exec(text, 0) !== null;
  return glob.re.test(text);
}

const SPECIALS = new Set(["*", "?", "\\", "[", "]", "{", "}"]);

export const globBuiltins: Record<string, Builtin> = {
  "glob.match": (pattern, delimiters, match) => {
    const p = str(pattern, 1);
    let delims: string[];
    if (delimiters === null) {
      delims = [];
    } else if (Array.isArray(delimiters)) {
      delims = delimiters.map((d) => {
        if (typeof d !== "string")
          throw operandError(2, `must be array of strings but got array containing ${typeName(d)}`);
        if (Array.from(d).length !== 1) throw operandError(2, "must be array of runes but got array containing string");
        return d;
      });
      if (delims.length === 0) delims = DEFAULT_DELIMITERS;
    } else {
      throw operandTypeError(2, delimiters, "array", "null");
    }
    const m = str(match, 3);
    return globMatches(p, delims, m);
  },

  "glob.quote_meta": (pattern) =>
    Array.from(str(pattern, 1))
      .map((c) => (SPECIALS.has(c) ? `\\${c}` : c))
      .join(""),
};
