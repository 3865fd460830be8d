// OPA's sprintf as Go's fmt.Sprintf: the formatter (host/go-fmt.ts) against the cases of Go's own
// table (golang/go src/fmt/fmt_test.go: fmtTests, reorderTests, startests) for the argument types
// OPA passes (int64, *big.Int, float64, string; Go's `int` cases are int64 here, so error forms
// name int64), math/big's Int.Format, and OPA's argument conversion (host/sprintf.ts).
import { describe, expect, it } from "vitest";
import { type GoValue, goInt, goSprintf } from "../../services/authorize/rego/host/go-fmt.ts";
import { sprintfBuiltins } from "../../services/authorize/rego/host/sprintf.ts";

type Arg = number | bigint | string | { float: number };

/** Go's literal types: a bigint or an integral JS number is an int (int64), a float is float64. */
function go(arg: Arg): GoValue {
  if (typeof arg === "string") return { type: "string", value: arg };
  if (typeof arg === "bigint") return goInt(arg);
  if (typeof arg === "object") return { type: "float64", value: arg.float };
  return Number.isInteger(arg) ? goInt(BigInt(arg)) : { type: "float64", value: arg };
}

const f = (float: number) => ({ float });
const sprintf = (format: string, ...args: Arg[]) => goSprintf(format, args.map(go));
const zeroFill = (prefix: string, width: number, suffix: string) => prefix + "0".repeat(width - suffix.length) + suffix;

