// Numbers in the runtime as OPA 1.x has them: json.Number text kept exactly, int64 arithmetic
// exact, comparisons exact (big.Rat), FloatToNumber's output for decimal results, and an error
// wherever OPA's big.Float result cannot be reproduced exactly (never another value).
import { describe, expect, it } from "vitest";
import { loadRuntime, Num, type RegoArg } from "./rego-native-harness.ts";

const rt = loadRuntime();
const n = (text: string) => new Num(text);
const call = (name: string, ...args: RegoArg[]) => rt.call(name, ...args);

describe("arithmetic as OPA", () => {
  it("computes int64 exactly beyond 2^53, printing integers in full", () => {
    expect(call("b_plus", n("9007199254740993"), n("1"))).toBe("9007199254740994");
    expect(call("b_minus", n("-9223372036854775807"), n("1"))).toBe("-9223372036854775808");
    expect(call("b_mul", n("3037000499"), n("3037000499"))).toBe("9223372030926249001");
    expect(call("b_rem", n("-7"), n("2"))).toBe("-1");
    expect(call("b_abs", n("-12345678901234567"))).toBe("12345678901234567");
  });

  it("computes integral operands of +, - and * exactly at any size (OPA's big.Int), and sums them", () => {
    expect(call("b_plus", n("9223372036854775807"), n("1"))).toBe("9223372036854775808");
    expect(call("b_minus", n("-18446744073709551617"), n("1"))).toBe("-18446744073709551618");
    expect(call("b_mul", n("-99999999999999999999"), n("99999999999999999999"))).toBe(
      "-9999999999999999999800000000000000000001",
    );
    expect(call("b_plus", n("1e30"), n("1"))).toBe("1000000000000000000000000000001");
    expect(call("b_plus", n("10.00"), n("5"))).toBe("15");
    expect(call("b_mul", n("0.0"), n("-1"))).toBe("0"); // big.Int has no -0
    expect(call("b_sum", [n("9223372036854775807"), n("9223372036854775807")])).toBe("18446744073709551614");
    expect(call("b_abs", n("-9223372036854775808"))).toBe("9223372036854775808");
  });

  it("divides as OPA: exact quotients of ints, FloatToNumber's %g otherwise, -0 from a zero dividend", () => {
    expect(call("b_div", n("10"), n("4"))).toBe("2.5");
    expect(call("b_div", n("10"), n("5"))).toBe("2");
    expect(call("b_div", n("1"), n("5"))).toBe("0.2");
    expect(call("b_div", n("1"), n("100000"))).toBe("1e-05");
    expect(call("b_div", n("2500001"), n("2"))).toBe("1.2500005e+06");
    expect(call("b_div", n("0"), n("-5"))).toBe("-0");
    expect(call("b_div", n("1e3"), n("10"))).toBe("100");
    expect(() => call("b_div", n("7"), n("0.0"))).toThrow("div: divide by zero");
  });

  it("computes with binary fractions exactly and prints them as Go's shortest %g", () => {
    expect(call("b_mul", n("2"), n("1.5"))).toBe("3");
    expect(call("b_plus", n("1.5"), n("0.25"))).toBe("1.75");
    expect(call("b_mul", n("1234567"), n("0.5"))).toBe("617283.5");
    expect(call("b_mul", n("-0.5"), n("0"))).toBe("-0");
    expect(call("b_minus", n("1.5"), n("1.5"))).toBe("0");
    expect(call("b_sum", [n("1"), n("2.5"), n("0.25")])).toBe("3.75");
    expect(call("b_product", [n("2"), n("1.5")])).toBe("3");
    expect(call("b_abs", n("-0.1"))).toBe("0.1");
  });

  it("refuses what OPA computes in rounded big.Float arithmetic", () => {
    for (const [name, a, b] of [
      ["b_plus", "0.1", "0.2"],
      ["b_div", "1", "3"],
    ] as const) {
      expect(() => call(name, n(a), n(b)), `${name}(${a}, ${b})`).toThrow(/eval_builtin_error/);
    }
  });

  it("rounds half away from zero; refuses ceil and floor in (-1, 0), where OPA truncates first", () => {
    expect(call("b_round", n("-2.5"))).toBe("-3");
    expect(call("b_round", n("2.4"))).toBe("2");
    expect(call("b_ceil", n("1.2"))).toBe("2");
    expect(call("b_floor", n("-1.5"))).toBe("-2");
    expect(call("b_round", n("2.0"))).toBe("2");
    expect(() => call("b_ceil", n("-0.5"))).toThrow(/ceil/);
    expect(() => call("b_floor", n("-0.5"))).toThrow(/floor/);
  });

  it("rem works on integers of any size, truncated with the dividend's sign (Go's big.Int Rem)", () => {
    expect(call("b_rem", n("10"), n("18446744073709551616"))).toBe("10");
    expect(call("b_rem", n("18446744073709551617"), n("18446744073709551616"))).toBe("1");
    expect(call("b_rem", n("100"), n("-18446744073709551616"))).toBe("100");
    expect(call("b_rem", n("-123456789012345678901234567890"), n("97"))).toBe("-52");
    expect(() => call("b_rem", n("1e30"), n("0.0"))).toThrow("rem: modulo by zero");
  });

  it("rem takes integral numbers (5.0) and refuses fractions", () => {
    expect(call("b_rem", n("5.0"), n("2"))).toBe("1");
    expect(() => call("b_rem", n("5.5"), n("2"))).toThrow("rem: modulo on floating-point number");
    expect(() => call("b_rem", n("5"), n("0"))).toThrow("rem: modulo by zero");
  });
});

