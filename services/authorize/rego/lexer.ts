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

export function tokenize(source: string, file = "policy.rego"): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let row = 1;
  let lineStart = 0;
  const loc = (at: number): Location => ({ file, row, col: at - lineStart + 1 });
  const fail = (message: string, at: number): never => {
    throw new RegoError("rego_parse_error", message, loc(at));
  };
  while (i < source.length) {
    const c = source[i] as string;
    if (c === "\n") {
      tokens.push({ kind: "newline", text: "\n", loc: loc(i), length: 1 });
      i++;
      row++;
      lineStart = i;
      continue;
    }
    if (c === " " || c === "\t" || c === "\r") {
      i++;
      continue;
    }
    if (c === "#") {
      while (i < source.length && source[i] !== "\n") i++;
      continue;
    }
    const start = i;
    if (/[A-Za-z_]/.test(c)) {
      while (i < source.length && /[A-Za-z0-9_]/.test(source[i] as string)) i++;
      tokens.push({ kind: "ident", text: source.slice(start, i), loc: loc(start), length: i - start });
      continue;
    }
    if (/[0-9]/.test(c)) {
      // JSON number syntax (RFC 8259 §6): int frac? exp?
      const match = /^(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(source.slice(i));
      if (!match) fail("invalid number", i);
      i += (match as RegExpExecArray)[0].length;
      if (i < source.length && /[A-Za-z0-9_.]/.test(source[i] as string)) fail("invalid number", start);
      tokens.push({ kind: "number", text: source.slice(start, i), loc: loc(start), length: i - start });
      continue;
    }
    if (c === '"') {
      i++;
      let value = "";
      for (;;) {
        if (i >= source.length || source[i] === "\n") fail("non-terminated string", start);
        const ch = source[i] as string;
        if (ch === '"') {
          i++;
          break;
        }
        if (ch === "\\") {
          const esc = source[i + 1];
          const simple: Record<string, string> = {
            '"': '"',
            "\\": "\\",
            "/": "/",
            b: "\b",
            f: "\f",
            n: "\n",
            r: "\r",
            t: "\t",
          };
          if (esc !== undefined && esc in simple) {
            value += simple[esc];
            i += 2;
          } else if (esc === "u") {
            const hex = source.slice(i + 2, i + 6);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("invalid unicode escape in string", i);
            value += String.fromCharCode(Number.parseInt(hex, 16));
            i += 6;
          } else {
            fail(`invalid escape sequence \\${esc ?? ""}`, i);
          }
          continue;
        }
        value += ch;
        i++;
      }
      tokens.push({ kind: "string", text: value, loc: loc(start), length: i - start });
      continue;
    }
    if (c === "`") {
      const end = source.indexOf("`", i + 1);
      if (end < 0) fail("non-terminated raw string", start);
      const text = source.slice(i + 1, end);
      tokens.push({ kind: "rawstring", text, loc: loc(start), length: end + 1 - start });
      for (let k = i + 1; k < end; k++) {
        if (source[k] === "\n") {
          row++;
          lineStart = k + 1;
        }
      }
      i = end + 1;
      continue;
    }
    const punct = PUNCTUATION.find((p) => source.startsWith(p, i));
    if (!punct) fail(`unexpected character ${JSON.stringify(c)}`, i);
    tokens.push({ kind: "punct", text: punct as string, loc: loc(i), length: (punct as string).length });
    i += (punct as string).length;
  }
  tokens.push({ kind: "eof", text: "", loc: loc(i), length: 0 });
  return tokens;
}