// [format, argument, want], from fmtTests.
const fmtTests: Array<[string, Arg, string]> = [
  ["%d", 12345, "12345"],
  ["%v", 12345, "12345"],
  ["%t", "true", "%!t(string=true)"],
  // basic string
  ["%s", "abc", "abc"],
  ["%q", "abc", `"abc"`],
  ["%x", "abc", "616263"],
  ["%x", "\xff\xf0\x0f\xff", "c3bfc3b00fc3bf"], // UTF-8 of U+00FF U+00F0 U+000F U+00FF
  ["%x", "", ""],
  ["% x", "", ""],
  ["%#x", "", ""],
  ["%# x", "", ""],
  ["%x", "xyz", "78797a"],
  ["%X", "xyz", "78797A"],
  ["% x", "xyz", "78 79 7a"],
  ["% X", "xyz", "78 79 7A"],
  ["%#x", "xyz", "0x78797a"],
  ["%#X", "xyz", "0X78797A"],
  ["%# x", "xyz", "0x78 0x79 0x7a"],
  ["%# X", "xyz", "0X78 0X79 0X7A"],
  // escaped strings
  ["%q", "", `""`],
  ["%#q", "", "``"],
  ["%q", '"', `"\\""`],
  ["%#q", '"', '`"`'],
  ["%q", "`", '"`"'],
  ["%#q", "`", '"`"'],
  ["%q", "\n", `"\\n"`],
  ["%#q", "\n", `"\\n"`],
  ["%q", "\\n", `"\\\\n"`],
  ["%#q", "\\n", "`\\n`"],
  ["%#q", "abc", "`abc`"],
  ["%q", "日本語", `"日本語"`],
  ["%+q", "日本語", `"\\u65e5\\u672c\\u8a9e"`],
  ["%#q", "日本語", "`日本語`"],
  ["%#+q", "日本語", "`日本語`"],
  ["%q", '\x07\b\f\n\r\t\v"\\', `"\\a\\b\\f\\n\\r\\t\\v\\"\\\\"`],
  ["%+q", '\x07\b\f\n\r\t\v"\\', `"\\a\\b\\f\\n\\r\\t\\v\\"\\\\"`],
  ["%#q", '\x07\b\f\n\r\t\v"\\', `"\\a\\b\\f\\n\\r\\t\\v\\"\\\\"`],
  ["%q", "☺", `"☺"`],
  ["% q", "☺", `"☺"`],
  ["%+q", "☺", `"\\u263a"`],
  ["%#q", "☺", "`☺`"],
  ["%#+q", "☺", "`☺`"],
  ["%10q", "⌘", `       "⌘"`],
  ["%+10q", "⌘", `  "\\u2318"`],
  ["%-10q", "⌘", `"⌘"       `],
  ["%+-10q", "⌘", `"\\u2318"  `],
  ["%010q", "⌘", `0000000"⌘"`],
  ["%+010q", "⌘", `00"\\u2318"`],
  ["%-010q", "⌘", `"⌘"       `],
  ["%+-010q", "⌘", `"\\u2318"  `],
  ["%#8q", "\n", `    "\\n"`],
  ["%#+8q", "\r", `    "\\r"`],
  ["%#-8q", "\t", "`\t`     "],
  ["%#+-8q", "\b", `"\\b"    `],
  ["%q", "\u{10ffff}", `"\\U0010ffff"`],
  ["%+q", "\u{10ffff}", `"\\U0010ffff"`],
  ["%#q", "\u{10ffff}", "`\u{10ffff}`"],
  ["%q", "\ufffd", `"\ufffd"`],
  ["%+q", "\ufffd", `"\\ufffd"`],
  // characters
  ["%c", 120, "x"],
  ["%c", 0xe4, "ä"],
  ["%c", 0x672c, "本"],
  ["%.0c", 0x2318, "⌘"],
  ["%3c", 0x2318, "  ⌘"],
  ["%-3c", 0x2318, "⌘  "],
  ["%c", 0x0e00, "\u0e00"],
  ["%c", 0x10ffff, "\u{10ffff}"],
  ["%c", -1, "\ufffd"],
  ["%c", 0xdc80, "\ufffd"],
  ["%c", 0x110000, "\ufffd"],
  ["%c", 0xfffffffff, "\ufffd"],
  // escaped characters
  ["%q", 0, `'\\x00'`],
  ["%+q", 0, `'\\x00'`],
  ["%q", 34, `'"'`],
  ["%q", 39, `'\\''`],
  ["%q", 96, "'`'"],
  ["%q", 120, `'x'`],
  ["%q", 0xff, `'ÿ'`],
  ["%+q", 0xff, `'\\u00ff'`],
  ["%q", 10, `'\\n'`],
  ["%q", 0x263a, `'☺'`],
  ["%+q", 0x263a, `'\\u263a'`],
  ["% q", 0x263a, `'☺'`],
  ["%.0q", 0x263a, `'☺'`],
  ["%10q", 0x2318, `       '⌘'`],
  ["%+10q", 0x2318, `  '\\u2318'`],
  ["%-10q", 0x2318, `'⌘'       `],
  ["%010q", 0x2318, `0000000'⌘'`],
  ["%+010q", 0x2318, `00'\\u2318'`],
  ["%-010q", 0x2318, `'⌘'       `],
  ["%q", 0x0e00, `'\\u0e00'`],
  ["%q", 0x10ffff, `'\\U0010ffff'`],
  ["%q", -1, `'\ufffd'`],
  ["%q", 0xdc80, `'\ufffd'`],
  ["%q", 0x110000, `'\ufffd'`],
  ["%q", 0xfffffffff, `'\ufffd'`],
  // width
  ["%5s", "abc", "  abc"],
  ["%2s", "\u263a", " ☺"],
  ["%-5s", "abc", "abc  "],
  ["%05s", "abc", "00abc"],
  ["%5s", "abcdefghijklmnopqrstuvwxyz", "abcdefghijklmnopqrstuvwxyz"],
  ["%.5s", "abcdefghijklmnopqrstuvwxyz", "abcde"],
  ["%.0s", "日本語日本語", ""],
  ["%.5s", "日本語日本語", "日本語日本"],
  ["%.10s", "日本語日本語", "日本語日本語"],
  ["%08q", "abc", `000"abc"`],
  ["%-8q", "abc", `"abc"   `],
  ["%.5q", "abcdefghijklmnopqrstuvwxyz", `"abcde"`],
  ["%.5x", "abcdefghijklmnopqrstuvwxyz", "6162636465"],
  ["%.3q", "日本語日本語", `"日本語"`],
  ["%.1q", "日本語", `"日"`],
  ["%.1x", "日本語", "e6"],
  ["%10.1q", "日本語日本語", `       "日"`],
  // integers
  ["%d", -12345, "-12345"],
  ["%d", -(2n ** 63n), "-9223372036854775808"],
  ["%.d", 0, ""],
  ["%.0d", 0, ""],
  ["%6.0d", 0, "      "],
  ["%06.0d", 0, "      "],
  ["% d", 12345, " 12345"],
  ["%+d", 12345, "+12345"],
  ["%+d", -12345, "-12345"],
  ["%b", 7, "111"],
  ["%b", -6, "-110"],
  ["%#b", 7, "0b111"],
  ["%#b", -6, "-0b110"],
  ["%b", -(2n ** 63n), zeroFill("-1", 63, "")],
  ["%o", 0o1234, "1234"],
  ["%o", -0o1234, "-1234"],
  ["%#o", 0o1234, "01234"],
  ["%#o", -0o1234, "-01234"],
  ["%O", 0o1234, "0o1234"],
  ["%O", -0o1234, "-0o1234"],
  ["%#X", 0, "0X0"],
  ["%x", 0x12abcdef, "12abcdef"],
  ["%X", 0x12abcdef, "12ABCDEF"],
  ["%.20b", 7, "00000000000000000111"],
  ["%10d", 12345, "     12345"],
  ["%10d", -12345, "    -12345"],
  ["%+10d", 12345, "    +12345"],
  ["%010d", 12345, "0000012345"],
  ["%010d", -12345, "-000012345"],
  ["%20.8d", 1234, "            00001234"],
  ["%20.8d", -1234, "           -00001234"],
  ["%020.8d", 1234, "            00001234"],
  ["%020.8d", -1234, "           -00001234"],
  ["%-20.8d", 1234, "00001234            "],
  ["%-20.8d", -1234, "-00001234           "],
  ["%-#20.8x", 0x1234abc, "0x01234abc          "],
  ["%-#20.8X", 0x1234abc, "0X01234ABC          "],
  ["%-#20.8o", 0o1234, "00001234            "],
  ["%068d", 1, zeroFill("", 68, "1")],
  ["%068d", -1, zeroFill("-", 67, "1")],
  ["%#.68x", 42, zeroFill("0x", 68, "2a")],
  ["%.68d", -42, zeroFill("-", 68, "42")],
  ["%+.68d", 42, zeroFill("+", 68, "42")],
  ["% .68d", 42, zeroFill(" ", 68, "42")],
  ["% +.68d", 42, zeroFill("+", 68, "42")],
  // unicode format
  ["%U", 0, "U+0000"],
  ["%U", -1, "U+FFFFFFFFFFFFFFFF"],
  ["%U", 10, "U+000A"],
  ["%#U", 10, "U+000A"],
  ["%+U", 120, "U+0078"],
  ["%# U", 120, "U+0078 'x'"],
  ["%#.2U", 120, "U+0078 'x'"],
  ["%U", 0x263a, "U+263A"],
  ["%#U", 0x263a, "U+263A '☺'"],
  ["%U", 0x1d6c2, "U+1D6C2"],
  ["%#U", 0x1d6c2, "U+1D6C2 '𝛂'"],
  ["%#14.6U", 0x2318, "  U+002318 '⌘'"],
  ["%#-14.6U", 0x2318, "U+002318 '⌘'  "],
  ["%#014.6U", 0x2318, "  U+002318 '⌘'"],
  ["%#-014.6U", 0x2318, "U+002318 '⌘'  "],
  ["%.68U", 42, zeroFill("U+", 68, "2A")],
  ["%#.68U", 0x65e5, `${zeroFill("U+", 68, "65E5")} '日'`],
  // floats
  ["%+.3e", f(0), "+0.000e+00"],
  ["%+.3e", f(1), "+1.000e+00"],
  ["%+.3x", f(0), "+0x0.000p+00"],
  ["%+.3x", f(1), "+0x1.000p+00"],
  ["%+.3f", f(-1), "-1.000"],
  ["%+.3F", f(-1), "-1.000"],
  ["%+07.2f", f(1), "+001.00"],
  ["%+07.2f", f(-1), "-001.00"],
  ["%-07.2f", f(1), "1.00   "],
  ["%-07.2f", f(-1), "-1.00  "],
  ["%+-07.2f", f(1), "+1.00  "],
  ["%+-07.2f", f(-1), "-1.00  "],
  ["%-+07.2f", f(1), "+1.00  "],
  ["%-+07.2f", f(-1), "-1.00  "],
  ["%+10.2f", f(1), "     +1.00"],
  ["%+10.2f", f(-1), "     -1.00"],
  ["% .3E", f(-1), "-1.000E+00"],
  ["% .3e", f(1), " 1.000e+00"],
  ["% .3X", f(-1), "-0X1.000P+00"],
  ["% .3x", f(1), " 0x1.000p+00"],
  ["%+.3g", f(0), "+0"],
  ["%+.3g", f(1), "+1"],
  ["%+.3g", f(-1), "-1"],
  ["% .3g", f(-1), "-1"],
  ["% .3g", f(1), " 1"],
  ["%b", f(1), "4503599627370496p-52"],
  ["%#g", 1e-323, "1.00000e-323"],
  ["%#g", f(-1), "-1.00000"],
  ["%#g", 1.1, "1.10000"],
  ["%#g", f(123456), "123456."],
  ["%#g", f(1234567), "1.234567e+06"],
  ["%#g", f(1230000), "1.23000e+06"],
  ["%#g", f(1000000), "1.00000e+06"],
  ["%#.0f", f(1), "1."],
  ["%#.0e", f(1), "1.e+00"],
  ["%#.0g", f(1), "1."],
  ["%#.0g", f(1100000), "1.e+06"],
  ["%#.4f", f(1), "1.0000"],
  ["%#.4e", f(1), "1.0000e+00"],
  ["%#.4g", f(1), "1.000"],
  ["%#.4g", f(100000), "1.000e+05"],
  ["%#.4g", 1.234, "1.234"],
  ["%#.4g", 0.1234, "0.1234"],
  ["%#.4g", 1.23, "1.230"],
  ["%#.4g", 0.123, "0.1230"],
  ["%#.4g", 1.2, "1.200"],
  ["%#.4g", 0.12, "0.1200"],
  ["%#.4g", 10.2, "10.20"],
  ["%#.4g", f(0), "0.000"],
  ["%#.4g", 0.012, "0.01200"],
  ["%#.0f", f(123), "123."],
  ["%#.0e", f(123), "1.e+02"],
  ["%#.0g", f(123), "1.e+02"],
  ["%#.4f", f(123), "123.0000"],
  ["%#.4e", f(123), "1.2300e+02"],
  ["%#.4g", f(123), "123.0"],
  ["%#.4g", f(123000), "1.230e+05"],
  ["%#9.4g", f(1), "    1.000"],
  ["%#b", f(1), "4503599627370496p-52"],
  ["%.4b", f(-1), "-4503599627370496p-52"],
  ["%.68f", f(1), zeroFill("1.", 68, "")],
  ["%.68f", f(-1), zeroFill("-1.", 68, "")],
  ["%f", f(Number.POSITIVE_INFINITY), "+Inf"],
  ["%.1f", f(Number.NEGATIVE_INFINITY), "-Inf"],
  ["% f", f(Number.NaN), " NaN"],
  ["%20f", f(Number.POSITIVE_INFINITY), "                +Inf"],
  ["% 20F", f(Number.POSITIVE_INFINITY), "                 Inf"],
  ["% 20e", f(Number.NEGATIVE_INFINITY), "                -Inf"],
  ["% 20x", f(Number.NEGATIVE_INFINITY), "                -Inf"],
  ["%+20E", f(Number.NEGATIVE_INFINITY), "                -Inf"],
  ["% +20g", f(Number.NEGATIVE_INFINITY), "                -Inf"],
  ["%+-20G", f(Number.POSITIVE_INFINITY), "+Inf                "],
  ["%20e", f(Number.NaN), "                 NaN"],
  ["% +20E", f(Number.NaN), "                +NaN"],
  ["% -20g", f(Number.NaN), " NaN                "],
  ["%+-20G", f(Number.NaN), "+NaN                "],
  ["%+020e", f(Number.POSITIVE_INFINITY), "                +Inf"],
  ["%-020f", f(Number.NEGATIVE_INFINITY), "-Inf                "],
  ["%-020E", f(Number.NaN), "NaN                 "],
  // old test/fmt_test.go
  ["%e", f(1), "1.000000e+00"],
  ["%e", 1234.5678e3, "1.234568e+06"],
  ["%e", 1234.5678e-8, "1.234568e-05"],
  ["%e", f(-7), "-7.000000e+00"],
  ["%e", -1e-9, "-1.000000e-09"],
  ["%f", 1234.5678e3, "1234567.800000"],
  ["%f", 1234.5678e-8, "0.000012"],
  ["%f", f(-7), "-7.000000"],
  ["%f", -1e-9, "-0.000000"],
  ["%g", 1234.5678e3, "1.2345678e+06"],
  ["%g", 1234.5678e-8, "1.2345678e-05"],
  ["%g", f(-7), "-7"],
  ["%g", -1e-9, "-1e-09"],
  ["%E", f(1), "1.000000E+00"],
  ["%E", 1234.5678e3, "1.234568E+06"],
  ["%E", 1234.5678e-8, "1.234568E-05"],
  ["%E", f(-7), "-7.000000E+00"],
  ["%E", -1e-9, "-1.000000E-09"],
  ["%G", 1234.5678e3, "1.2345678E+06"],
  ["%G", 1234.5678e-8, "1.2345678E-05"],
  ["%G", f(-7), "-7"],
  ["%G", -1e-9, "-1E-09"],
  ["%20.5s", "qwertyuiop", "               qwert"],
  ["%.5s", "qwertyuiop", "qwert"],
  ["%-20.5s", "qwertyuiop", "qwert               "],
  ["%20c", 120, "                   x"],
  ["%-20c", 120, "x                   "],
  ["%20.6e", 1.2345e3, "        1.234500e+03"],
  ["%20.6e", 1.2345e-3, "        1.234500e-03"],
  ["%20e", 1.2345e3, "        1.234500e+03"],
  ["%20e", 1.2345e-3, "        1.234500e-03"],
  ["%20.8e", 1.2345e3, "      1.23450000e+03"],
  ["%20f", 1.23456789e3, "         1234.567890"],
  ["%20f", 1.23456789e-3, "            0.001235"],
  ["%20f", 12345678901.234568, "  12345678901.234568"],
  ["%-20f", 1.23456789e3, "1234.567890         "],
  ["%20.8f", 1.23456789e3, "       1234.56789000"],
  ["%20.8f", 1.23456789e-3, "          0.00123457"],
  ["%g", 1.23456789e3, "1234.56789"],
  ["%g", 1.23456789e-3, "0.00123456789"],
  ["%g", f(1.23456789e20), "1.23456789e+20"],
  ["%v", 1.2345678, "1.2345678"],
  ["%#v", f(1), "1"],
  ["%#v", f(1000000), "1e+06"],
  ["%#v", "foo", `"foo"`],
  ["%#v", 1000000000, "1000000000"],
  // %T, %p
  ["%T", 0, "int64"],
  ["%T", "", "string"],
  ["%T", f(1), "float64"],
  ["%6T", 0, " int64"],
  ["%p", 27, "%!p(int64=27)"],
  // erroneous things
  ["", 2, "%!(EXTRA int64=2)"],
  ["no args", "hello", "no args%!(EXTRA string=hello)"],
  ["%s %", "hello", "hello %!(NOVERB)"],
  ["%s %.2", "hello", "hello %!(NOVERB)"],
  ["%017091901790959340919092959340919017929593813360", 0, "%!(NOVERB)%!(EXTRA int64=0)"],
  ["%184467440737095516170v", 0, "%!(NOVERB)%!(EXTRA int64=0)"],
  ["%010.2", "12345", "%!(NOVERB)%!(EXTRA string=12345)"],
  // padding rules compared with C's printf
  ["%.2f", f(1), "1.00"],
  ["%.2f", f(-1), "-1.00"],
  ["% .2f", f(1), " 1.00"],
  ["% .2f", f(-1), "-1.00"],
  ["%+.2f", f(1), "+1.00"],
  ["%+.2f", f(-1), "-1.00"],
  ["%7.2f", f(1), "   1.00"],
  ["%7.2f", f(-1), "  -1.00"],
  ["% 7.2f", f(1), "   1.00"],
  ["% 7.2f", f(-1), "  -1.00"],
  ["%+7.2f", f(1), "  +1.00"],
  ["%+7.2f", f(-1), "  -1.00"],
  ["% +7.2f", f(1), "  +1.00"],
  ["% +7.2f", f(-1), "  -1.00"],
  ["%07.2f", f(1), "0001.00"],
  ["%07.2f", f(-1), "-001.00"],
  ["% 07.2f", f(1), " 001.00"],
  ["% 07.2f", f(-1), "-001.00"],
  ["%+07.2f", f(1), "+001.00"],
  ["%+07.2f", f(-1), "-001.00"],
  ["% +07.2f", f(1), "+001.00"],
  ["% +07.2f", f(-1), "-001.00"],
  ["%0-5s", "abc", "abc  "],
  ["%-05.1f", f(1), "1.0  "],
  ["%.", 3, "%!.(int64=3)"],
  // not supported verbs
  ["%☠", 0, "%!☠(int64=0)"],
  ["%☠", "hello", "%!☠(string=hello)"],
  ["%☠", 1.2345678, "%!☠(float64=1.2345678)"],
];