describe("comparison as OPA", () => {
  it("is exact: 1 equals 1.0, 2^53 + 1 is greater than 2^53, big decimals compare by value", () => {
    expect(call("b_equal", n("1"), n("1.0"))).toBe("true");
    expect(call("b_lt", n("9007199254740992"), n("9007199254740993"))).toBe("true");
    expect(call("b_lt", n("123456789012345678901234567890"), n("123456789012345678901234567891"))).toBe("true");
    expect(call("b_gt", n("1e400"), n("9e399"))).toBe("true");
    expect(call("b_equal", n("-0"), n("0.0"))).toBe("true");
  });

  it("refuses comparisons OPA releases answer differently (10.0 and 1 trimmed alike)", () => {
    expect(() => call("b_equal", n("10.0"), n("1"))).toThrow(/compare differently/);
  });

  it("indexes arrays only with numbers whose text is an int64, as OPA's Array.Get", () => {
    expect(call("rt_dot", ["a", "b"], n("1"))).toBe('"b"');
    expect(call("rt_dot", ["a", "b"], n("1.0"))).toBe("undefined");
  });
});

describe("to_number and format_int as OPA", () => {
  it("keeps the string's text when Go's ParseFloat reads it", () => {
    expect(call("b_to_number", "1e3")).toBe("1e3");
    expect(call("b_equal", n("8"), n("8"))).toBe("true");
    expect(JSON.parse(call("rt_sprintf_args", [[]]))).toEqual([["s", "[]"]]);
  });

  it("refuses Inf and NaN as OPA's type error, other text as a syntax error, and float64 overflow", () => {
    expect(() => call("b_to_number", "-Inf")).toThrow("must be valid number string");
    expect(() => call("b_to_number", "NaN")).toThrow("must be valid number string");
    for (const bad of [" 1", "1_000", "0x10", "1e", ".", ""]) {
      expect(() => call("b_to_number", bad), bad).toThrow("to_number: invalid syntax");
    }
    expect(() => call("b_to_number", "1e400")).toThrow(/out of range/);
  });

  it("format_int truncates toward zero and takes the base as written", () => {
    expect(call("b_format_int", n("-3.9"), n("16"))).toBe('"-3"');
    expect(call("b_format_int", n("255"), n("2"))).toBe('"11111111"');
    expect(() => call("b_format_int", n("255"), n("2.0"))).toThrow("operand 2 must be one of {2, 8, 10, 16}");
  });
});
