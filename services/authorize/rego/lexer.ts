// Stage 1 of the Rego compiler: source text to tokens. Newlines are tokens (they separate body
// literals); the parser ignores them inside brackets. Positions are 1-based rows and columns, as
// OPA reports them.

export type TokenKind = "ident" | "number" | "string" | "rawstring" | "punct" | "newline" | "eof";

export interface Location {
  file: string;
  row: number;
  col: number;
}

export interface Token {
  kind: TokenKind;
  /** Identifier name, punctuation text, number text, or the decoded string value. */
  text: string;
  loc: Location;
  /** Length in the source, for telling `a[0]` from `a [0]`. */
  length: number;
  /** Offset of the token's first character in the source. */
  offset: number;
}

/** A compile error with OPA's shape: `file:row: rego_<kind>_error: message`. */
export class RegoError extends Error {
  readonly code: string;
  readonly loc: Location | undefined;
  constructor(
    code:
      | "rego_parse_error"
      | "rego_compile_error"
      | "rego_type_error"
      | "rego_unsafe_var_error"
      | "rego_recursion_error",
    message: string,
    loc?: Location,
  ) {
    super(loc ? `${loc.file}:${loc.row}: ${code}: ${message}` : `${code}: ${message}`);
    this.name = "RegoError";
    this.code = code;
    this.loc = loc;
  }
}

// Longest first, so ":=" wins over ":" and "==" over "=".
const PUNCTUATION = [
  ":=",
  "==",
  "!=",
  "<=",
  ">=",
  "{",
  "}",
  "[",
  "]",
  "(",
  ")",
  ",",
  ";",
  ":",
  ".",
  "=",
  "<",
  ">",
  "+",
  "-",
  "*",
  "/",
  "%",
  "|",
  "&",
];

// JSON's escapes (RFC 8259 §7), but \u, which is read with its four hex digits.
const ESCAPES: Record<string, string> = {
  '"': '"',
  "\\": "\\",
  "/": "/",
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};