// [format, arguments, want], from reorderTests and startests.
const argumentTests: Array<[string, Arg[], string]> = [
  ["%[1]d", [1], "1"],
  ["%[2]d", [2, 1], "1"],
  ["%[2]d %[1]d", [1, 2], "2 1"],
  ["%[2]*[1]d", [2, 5], "    2"],
  ["%6.2f", [f(12)], " 12.00"],
  ["%[3]*.[2]*[1]f", [f(12), 2, 6], " 12.00"],
  ["%[1]*.[2]*[3]f", [6, 2, f(12)], " 12.00"],
  ["%10f", [f(12)], " 12.000000"],
  ["%[1]*[3]f", [10, 99, f(12)], " 12.000000"],
  ["%.6f", [f(12)], "12.000000"],
  ["%.[1]*[3]f", [6, 99, f(12)], "12.000000"],
  ["%6.f", [f(12)], "    12"],
  ["%[1]*.[3]f", [6, 3, f(12)], "    12"],
  ["%d %d %d %#[1]o %#o %#o", [11, 12, 13], "11 12 13 013 014 015"],
  ["%[d", [2, 1], "%!d(BADINDEX)"],
  ["%]d", [2, 1], "%!](int64=2)d%!(EXTRA int64=1)"],
  ["%[]d", [2, 1], "%!d(BADINDEX)"],
  ["%[-3]d", [2, 1], "%!d(BADINDEX)"],
  ["%[99]d", [2, 1], "%!d(BADINDEX)"],
  ["%[3]", [2, 1], "%!(NOVERB)"],
  ["%[1].2d", [5, 6], "%!d(BADINDEX)"],
  ["%[1]2d", [2, 1], "%!d(BADINDEX)"],
  ["%3.[2]d", [7], "%!d(BADINDEX)"],
  ["%.[2]d", [7], "%!d(BADINDEX)"],
  ["%d %d %d %#[1]o %#o %#o %#o", [11, 12, 13], "11 12 13 013 014 015 %!o(MISSING)"],
  ["%[5]d %[2]d %d", [1, 2, 3], "%!d(BADINDEX) 2 3"],
  ["%d %[3]d %d", [1, 2], "1 %!d(BADINDEX) 2"],
  ["%.[]", [], "%!](BADINDEX)"],
  ["%.-3d", [42], "%!-(int64=42)3d"],
  ["%2147483648d", [42], "%!(NOVERB)%!(EXTRA int64=42)"],
  ["%-2147483648d", [42], "%!(NOVERB)%!(EXTRA int64=42)"],
  ["%.2147483648d", [42], "%!(NOVERB)%!(EXTRA int64=42)"],
  ["%*d", [4, 42], "  42"],
  ["%-*d", [4, 42], "42  "],
  ["%*d", [-4, 42], "42  "],
  ["%-*d", [-4, 42], "42  "],
  ["%.*d", [4, 42], "0042"],
  ["%*.*d", [8, 4, 42], "    0042"],
  ["%0*d", [4, 42], "0042"],
  ["%*d", [10_000_000, 42], "%!(BADWIDTH)42"],
  ["%*d", [-10_000_000, 42], "%!(BADWIDTH)42"],
  ["%.*d", [-1, 42], "%!(BADPREC)42"],
  ["%.*d", [10_000_000, 42], "%!(BADPREC)42"],
  ["%*d", [f(5), 42], "%!(BADWIDTH)42"],
  ["%*d", [5, 42], "   42"],
  ["%.*d", [f(5), 42], "%!(BADPREC)42"],
  ["%d", [], "%!d(MISSING)"],
  ["%s %s", ["a"], "a %!s(MISSING)"],
  ["%v %v", ["a", 1], "a 1"],
  ["100%%", [], "100%"],
  ["%5%", [], "%"],
];

