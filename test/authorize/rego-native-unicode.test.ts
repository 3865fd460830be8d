// Unicode as OPA (Go) sees it, in the runtime: lower/upper map each rune by Go's simple case
// mapping (unicode.ToLower/ToUpper over Unicode 15.1.0), and strings inside composite values are
// quoted as strconv.Quote (printable runes kept, others escaped). The tables are generated
// (scripts/generate-rego-unicode.ts); the first test fails when the committed ones have drifted.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { caseMappings, unicodeTablesSource } from "../../scripts/generate-rego-unicode.ts";
import { loadRuntime } from "./rego-native-harness.ts";

const rt = loadRuntime();
const lower = (s: string) => JSON.parse(rt.call("b_lower", s));
const upper = (s: string) => JSON.parse(rt.call("b_upper", s));

describe("Unicode tables", () => {
  it("are what the generator makes from this Node's ICU", () => {
    const committed = readFileSync(
      new URL("../../services/authorize/rego/runtime/unicode-tables.ts", import.meta.url),
      "utf8",
    );
    expect(committed).toBe(unicodeTablesSource());
  });
});

describe("lower and upper as Go's strings.ToLower/ToUpper", () => {
  it("maps single runes by their simple mapping", () => {
    expect(lower("İSTANBUL")).toBe("istanbul"); // U+0130 lowers to i, not i + combining dot
    expect(upper("straße")).toBe("STRAßE"); // ß has no single-rune upper case
    expect(lower("ΟΔΟΣ")).toBe("οδοσ"); // no final sigma
    expect(upper("ﬀ ǆ ǅ ᾳ ȿ")).toBe("ﬀ Ǆ Ǆ ᾼ Ȿ"); // ȿ (2 bytes) uppers to Ȿ (3 bytes)
    expect(lower("ǅ Ⅻ Ꭰ 𐐀")).toBe("ǆ ⅻ ꭰ 𐐨");
  });

  it("leaves case pairs added after Unicode 15.1 alone, as Go's tables do", () => {
    expect(upper("\u0264\u019b")).toBe("\u0264\u019b");
    expect(lower("\ua7cb\u{10d50}")).toBe("\ua7cb\u{10d50}");
  });

  it("maps every rune with a case mapping as the generated table says", () => {
    const mappings = [...caseMappings()];
    const text = String.fromCodePoint(...mappings.map(([r]) => r));
    expect(upper(text)).toBe(String.fromCodePoint(...mappings.map(([, [u]]) => u)));
    expect(lower(text)).toBe(String.fromCodePoint(...mappings.map(([, [, l]]) => l)));
  });
});

describe("strings inside composite values, quoted as strconv.Quote", () => {
  const printed = (s: string) => JSON.parse(rt.call("rt_sprintf_args", [[s]]))[0][1];

  it("keeps printable runes and escapes the others as \\u or \\U", () => {
    expect(printed("é😀 中")).toBe('["é😀 中"]');
    expect(printed("\u00ad\u00a0\ue000\u2028")).toBe('["\\u00ad\\u00a0\\ue000\\u2028"]');
    expect(printed("\u{e0001}\u{10ffff}")).toBe('["\\U000e0001\\U0010ffff"]');
  });

  it("refuses runes assigned after Unicode 14.0, whose printability in Go's 15.1 tables is not known here", () => {
    expect(() => rt.call("rt_sprintf_args", [["\u{31350}"]])).toThrow("after Unicode 14.0");
  });
});
