// glob.match and glob.quote_meta as OPA, on gobwas/glob's syntax: `*` any run of characters
// without a delimiter, `**` any run, `?` one non-delimiter character, `[abc]` `[a-z]` `[!...]` one
// character (delimiters included), `{a,b}` alternatives, `\` escapes. A pattern is translated once
// into an anchored JS RegExp with the same meaning.
import { type Builtin, operandError, operandTypeError, str, typeName } from "./args.ts";

// OPA: `null` means no delimiters and `[]` means ["."] (topdown/glob.go).
const DEFAULT_DELIMITERS = ["."];

const cache = new Map<string, RegExp>();
const CACHE_MAX = 100;

const lit = (c: string) => `\\u{${(c.codePointAt(0) as number).toString(16)}}`;

class GlobSyntaxError extends Error {}

/** gobwas/glob's lexer and parser, emitting a regular expression. */
function translate(pattern: string, delimiters: string[]): string {
  const chars = Array.from(pattern);
  let i = 0;
  const notDelim = delimiters.length === 0 ? "[\\s\\S]" : `[^${delimiters.map(lit).join("")}]`;

  // Text up to a breaker, with escapes resolved (a trailing backslash is dropped, as gobwas v0.2.3).
  const text = (breakers: string): string => {
    let out = "";
    while (i < chars.length) {
      let c = chars[i] as string;
      if (c === "\\") {
        i++;
        if (i >= chars.length) break;
        c = chars[i] as string;
      } else if (breakers.includes(c)) {
        break;
      }
      out += lit(c);
      i++;
    }
    return out;
  };

  const range = (): string => {
    // After "[": optional "!", then either lo-hi or a list of characters, then "]".
    const next = () => {
      if (i >= chars.length) throw new GlobSyntaxError("unexpected end of input");
      return chars[i++] as string;
    };
    let not = false;
    let c = next();
    if (c === "!") {
      not = true;
      c = next();
    }
    let body: string;
    if (chars[i] === "-") {
      i++;
      const hi = next();
      // A reversed range matches nothing (JS would reject it).
      body = (hi.codePointAt(0) as number) < (c.codePointAt(0) as number) ? "" : `${lit(c)}-${lit(hi)}`;
    } else {
      i--;
      body = text("]");
    }
    if (next() !== "]") throw new GlobSyntaxError("expected close range character");
    return `[${not ? "^" : ""}${body}]`;
  };

  // A sequence, up to the end or (inside braces) a "," or "}".
  const sequence = (depth: number): string => {
    let out = "";
    while (i < chars.length) {
      const c = chars[i] as string;
      if (depth > 0 && (c === "," || c === "}")) break;
      if (c === "{") {
        i++;
        const alternatives = [sequence(depth + 1)];
        while (chars[i] === ",") {
          i++;
          alternatives.push(sequence(depth + 1));
        }
        // gobwas accepts an unclosed "{" as if closed at the end.
        if (chars[i] === "}") i++;
        out += `(?:${alternatives.join("|")})`;
      } else if (c === "[") {
        i++;
        out += range();
      } else if (c === "?") {
        i++;
        out += notDelim;
      } else if (c === "*") {
        i++;
        if (chars[i] === "*") {
          i++;
          out += "[\\s\\S]*";
        } else {
          out += `${notDelim}*`;
        }
      } else {
        out += text(depth > 0 ? "?*[{}," : "?*[{");
      }
    }
    return out;
  };

  return `^${sequence(0)}$`;
}

export function globRegExp(pattern: string, delimiters: string[]): RegExp {
  const key = `${pattern}-${delimiters.join("")}`;
  let re = cache.get(key);
  if (!re) {
    re = new RegExp(translate(pattern, delimiters), "u");
    if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
    cache.set(key, re);
  }
  return re;
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
    return globRegExp(p, delims).test(m);
  },

  "glob.quote_meta": (pattern) =>
    Array.from(str(pattern, 1))
      .map((c) => (SPECIALS.has(c) ? `\\${c}` : c))
      .join(""),
};
