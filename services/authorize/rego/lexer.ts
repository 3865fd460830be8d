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
      this.#punct(c);
    }
  }

  #loc(at: number): Location {
    return { file: this.#file, row: this.#row, col: at - this.#lineStart + 1 };
  }

  #fail(message: string, at: number): never {
    throw new RegoError("rego_parse_error", message, this.#loc(at));
  }

  #push(kind: TokenKind, text: string, start: number, length: number): void {
    this.#tokens.push({ kind, text, loc: this.#loc(start), length });
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
    while (this.#i < this.#source.length && /[A-Za-z0-9_]/.test(this.#source[this.#i] as string)) this.#i++;
    this.#push("ident", this.#source.slice(start, this.#i), start, this.#i - start);
  }

  /** JSON number syntax (RFC 8259 §6): int frac? exp?, not running into a name or another dot. */
  #number(): void {
    const start = this.#i;
    const match = /^(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(this.#source.slice(start));
    if (!match) this.#fail("invalid number", start);
    this.#i += (match as RegExpExecArray)[0].length;
    if (this.#i < this.#source.length && /[A-Za-z0-9_.]/.test(this.#source[this.#i] as string)) {
      this.#fail("invalid number", start);
    }
    this.#push("number", this.#source.slice(start, this.#i), start, this.#i - start);
  }

  /** A double-quoted string on one line, with JSON's escapes; the token's text is its value. */
  #string(): void {
    const start = this.#i;
    this.#i++;
    let value = "";
    for (;;) {
      if (this.#i >= this.#source.length || this.#source[this.#i] === "\n") this.#fail("non-terminated string", start);
      const ch = this.#source[this.#i] as string;
      if (ch === '"') break;
      if (ch === "\\") {
        value += this.#escape();
      } else {
        value += ch;
        this.#i++;
      }
    }
    this.#i++;
    this.#push("string", value, start, this.#i - start);
  }

  /** The escape sequence at the current position, decoded. */
  #escape(): string {
    const esc = this.#source[this.#i + 1];
    if (esc !== undefined && esc in ESCAPES) {
      this.#i += 2;
      return ESCAPES[esc] as string;
    }
    if (esc !== "u") this.#fail(`invalid escape sequence \\${esc ?? ""}`, this.#i);
    const hex = this.#source.slice(this.#i + 2, this.#i + 6);
    if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.#fail("invalid unicode escape in string", this.#i);
    this.#i += 6;
    return String.fromCharCode(Number.parseInt(hex, 16));
  }

  /** A backquoted string: no escapes, may span lines. */
  #rawString(): void {
    const start = this.#i;
    const end = this.#source.indexOf("`", start + 1);
    if (end < 0) this.#fail("non-terminated raw string", start);
    this.#push("rawstring", this.#source.slice(start + 1, end), start, end + 1 - start);
    for (let k = start + 1; k < end; k++) if (this.#source[k] === "\n") this.#newLine(k + 1);
    this.#i = end + 1;
  }

  #punct(c: string): void {
    const punct = PUNCTUATION.find((p) => this.#source.startsWith(p, this.#i));
    if (!punct) this.#fail(`unexpected character ${JSON.stringify(c)}`, this.#i);
    this.#push("punct", punct as string, this.#i, (punct as string).length);
    this.#i += (punct as string).length;
  }
}