describe("Go's fmt.Sprintf for OPA's argument types", () => {
  it.each(fmtTests)("Sprintf(%j, …)", (format, arg, want) => {
    expect(sprintf(format, arg)).toBe(want);
  });

  it.each(argumentTests)("Sprintf(%j, …) with argument indexes and * widths", (format, args, want) => {
    expect(sprintf(format, ...args)).toBe(want);
  });

  it("formats big integers as math/big's Int.Format does", () => {
    const big = 2n ** 64n;
    expect(sprintf("%d", big)).toBe("18446744073709551616");
    expect(sprintf("%v", big)).toBe("18446744073709551616");
    expect(sprintf("%s", big)).toBe("18446744073709551616");
    expect(sprintf("%x", big)).toBe("10000000000000000");
    expect(sprintf("%#X", big)).toBe("0X10000000000000000");
    expect(sprintf("%#o", big)).toBe("02000000000000000000000");
    expect(sprintf("%O", big)).toBe("0o2000000000000000000000");
    expect(sprintf("%#b", 2n ** 70n)).toBe(`0b1${"0".repeat(70)}`);
    expect(sprintf("%+d", big)).toBe("+18446744073709551616");
    expect(sprintf("%+v", big)).toBe("+18446744073709551616"); // Int.Format sees %+v's plus
    expect(sprintf("%25d", -big)).toBe("    -18446744073709551616");
    expect(sprintf("%-25d|", big)).toBe("18446744073709551616     |");
    expect(sprintf("%025d", -big)).toBe("-000018446744073709551616");
    expect(sprintf("%.22d", big)).toBe("0018446744073709551616");
    expect(sprintf("%025.22d", big)).toBe("   0018446744073709551616");
    expect(sprintf("%e", big)).toBe("%!e(big.Int=18446744073709551616)");
    expect(sprintf("%q", big)).toBe("%!q(big.Int=18446744073709551616)");
    expect(sprintf("%T", big)).toBe("*big.Int");
    expect(sprintf("", big)).toBe("%!(EXTRA *big.Int=18446744073709551616)");
    expect(() => sprintf("%p", big)).toThrow("Go pointer address");
  });

  it("rounds floats half to even on the exact binary value, as strconv", () => {
    expect(sprintf("%.0f", f(0.5))).toBe("0");
    expect(sprintf("%.0f", f(1.5))).toBe("2");
    expect(sprintf("%.0f", f(2.5))).toBe("2");
    expect(sprintf("%.2f", f(0.125))).toBe("0.12");
    expect(sprintf("%.2f", f(0.375))).toBe("0.38");
    expect(sprintf("%.1f", f(0.05))).toBe("0.1"); // 0.05 is a little above one twentieth
    expect(sprintf("%.1f", f(0.25))).toBe("0.2");
    expect(sprintf("%.0f", f(0.9))).toBe("1");
    expect(sprintf("%.0f", f(0.09))).toBe("0");
    expect(sprintf("%.3e", f(1.0005))).toBe("1.000e+00"); // 1.0005 is a little below
    expect(sprintf("%v", 5e-324)).toBe("5e-324");
    expect(sprintf("%v", f(1e21))).toBe("1e+21");
    expect(sprintf("%v", f(100000))).toBe("100000");
    expect(sprintf("%v", f(1000000))).toBe("1e+06");
    expect(sprintf("%v", 0.0001)).toBe("0.0001");
    expect(sprintf("%v", 0.00001)).toBe("1e-05");
    expect(sprintf("%v", f(-0))).toBe("-0");
    expect(sprintf("%e", f(1e100))).toBe("1.000000e+100");
    expect(sprintf("%x", f(1))).toBe("0x1p+00");
    expect(sprintf("%x", 0.1)).toBe("0x1.999999999999ap-04");
    expect(sprintf("%.0x", f(1.5))).toBe("0x1p+01"); // half to even
    expect(() => sprintf("%#x", f(1))).toThrow("not supported");
  });
});

