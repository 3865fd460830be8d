// Numbers in the runtime as OPA 1.x has them: json.Number text kept exactly, int64 arithmetic
// exact, comparisons exact (big.Rat), and OPA's big.Float path (SetString at 64 bits, one rounding
// half to even per operation, FloatToNumber's shortest text) for everything else.
//
// Expected texts of rounded results are derived from Go's algorithm: x = SetString(text) rounded
// to a 64-bit mantissa; the exact result of the operation rounded again to 64 bits; printed with the
// fewest digits that lie within half an ulp (2^-65 relative) of it (big/ftoa.go roundShortest), as
// %g (exponent form below 1e-4 and from 1e6) unless the value is an integer (%f). They were checked
// against an independent exact-rational model of those steps (3000 random operand pairs agree).
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

  it("adds, subtracts and multiplies decimals as OPA's 64-bit big.Float, printing the shortest text", () => {
    // 0.1 and 0.2 round to 64 bits with errors below 2^-65 relative; their rounded sum is within
    // half an ulp of 0.3, so the shortest text is 0.3 (regorus prints IEEE double's 0.30000000000000004).
    expect(call("b_plus", n("0.1"), n("0.2"))).toBe("0.3");
    expect(call("b_plus", n("19.99"), n("0.01"))).toBe("20"); // an integral result prints as %f
    expect(call("b_plus", n("99.99"), n("0.01"))).toBe("100");
    expect(call("b_mul", n("10"), n("1.1"))).toBe("11");
    expect(call("b_mul", n("1.1"), n("1.1"))).toBe("1.21");
    expect(call("b_mul", n("0.1"), n("3"))).toBe("0.3");
    // The rounding shows where the error reaches the 20th digit (a double would print 0.010000000000000002).
    expect(call("b_mul", n("0.1"), n("0.1"))).toBe("0.010000000000000000001");
    expect(call("b_minus", n("0.3"), n("0.1"))).toBe("0.20000000000000000002");
    // regorus's float-precision case (IEEE doubles: 0.09999999999999998, 0.020000000000000004, 2.9999999999999996)
    expect(call("b_minus", n("0.3"), n("0.2"))).toBe("0.10000000000000000001");
    expect(call("b_mul", n("0.1"), n("0.2"))).toBe("0.020000000000000000001");
    expect(call("b_div", n("0.3"), n("0.1"))).toBe("3");
    expect(call("b_mul", n("1e-7"), n("3"))).toBe("3e-07"); // %g: exponent below -4, two digits at least
    expect(call("b_mul", n("1.5e-300"), n("1e10"))).toBe("1.5000000000000000001e-290");
    expect(call("b_plus", n("123456789.123"), n("0.001"))).toBe("1.23456789123999999996e+08");
  });

  it("mixes big and small magnitudes with one rounding to 64 bits", () => {
    // 12345678901234567890 < 2^64 is exact; + 0.5 needs 65 bits and rounds half to even (…890 is even).
    expect(call("b_plus", n("12345678901234567890"), n("0.5"))).toBe("12345678901234567890");
    expect(call("b_plus", n("1e20"), n("0.5"))).toBe("100000000000000000000");
    expect(call("b_minus", n("1"), n("1e-30"))).toBe("1"); // 1 - 2^-99 rounds back to 1
    expect(call("b_plus", n("1e-400"), n("1"))).toBe("1"); // no underflow: big.Float has no subnormals
    expect(call("b_abs", n("-1e-400"))).toBe("1e-400");
    expect(call("b_mul", n("1.5e-300"), n("1.5e-300"))).toBe("2.25e-600"); // beyond float64, not big.Float
  });

  it("divides with a correctly rounded 64-bit quotient", () => {
    // 1/3: the 64-bit mantissa's last bit rounds up; 20 digits tell it from its neighbours.
    expect(call("b_div", n("1"), n("3"))).toBe("0.33333333333333333334");
    expect(call("b_div", n("2"), n("3"))).toBe("0.6666666666666666667");
    expect(call("b_div", n("-1"), n("3"))).toBe("-0.33333333333333333334");
    expect(call("b_div", n("1.0"), n("3"))).toBe("0.33333333333333333334");
    expect(call("b_div", n("22"), n("7"))).toBe("3.1428571428571428572");
    expect(call("b_div", n("1"), n("0.3"))).toBe("3.3333333333333333333");
    expect(call("b_div", n("6000000001"), n("4"))).toBe("1.50000000025e+09");
  });

  it("keeps big.Float's signed zeros: -0 from a product or quotient, +0 from an exact cancellation", () => {
    expect(call("b_mul", n("-0.5"), n("0"))).toBe("-0");
    expect(call("b_plus", n("0.1"), n("-0.1"))).toBe("0"); // usub of equal magnitudes gives +0
    expect(call("b_plus", n("-0.0"), n("-0.5"))).toBe("-0.5");
  });

  it("sums decimals as OPA's fold into a 64-bit big.Float; products only where OPA releases agree", () => {
    expect(call("b_sum", [n("0.1"), n("0.2"), n("0.3")])).toBe("0.6");
    expect(call("b_sum", [n("19.99"), n("0.01"), n("5")])).toBe("25");
    expect(call("b_product", [n("0.5"), n("0.25"), n("3")])).toBe("0.375"); // exact at 53 and 64 bits
    // Recent OPA multiplies into big.NewFloat(1) at 53 bits (0.30000000000000004), earlier 1.x
    // releases at 64 (0.3): refused rather than either.
    expect(() => call("b_product", [n("0.1"), n("3")])).toThrow(/eval_builtin_error: product/);
  });

  it("refuses exponents whose exact decimal would cost too much to print", () => {
    expect(() => call("b_plus", n("1e9000"), n("0.5"))).toThrow(/eval_builtin_error: plus/);
  });

  it("rounds half away from zero; ceil and floor truncate first, as OPA's arithCeil/arithFloor", () => {
    expect(call("b_round", n("-2.5"))).toBe("-3");
    expect(call("b_round", n("2.4"))).toBe("2");
    expect(call("b_ceil", n("1.2"))).toBe("2");
    expect(call("b_floor", n("-1.5"))).toBe("-2");
    expect(call("b_round", n("2.0"))).toBe("2");
    expect(call("b_ceil", n("-1.5"))).toBe("-1");
    // arithCeil: Int(-0.5) = 0, SetInt(0) has no sign bit and differs from -0.5, so 0 + 1 = 1;
    // arithFloor: 0 has no sign bit, so it is the result.
    expect(call("b_ceil", n("-0.5"))).toBe("1");
    expect(call("b_floor", n("-0.5"))).toBe("0");
    // 0.49999999999999999 rounds to a 64-bit value below 0.5; + 0.5 (exact) stays below 1.
    expect(call("b_round", n("0.49999999999999999"))).toBe("0");
    expect(call("b_round", n("-0.3"))).toBe("0"); // Int(-0.8) is 0: big.Int has no -0
    // 1e30 rounds to 64 bits (5^30 needs 70); Int gives that integer, printed in full (SetInt precision).
    expect(call("b_round", n("1e30"))).toBe("1000000000000000000024696061952");
    expect(call("b_floor", n("2.5e20"))).toBe("250000000000000000000");
  });

  it("divides then rounds as OPA's test-arithmetic-0813 (i / x over [1, 2, 3, 4], rounded: {0, 1})", () => {
    const results = new Set<string>();
    for (const [i, x] of [
      [0, 1],
      [1, 2],
      [2, 3],
      [3, 4],
    ] as const) {
      results.add(call("b_round", n(call("b_div", n(String(i)), n(String(x))))));
    }
    expect([...results].sort()).toEqual(["0", "1"]);
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

  it("format_int truncates toward zero (through a 64-bit big.Float) and takes the base as written", () => {
    expect(call("b_format_int", n("-3.9"), n("16"))).toBe('"-3"');
    expect(call("b_format_int", n("255"), n("2"))).toBe('"11111111"');
    expect(() => call("b_format_int", n("255"), n("2.0"))).toThrow("operand 2 must be one of {2, 8, 10, 16}");
    // NumberToFloat(input).Int(nil): the 64-bit float's integer part, so 1e30 is 10^30 rounded to 64 bits.
    expect(call("b_format_int", n("1e30"), n("10"))).toBe('"1000000000000000000024696061952"');
    expect(call("b_format_int", n("1e30"), n("16"))).toBe('"c9f2c9cd04674edf000000000"');
    expect(call("b_format_int", n("-123456789012345678901.9"), n("10"))).toBe('"-123456789012345678904"');
    expect(call("b_format_int", n("-0.5"), n("8"))).toBe('"0"'); // big.Int has no -0
  });
});