/** A UTF-16 surrogate without its pair: Go's JSON decoder turns one into U+FFFD. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

export function tokenize(source: string, file = "policy.rego"): Token[] {
  return new Lexer(source, file).tokens();
}

class Lexer {
  readonly #source: string;
  readonly #file: string;
  readonly #tokens: Token[] = [];
  #i = 0;
  #row = 1;
  #lineStart = 0;

  constructor(source: string, file: string) {
    this.#source = source;
    this.#file = file;
  }

  tokens(): Token[] {
    if (this.#source.startsWith("\uFEFF")) this.#i = this.#lineStart = 1;
    while (this.#i < this.#source.length) this.#next(this.#source[this.#i] as string);
    this.#push("eof", "", this.#i, 0);
    return this.#tokens;
  }

  #next(c: string): void {
    if (c === "\n") {
      this.#push("newline", "\n", this.#i, 1);
      this.#i++;
      this.#newLine(this.#i);
    } else if (c === " " || c === "\t" || c === "\r") {
      this.#i++;
    } else if (c === "#") {
      this.#skipComment();
    } else if (/[A-Za-z_]/.test(c)) {
      this.#ident();
    } else if (/[0-9]/.test(c)) {
      this.#number();
    } else if (c === '"') {
      this.#string();
    } else if (c === "`") {
      this.#rawString();
    } else {
      this.#other(c);
    }
  }

  /** Punctuation, or the characters OPA's scanner refuses with their own messages. */
  #other(c: string): void {
    if (c === "\u0000") this.#fail("illegal null character", this.#i);
    if (c === "\uFEFF") this.#fail("illegal byte-order mark", this.#i);
    if (c === "!" && this.#source[this.#i + 1] !== "=") this.#fail("illegal ! character", this.#i);
    if (c === "$") {
      const next = this.#source[this.#i + 1];
      if (next === '"' || next === "`") {
        this.#fail('template strings ($"...") are not supported by Mandate\'s compiler', this.#i);
      }
      this.#fail("illegal $ character", this.#i);
    }
    this.#punct();
  }

  /** OPA counts columns in characters (code points), from 1. */
  #loc(at: number): Location {
    const before = this.#source.slice(this.#lineStart, at);
    const pairs = before.match(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g)?.length ?? 0;
    return { file: this.#file, row: this.#row, col: before.length - pairs + 1 };
  }

  #fail(message: string, at: number): never {
    throw new RegoError("rego_parse_error", message, this.#loc(at));
  }

  #push(kind: TokenKind, text: string, start: number, length: number): void {
    this.#tokens.push({ kind, text, loc: this.#loc(start), length, offset: start });
  }

  /** The line that starts at `at` (after a newline). */
  #newLine(at: number): void {
    this.#row++;
    this.#lineStart = at;
  }

  #skipComment(): void {
    while (this.#i < this.#source.length && this.#source[this.#i] !== "\n") this.#i++;
  }

  #ident(): void {
    const start = this.#i;
    // OPA: a letter or `_`, then letters, `_` and digits (any Unicode decimal digit).
    while (this.#i < this.#source.length && /[A-Za-z0-9_\p{Nd}]/u.test(this.#source[this.#i] as string)) this.#i++;
    this.#push("ident", this.#source.slice(start, this.#i), start, this.#i - start);
  }

  /**
   * A number as OPA's scanner reads it: digits, `.` and a fraction, an exponent. Leading zeros are
   * the parser's to refuse (as OPA's parser does); letters running on make the number illegal.
   */
  #number(): void {
    const start = this.#i;
    this.#digits();
    if (this.#source[this.#i] === ".") {
      this.#i++;
      if (this.#digits() === 0) this.#fail("expected fraction", this.#i);
    }
    if (this.#source[this.#i] === "e" || this.#source[this.#i] === "E") {
      this.#i++;
      if (this.#source[this.#i] === "+" || this.#source[this.#i] === "-") this.#i++;
      if (this.#digits() === 0) this.#fail("expected exponent", this.#i);
    }
    if (/[A-Za-z_]/.test(this.#source[this.#i] ?? "")) this.#fail("illegal number format", this.#i);
    this.#push("number", this.#source.slice(start, this.#i), start, this.#i - start);
  }

  /** Skips decimal digits; how many. */
  #digits(): number {
    const start = this.#i;
    while (/[0-9]/.test(this.#source[this.#i] ?? "")) this.#i++;
    return this.#i - start;
  }

  /**
   * A double-quoted string on one line, with JSON's escapes; the token's text is its value. As OPA
   * (which hands a string with a backslash to Go's JSON decoder), a string with an escape may not
   * hold raw control characters, and an unpaired surrogate escape decodes to U+FFFD.
   */
  #string(): void {
    const start = this.#i;
    this.#i++;
    let value = "";
    let escaped = false;
    for (;;) {
      if (this.#i >= this.#source.length || this.#source[this.#i] === "\n") this.#fail("non-terminated string", start);
      const ch = this.#source[this.#i] as string;
      if (ch === '"') break;
      if (ch === "\\") {
        escaped = true;
        value += this.#escape(start);
      } else {
        value += ch;
        this.#i++;
      }
    }
    this.#i++;
    const literal = this.#source.slice(start, this.#i);
    if (escaped && [...literal].some((ch) => ch < " ")) this.#fail(`illegal string literal: ${literal}`, start);
    this.#push("string", value.replace(LONE_SURROGATE, "\uFFFD"), start, this.#i - start);
  }

  /** The escape sequence at the current position, decoded. */
  #escape(stringStart: number): string {
    const esc = this.#source[this.#i + 1];
    if (esc !== undefined && esc in ESCAPES) {
      this.#i += 2;
      return ESCAPES[esc] as string;
    }
    if (esc !== "u") this.#fail("illegal escape sequence", this.#i + 1);
    const hex = this.#source.slice(this.#i + 2, this.#i + 6);
    if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
      const end = this.#source.indexOf('"', this.#i + 2);
      this.#fail(
        `illegal string literal: ${this.#source.slice(stringStart, end < 0 ? undefined : end + 1)}`,
        stringStart,
      );
    }
    this.#i += 6;
    return String.fromCharCode(Number.parseInt(hex, 16));
  }

  /** A backquoted string: no escapes, may span lines. */
  #rawString(): void {
    const start = this.#i;
    const end = this.#source.indexOf("`", start + 1);
    if (end < 0) this.#fail("non-terminated string", start);
    this.#push("rawstring", this.#source.slice(start + 1, end), start, end + 1 - start);
    for (let k = start + 1; k < end; k++) if (this.#source[k] === "\n") this.#newLine(k + 1);
    this.#i = end + 1;
  }

  #punct(): void {
    const punct = PUNCTUATION.find((p) => this.#source.startsWith(p, this.#i));
    if (!punct) this.#fail("illegal token", this.#i);
    this.#push("punct", punct as string, this.#i, (punct as string).length);
    this.#i += (punct as string).length;
  }
}