describe("mandate.sprintf: OPA's argument conversion over the runtime's tagged values", () => {
  const mandateSprintf = sprintfBuiltins["mandate.sprintf"] as (format: unknown, tagged: unknown) => unknown;

  it("passes integers as int64 or big.Int, floats by their text, the rest as Rego text", () => {
    expect(
      mandateSprintf("%d %v", [
        ["n", "42"],
        ["n", "-7"],
      ]),
    ).toBe("42 -7");
    expect(mandateSprintf("%d", [["n", "1.0"]])).toBe("%!d(float64=1)");
    expect(mandateSprintf("%v", [["n", "1.0"]])).toBe("1");
    expect(mandateSprintf("%.2f", [["n", "1e2"]])).toBe("100.00");
    expect(mandateSprintf("%d", [["n", "123456789012345678901234567890"]])).toBe("123456789012345678901234567890");
    expect(
      mandateSprintf("%T %T", [
        ["n", "9223372036854775807"],
        ["n", "9223372036854775808"],
      ]),
    ).toBe("int64 *big.Int");
    expect(mandateSprintf("%v", [["n", "1e400"]])).toBe("1e400"); // beyond float64: its text
    expect(mandateSprintf("%v", [["s", '{"a": 1}']])).toBe('{"a": 1}');
    expect(mandateSprintf("%s", [["s", "true"]])).toBe("true");
    expect(mandateSprintf("%t", [["s", "true"]])).toBe("%!t(string=true)");
    expect(mandateSprintf("%d", [["s", "{1, 2}"]])).toBe("%!d(string={1, 2})");
  });

  it("raises OPA's operand errors", () => {
    expect(() => mandateSprintf(1, [])).toThrow("sprintf: operand 1 must be string but got number");
    expect(() => mandateSprintf("%v", "object")).toThrow("sprintf: operand 2 must be array but got object");
    expect(() => mandateSprintf("%v", [["x", "1"]])).toThrow("sprintf: malformed argument 0");
  });
});
