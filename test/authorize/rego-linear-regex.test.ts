// The linear-time matcher (host/linear-regex.ts) that regex.* and glob.match fall back to when
// V8's backtracking could blow up: on the JS sources regex.ts and glob.ts emit, it finds the same
// match as V8 (index, text and groups) from every start position, and its time stays linear where
// V8's is exponential.
import { describe, expect, it } from "vitest";
import { LinearRegExp } from "../../services/authorize/rego/host/linear-regex.ts";
import { translateRegex } from "../../services/authorize/rego/host/regex.ts";

const PATTERNS = [
  "a+",
  "(a|ab)(c|bcd)(d*)",
  "^(a+)+$",
  "(?i)hello\\s+World",
  "x*",
  "(a*)*b",
  "\\bfoo\\b",
  "\\Bo",
  "(?m)^ab$",
  "[a-c]{2,3}?",
  "a{2,}b{0,2}",
  "(?U)a+",
  "(?s).+",
  "\\p{Greek}+",
  "[[:alpha:]]+\\d",
  "(?P<name>\\w+)@(\\w+)\\.com",
  "a|b|",
  "(|a)+",
  "(a?)+?b",
  "é+",
  "😀.",
  "[^abc]+",
  "^",
  "$",
  "(?:^|,)x",
  "\\Qa.b\\E+",
  "[\\d\\-x]+",
  "(?i:K)elvin",
];

const SUBJECTS = [
  "",
  "a",
  "aaa",
  "abcd",
  "xxab",
  "hello   world HELLO WORLD",
  "foo bar foo",
  "ab\nab\ncd",
  "abcabc",
  "aaaa!",
  "αβγ abc",
  "abc1 def2",
  "joe@example.com, ann@test.com",
  "ba",
  "aab",
  "éé😀x",
  ",x,y,x",
  "a.ba.b.",
  "12-x3",
  "Kelvin kelvin",
];

/** `[index, ...groups]` of a match, or null. */
const shape = (m: { index: number } & ArrayLike<string | undefined>) => [m.index, ...Array.from(m)];

function v8Exec(re: RegExp, s: string, from: number) {
  re.lastIndex = from;
  const m = re.exec(s);
  return m ? shape(m) : null;
}

describe("the linear matcher agrees with V8", () => {
  it.each(PATTERNS)("%s: from every position of every subject", (pattern) => {
    const { source } = translateRegex(pattern);
    const re = new RegExp(source, "gv");
    const linear = LinearRegExp.compile(source, re.flags);
    expect(linear).toBeDefined();
    for (const s of SUBJECTS) {
      for (let from = 0; from <= s.length; from++) {
        const m = linear?.exec(s, from);
        expect([s, from, m ? shape(m) : null]).toEqual([s, from, v8Exec(re, s, from)]);
      }
    }
  });

  it("on glob sources (flag u): stars, alternatives, classes, delimiters", () => {
    const sources = [
      "^[^\\u{2e}]*\\u{2e}com$",
      "^[\\s\\S]*a[^\\u{2e}]*b$",
      "^(?:a|b[^\\u{2e}]*)[!-z]\\u{3f}$",
      "^[^x]$",
    ];
    for (const source of sources) {
      const re = new RegExp(source, "u");
      const linear = LinearRegExp.compile(source, "u");
      expect(linear).toBeDefined();
      for (const s of ["a.com", "x.y.com", "ab", "a.xb", "bzz!?", "a!?", "x", "y", "", "😀"]) {
        expect([source, s, linear?.exec(s, 0) !== null]).toEqual([source, s, re.test(s)]);
      }
    }
  });
});

describe("linear time", () => {
  it("nested repetition over a long subject, where backtracking is exponential", () => {
    const linear = LinearRegExp.compile(translateRegex("^(a+)+$").source, "v") as LinearRegExp;
    const started = performance.now();
    expect(linear.exec(`${"a".repeat(100_000)}!`, 0)).toBeNull();
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it("costly: V8 keeps short subjects; nesting or many repetitions move long ones here", () => {
    const flat = LinearRegExp.compile(translateRegex("^[a-z]+@[a-z]+\\.[a-z]{2,}$").source, "v") as LinearRegExp;
    expect(flat.costly(20)).toBe(false);
    expect(flat.costly(1000)).toBe(true);
    const nested = LinearRegExp.compile(translateRegex("^(a+)+$").source, "v") as LinearRegExp;
    expect(nested.costly(10)).toBe(false);
    expect(nested.costly(40)).toBe(true);
    const literal = LinearRegExp.compile(translateRegex("needle").source, "v") as LinearRegExp;
    expect(literal.costly(100_000)).toBe(false);
  });

  it("refuses what it does not read (then V8 matches)", () => {
    expect(LinearRegExp.compile("(a)\\1", "v")).toBeUndefined();
    expect(LinearRegExp.compile("(?<!a)b", "v")).toBeUndefined();
    expect(LinearRegExp.compile("(?:a{1000}){1000}", "v")).toBeUndefined();
  });
});
