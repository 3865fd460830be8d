// Mandate's host built-ins (services/authorize/rego/host-builtins.ts) end to end: Rego compiled by
// compileRego, run by @open-policy-agent/opa-wasm with the built-ins delegated to the host. Expected
// values are OPA's (Go's time, regexp, net, encoding packages); JWTs are signed here with keys
// generated for the run.
import { constants, createHmac, generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import { beforeAll, describe, expect, it } from "vitest";
import { builtinArity } from "../../services/authorize/rego/builtins.ts";
import { compileRego } from "../../services/authorize/rego/compile.ts";
import { BUDGET_EXHAUSTED_MESSAGE } from "../../services/authorize/rego/evaluation-budget.ts";
import { HOST_BUILTINS, hostBuiltins, lenientHostBuiltins } from "../../services/authorize/rego/host-builtins.ts";

type Policy = Awaited<ReturnType<typeof loadPolicy>>;

async function load(source: string): Promise<Policy> {
  const { wasm } = compileRego({ modules: { "t.rego": `package t\n${source}` }, entrypoints: ["t"] });
  return loadPolicy(wasm, undefined, hostBuiltins);
}

/** The document of package t: each rule's value (an undefined rule is absent). */
async function rules(source: string, input: unknown = {}): Promise<Record<string, unknown>> {
  const rows = (await load(source)).evaluate(input, "t") as Array<{ result: Record<string, unknown> }>;
  return rows[0]?.result ?? {};
}

const callers = new Map<string, Promise<Policy>>();

/** One built-in applied to JSON arguments (passed as input): its result, or undefined. */
async function call(name: string, ...args: unknown[]): Promise<unknown> {
  const key = `${name}/${args.length}`;
  let policy = callers.get(key);
  if (!policy) {
    policy = load(`r := ${name}(${args.map((_, i) => `input.a${i}`).join(", ")})`);
    callers.set(key, policy);
  }
  const input = Object.fromEntries(args.map((a, i) => [`a${i}`, a]));
  const rows = (await policy).evaluate(input, "t") as Array<{ result: { r?: unknown } }>;
  return rows[0]?.result.r;
}

describe("registry", () => {
  it("lists every host built-in in HOST_BUILTINS, all in OPA's catalogue, and none of opa-wasm's own", () => {
    for (const name of Object.keys(hostBuiltins)) {
      expect(HOST_BUILTINS[name], name).toBe(true);
      // mandate.* are the compiler's own, called in place of the OPA built-in of the rest of the name.
      if (!name.startsWith("mandate.")) expect(builtinArity(name), name).toBeTypeOf("number");
    }
    expect(hostBuiltins["mandate.sprintf"]).toBeTypeOf("function");
    // opa-wasm's JavaScript ones answer differently from OPA: never called (sprintf and regex.split
    // are called as mandate.*, yaml.* refused).
    for (const name of ["sprintf", "regex.split", "yaml.marshal", "yaml.unmarshal", "yaml.is_valid"]) {
      expect(HOST_BUILTINS[name], name).toBeUndefined();
    }
  });

  it("offers a lenient variant where a built-in error is an undefined call (strictBuiltinErrors: false)", async () => {
    const source = 'package t\nr := rand.intn("a", input.n)\nok := true';
    const { wasm } = compileRego({ modules: { "t.rego": source }, entrypoints: ["t"] });
    const policy = await loadPolicy(wasm, undefined, lenientHostBuiltins);
    expect(policy.evaluate({ n: 10.3 }, "t")).toEqual([{ result: { ok: true } }]);
  });
});

describe("time", () => {
  it("parses RFC 3339 and Go layouts to exact nanoseconds", async () => {
    const r = await rules(`
a := time.parse_rfc3339_ns("1985-04-12T23:20:50.52Z")
b := time.parse_rfc3339_ns("1996-12-19T16:39:57-08:00")
exact := json.marshal(time.parse_rfc3339_ns("2023-12-24T18:58:45.734390123Z"))
c := time.parse_ns("2006-01-02", "2020-02-02")
d := time.parse_ns("RFC822", "02 Jan 06 15:04 MST")
e := time.parse_ns("Mon Jan _2 15:04:05 2006", "Thu Feb  4 21:00:57 2010")
f := time.parse_ns("2006-01-02 3:04PM", "2020-02-02 11:30PM")
g := time.parse_ns("2006-01-02T15:04:05.000Z07:00", "2020-02-02T10:11:12.123+01:00")
h := time.parse_ns("2006-002", "2020-060")
`);
    expect(r).toMatchObject({
      a: 482196050520000000,
      b: 851042397000000000,
      exact: "1703444325734390123",
      c: 1580601600000000000,
      d: 1136214240000000000,
      e: 1265317257000000000,
      f: 1580686200000000000,
      g: 1580634672123000000,
      h: 1582934400000000000, // day 60 of a leap year: 29 February
    });
  });

  it("rejects values that do not match the layout, impossible dates and times outside int64", async () => {
    await expect(call("time.parse_ns", "2006-01-02", "2020-02-30")).rejects.toThrow(/day out of range/);
    await expect(call("time.parse_ns", "2006-01-02", "02/02/2020")).rejects.toThrow(/time.parse_ns: parsing time/);
    await expect(call("time.parse_rfc3339_ns", "2262-04-11T23:47:16.854775808Z")).rejects.toThrow(
      /time outside of valid range/,
    );
    await expect(call("time.parse_rfc3339_ns", 1)).rejects.toThrow(
      "time.parse_rfc3339_ns: operand 1 must be string but got number",
    );
  });

  it("parses Go durations", async () => {
    expect(await call("time.parse_duration_ns", "1h30m")).toBe(5400000000000);
    expect(await call("time.parse_duration_ns", "-1.5h")).toBe(-5400000000000);
    expect(await call("time.parse_duration_ns", "1µs")).toBe(1000);
    expect(await call("time.parse_duration_ns", ".5s")).toBe(500000000);
    expect(await call("time.parse_duration_ns", "0")).toBe(0);
    await expect(call("time.parse_duration_ns", "1")).rejects.toThrow(/missing unit/);
    await expect(call("time.parse_duration_ns", "1d")).rejects.toThrow(/unknown unit "d"/);
    await expect(call("time.parse_duration_ns", "2562047h47m16.854775808s")).rejects.toThrow(/invalid duration/);
  });

  it("formats with Go layouts in a zone", async () => {
    const r = await rules(`
nano := time.format(1703444325734390000)
utc := time.format([1703444325734390000, "UTC", "2006-01-02T15:04:05"])
ny := time.format([1703444325734390000, "America/New_York", "Mon Jan 2 15:04:05 MST 2006"])
paris := time.format([1703444325734390000, "Europe/Paris", "RFC1123Z"])
day := time.format([1720000000000000000, "Asia/Dubai", "__2 002 pm 3 03 -07:00"])
`);
    expect(r).toEqual({
      nano: "2023-12-24T18:58:45.73439Z", // RFC3339Nano drops trailing zeros, as Go
      utc: "2023-12-24T18:58:45",
      ny: "Sun Dec 24 13:58:45 EST 2023",
      paris: "Sun, 24 Dec 2023 19:58:45 +0100",
      day: "185 185 pm 1 01 +04:00",
    });
  });

  it("reads nanosecond timestamps beyond 2^53 exactly from their JSON text", async () => {
    const r = await rules(`
nano := time.format(1703444325734390123)
parsed := time.format(time.parse_rfc3339_ns("2023-12-24T18:58:45.734390123Z"))
added := json.marshal(time.add_date(1703444325734390123, 0, 0, 1))
or := json.marshal(bits.or(9007199254740993, 0))
`);
    expect(r).toEqual({
      nano: "2023-12-24T18:58:45.734390123Z",
      parsed: "2023-12-24T18:58:45.734390123Z",
      added: "1703530725734390123",
      or: "9007199254740993",
    });
  });

  it("fails rather than guess when two integers of one call round to the same double", async () => {
    // 2^53 + 1 and 2^53 are one double; the host cannot tell which operand was which.
    await expect(rules("r := bits.or(9007199254740993, 9007199254740992)")).rejects.toThrow(
      "bits.or: operand 1 is an integer beyond 2^53, which reaches Mandate's host built-ins rounded: no exact answer",
    );
    // Called without opa-wasm, the texts are unknown: an answer only where every integer that
    // rounds to the double gives the same one.
    const date = hostBuiltins["time.date"] as (ns: unknown) => unknown;
    const format = hostBuiltins["time.format"] as (ns: unknown) => unknown;
    expect(date(1703444325734390000)).toEqual([2023, 12, 24]);
    expect(() => format(1703444325734390000)).toThrow("no exact answer");
    expect(() => (lenientHostBuiltins["time.format"] as (ns: unknown) => unknown)(1703444325734390000)).toThrow(
      "no exact answer",
    );
  });

  it("reads dates, clocks and weekdays in a zone", async () => {
    const r = await rules(`
date := time.date(1703444325734390000)
clock := time.clock([1703444325734390000, "CET"])
weekday := time.weekday([1703444325734390000, "Pacific/Kiritimati"])
before_epoch := time.date(-1)
local := time.clock([1703444325734390000, "Local"]) != null
`);
    expect(r).toEqual({
      date: [2023, 12, 24],
      clock: [19, 58, 45],
      weekday: "Monday",
      before_epoch: [1969, 12, 31],
      local: true,
    });
  });

  it("adds dates as Go's AddDate (normalising overflow, in the zone's wall clock)", async () => {
    // A [ns, zone] operand is a type error written as a literal (OPA declares a number), not as input.
    const r = await rules(
      `
month_end := time.add_date(1706659200000000000, 0, 1, 0)
dst := time.add_date(input.paris, 0, 0, 1)
back := time.add_date(1703444325734390000, -1, 0, 0)
`,
      { paris: [1711846800000000000, "Europe/Paris"] },
    );
    expect(r).toEqual({
      month_end: 1709337600000000000, // 31 January + 1 month = 2 March
      dst: 1711933200000000000, // 03:00 CEST on 31 March + 1 day = 03:00 CEST on 1 April
      back: 1671908325734390000,
    });
    await expect(call("time.add_date", 1703444325734390000, 1000, 0, 0)).rejects.toThrow(/time outside of valid range/);
    await expect(call("time.add_date", 1, 1.5, 0, 0)).rejects.toThrow(
      "operand 2 must be integer number but got floating-point number",
    );
  });

  it("diffs two times in years, months, days, hours, minutes, seconds", async () => {
    const r = await rules(`
leap := time.diff(time.parse_ns("2006-01-02", "2020-02-02"), time.parse_ns("2006-01-02", "2020-03-01"))
long := time.diff(1703444325734390000, [1257894000000000000, "UTC"])
`);
    expect(r).toEqual({ leap: [0, 0, 28, 0, 0, 0], long: [14, 1, 13, 19, 58, 45] });
  });

  it("keeps time.now_ns fixed within one evaluation", async () => {
    const r = await rules(`
a := time.now_ns()
b := time.now_ns()
same := a == b
recent := a > 1700000000000000000
`);
    expect(r).toMatchObject({ same: true, recent: true });
  });

  it("rejects timestamps of the wrong type, fractional ones and unknown zones", async () => {
    await expect(call("time.date", "1703444325734390000")).rejects.toThrow(
      "time.date: operand 1 must be either number (ns) or [number (ns), string (tz)] but got string",
    );
    await expect(call("time.clock", [1, 5])).rejects.toThrow("operand 1 must be string but got number");
    await expect(call("time.format", [1, "UTC", 42])).rejects.toThrow("operand 1 must be string but got number");
    await expect(call("time.weekday", 1.5)).rejects.toThrow(/timestamp too big/);
    await expect(call("time.date", [1, "Nowhere/City"])).rejects.toThrow(/unknown time zone Nowhere\/City/);
  });
});

describe("glob", () => {
  it("matches with gobwas/glob semantics and OPA's delimiter defaults", async () => {
    const r = await rules(`
a := glob.match("api://*/appId", null, "api://foo.com/appId")
b := glob.match("*.github.com", [], "api.github.com")
c := glob.match("*.github.com", [], "api.cdn.github.com")
d := glob.match("*:github:com", [":"], "api:github:com")
e := glob.match("api.**.com", [], "api.cdn.github.com")
f := glob.match("?at", [], "at")
g := glob.match("[!a-c]at", [], "lat")
h := glob.match("{cat,bat,[fr]at}", [], "rat")
i := glob.match("{cat,bat,[fr]at}", [], "at")
j := glob.match("\\\\*", null, "*")
k := glob.match("a.{b,c.*}", [], "a.c.d")
`);
    expect(r).toEqual({
      a: true,
      b: true,
      c: false,
      d: true,
      e: true,
      f: false,
      g: true,
      h: true,
      i: false,
      j: true,
      k: true,
    });
  });

  it("quotes glob metacharacters", async () => {
    expect(await call("glob.quote_meta", "*.github.com{x}[y]?")).toBe("\\*.github.com\\{x\\}\\[y\\]\\?");
  });

  it("rejects bad operands and unclosed classes", async () => {
    await expect(call("glob.match", 1, null, "x")).rejects.toThrow(
      "glob.match: operand 1 must be string but got number",
    );
    await expect(call("glob.match", "x", "a", "x")).rejects.toThrow(
      "operand 2 must be one of {array, null} but got string",
    );
    await expect(call("glob.match", "x", ["ab"], "x")).rejects.toThrow("operand 2 must be array of runes");
    await expect(call("glob.match", "[a-", null, "a")).rejects.toThrow(/unexpected end of input/);
  });
});

describe("regex (RE2 syntax)", () => {
  it("matches as Go's regexp", async () => {
    const r = await rules(`
plain := regex.match("^[a-z]+$", "abc")
dot_cr := regex.match("^.$", "\\r")
dot_nl := regex.match("^.$", "\\n")
dot_all := regex.match("(?s)^.$", "\\n")
space_vt := regex.match("^\\\\s$", "\\u000b")
fold := regex.match("(?i)straSSE", "STRASSE")
scoped := regex.match("a(?i)b|c", "C")
multi := regex.match("(?m)^b$", "a\\nb\\nc")
posix := regex.match("^[[:alpha:]]+$", "abc")
unicode := regex.match("^\\\\p{Greek}+$", "αβγ")
quoted := regex.match("\\\\Qa.b\\\\E", "axb")
brace := regex.match("x{,3}", "x{,3}")
`);
    expect(r).toEqual({
      plain: true,
      dot_cr: true,
      dot_nl: false,
      dot_all: true,
      space_vt: false,
      fold: true,
      scoped: true,
      multi: true,
      posix: true,
      unicode: true,
      quoted: false,
      brace: true,
    });
  });

  it("validates patterns: what RE2 lacks is invalid, a non-string is false", async () => {
    expect(await call("regex.is_valid", "[[:alpha:]]+")).toBe(true);
    expect(await call("regex.is_valid", "(a)\\1")).toBe(false);
    expect(await call("regex.is_valid", "a(?=b)")).toBe(false);
    expect(await call("regex.is_valid", "a**")).toBe(false);
    expect(await call("regex.is_valid", "x{1001}")).toBe(false);
    expect(await call("regex.is_valid", 5)).toBe(false);
  });

  it("finds, extracts and replaces as Go's FindAllString, FindAllStringSubmatch and ReplaceAllString", async () => {
    expect(await call("regex.find_n", "a*", "baaac", -1)).toEqual(["", "aaa", ""]);
    expect(await call("regex.find_n", "[0-9]+", "a1b22c333", 2)).toEqual(["1", "22"]);
    expect(await call("regex.find_all_string_submatch_n", "(a)(x)?", "aba", -1)).toEqual([
      ["a", "a", ""],
      ["a", "a", ""],
    ]);
    expect(await call("regex.replace", "abc", "x*", "-")).toBe("-a-b-c-");
    expect(await call("regex.replace", "aaa", "^a", "b")).toBe("baa");
    expect(await call("regex.replace", "John Smith", "(?P<first>\\w+) (?P<last>\\w+)", "$" + "{last}, $first")).toBe(
      "Smith, John",
    );
    expect(await call("regex.replace", "ab", "(a)", "$1x")).toBe("b"); // $1x names group "1x", as Go
  });

  it("fails the evaluation on unsupported syntax and wrong operand types", async () => {
    await expect(call("regex.match", "(a)\\1", "aa")).rejects.toThrow(
      /regex.match: error parsing regexp: invalid escape/,
    );
    await expect(call("regex.match", "(?<=a)b", "ab")).rejects.toThrow(/error parsing regexp/);
    await expect(call("regex.match", "a", 1)).rejects.toThrow("regex.match: operand 2 must be string but got number");
    await expect(call("regex.find_n", "a", "a", 1.5)).rejects.toThrow(
      "operand 3 must be integer number but got floating-point number",
    );
  });
});

describe("net", () => {
  it("tests containment and intersection of IPv4 and IPv6 networks", async () => {
    const r = await rules(`
ip := net.cidr_contains("10.0.0.0/8", "10.1.2.3")
subnet := net.cidr_contains("10.0.0.0/8", "10.1.0.0/16")
outside := net.cidr_contains("10.0.0.0/8", "11.1.0.0/16")
wider := net.cidr_contains("10.1.0.0/16", "10.0.0.0/8")
v6 := net.cidr_contains("2001:db8::/32", "2001:db8:1::1")
mapped := net.cidr_contains("10.0.0.0/8", "::ffff:10.1.2.3")
overlap := net.cidr_intersects("10.0.0.0/8", "10.255.0.0/16")
apart := net.cidr_intersects("192.168.0.0/16", "10.0.0.0/8")
`);
    expect(r).toEqual({
      ip: true,
      subnet: true,
      outside: false,
      wider: false,
      v6: true,
      mapped: true,
      overlap: true,
      apart: false,
    });
  });

  it("validates CIDRs as Go's net.ParseCIDR", async () => {
    expect(await call("net.cidr_is_valid", "10.0.0.0/8")).toBe(true);
    expect(await call("net.cidr_is_valid", "::/0")).toBe(true);
    expect(await call("net.cidr_is_valid", "010.0.0.0/8")).toBe(false);
    expect(await call("net.cidr_is_valid", "10.0.0.0/33")).toBe(false);
    expect(await call("net.cidr_is_valid", "10.0.0.0")).toBe(false);
    expect(await call("net.cidr_is_valid", 7)).toBe(false);
  });

  it("expands a network to its addresses, in set order", async () => {
    expect(await call("net.cidr_expand", "10.0.0.8/30")).toEqual(["10.0.0.10", "10.0.0.11", "10.0.0.8", "10.0.0.9"]);
    expect(await call("net.cidr_expand", "2001:db8::/127")).toEqual(["2001:db8::", "2001:db8::1"]);
  });

  it("fails on malformed CIDRs and addresses", async () => {
    await expect(call("net.cidr_contains", "10.0.0.0/33", "10.0.0.1")).rejects.toThrow(
      "net.cidr_contains: invalid CIDR address: 10.0.0.0/33",
    );
    await expect(call("net.cidr_contains", "10.0.0.0/8", "bogus")).rejects.toThrow(
      "not a valid textual representation of an IP address or CIDR: bogus",
    );
    await expect(call("net.cidr_intersects", "10.0.0.0/8", "1.2.3")).rejects.toThrow(/invalid CIDR address: 1.2.3/);
    await expect(call("net.cidr_expand", 10)).rejects.toThrow("operand 1 must be string but got number");
  });
});

describe("uuid", () => {
  it("generates a v4 UUID per key, stable within an evaluation", async () => {
    const first = await rules(`
a := uuid.rfc4122("k")
b := uuid.rfc4122("k")
c := uuid.rfc4122("other")
parsed := uuid.parse(a)
`);
    expect(first.a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(first.b).toBe(first.a);
    expect(first.c).not.toBe(first.a);
    expect(first.parsed).toEqual({ version: 4, variant: "RFC4122" });
    await expect(call("uuid.rfc4122", 42)).rejects.toThrow("uuid.rfc4122: operand 1 must be string but got number");
  });

  it("parses UUIDs, decoding time-based ones, and is undefined for anything else", async () => {
    const r = await rules(`
v1 := uuid.parse("urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8")
time := json.marshal(v1.time)
braces := uuid.parse("{6ba7b810-9dad-11d1-80b4-00c04fd430c8}") == v1
v4 := uuid.parse("9c3dbe0e-5b3a-4d9f-9a2b-3c4d5e6f7a8b")
`);
    expect(r).toEqual({
      v1: {
        version: 1,
        variant: "RFC4122",
        time: expect.any(Number), // exact below
        nodeid: "00-c0-4f-d4-30-c8",
        macvariables: "global:unicast",
        clocksequence: 180,
      },
      time: "886630433151182400", // 1998-02-04T22:13:53.1511824Z, exact
      braces: true,
      v4: { version: 4, variant: "RFC4122" },
    });
    expect(await call("uuid.parse", "not-a-uuid")).toBeUndefined();
  });

  it("decodes a version 2 UUID as OPA (v1/test/cases/testdata/v1/uuid/test-uuid-parse.yaml)", async () => {
    const r = await rules(`
v2 := object.remove(uuid.parse("000003e8-48b9-21ee-b200-325096b39f47"), ["time"])
time := json.marshal(uuid.parse("000003e8-48b9-21ee-b200-325096b39f47").time)
v3 := uuid.parse("38074da4-0b00-388d-9c3c-362de965547a")
`);
    expect(r).toEqual({
      v2: {
        clocksequence: 12800,
        domain: "Person",
        id: 1000,
        macvariables: "local:unicast",
        nodeid: "32-50-96-b3-9f-47",
        variant: "RFC4122",
        version: 2,
      },
      time: "1693566990121469600",
      v3: { variant: "RFC4122", version: 3 },
    });
  });
});

describe("units", () => {
  it("parses decimal and binary SI quantities", async () => {
    const r = await rules(`
milli := units.parse("1500m")
mega := units.parse("4M")
kibi := units.parse("1.5Ki")
sci := units.parse("1e-3K")
quoted := units.parse("\\"10G\\"")
bytes := units.parse_bytes("1.5e3MB")
kib := units.parse_bytes("1.5KiB")
lower_mb := units.parse_bytes("4mb")
plain := units.parse_bytes("10")
`);
    expect(r).toEqual({
      milli: 1.5,
      mega: 4000000,
      kibi: 1536,
      sci: 1,
      quoted: 10000000000,
      bytes: 1500000000,
      kib: 1536,
      lower_mb: 4000000,
      plain: 10,
    });
  });

  it("rejects spaces, unknown units and missing amounts", async () => {
    await expect(call("units.parse", "1 m")).rejects.toThrow(/spaces not allowed/);
    await expect(call("units.parse", "1mb")).rejects.toThrow(/unit mb not recognized/);
    await expect(call("units.parse", "K")).rejects.toThrow(/no amount provided/);
    await expect(call("units.parse_bytes", "1yb")).rejects.toThrow(/byte unit yb not recognized/);
    await expect(call("units.parse_bytes", ["1"])).rejects.toThrow("operand 1 must be string but got array");
  });
});

describe("semver", () => {
  it("validates and compares as OPA's semver (SemVer 2.0 precedence, optional v prefix)", async () => {
    const r = await rules(`
valid := semver.is_valid("1.2.3-rc.1+build.5")
v_prefix := semver.is_valid("v1.2.3")
short := semver.is_valid("1.2")
not_string := semver.is_valid(1)
gt := semver.compare("1.9.10", "1.8.15")
pre := semver.compare("1.0.0-alpha", "1.0.0-alpha.1")
numeric := semver.compare("1.0.0-beta.2", "1.0.0-beta.11")
release := semver.compare("1.0.0-rc.1", "1.0.0")
build := semver.compare("1.0.0+a", "1.0.0+b")
`);
    expect(r).toEqual({
      valid: true,
      v_prefix: true,
      short: false,
      not_string: false,
      gt: 1,
      pre: -1,
      numeric: -1,
      release: -1,
      build: 0,
    });
    await expect(call("semver.compare", "1.0", "1.0.0")).rejects.toThrow(
      'operand 1: string "1.0" is not a valid SemVer',
    );
    await expect(call("semver.compare", "1.0.0", 1)).rejects.toThrow("operand 2 must be string but got number");
  });

  it("refuses what SemVer 2.0.0 refuses, as OPA's strict parser (leading zeros, empty identifiers)", async () => {
    for (const [a, b, bad] of [
      ["1.02.3", "1.2.3", 1],
      ["1.2.3", "1.2.3-01", 2],
      ["1.2.3-", "1.2.3", 1],
      ["1.0.0-rc..1", "1.0.0", 1],
      ["1.0.0+", "1.0.0", 1],
    ] as const) {
      const version = bad === 1 ? a : b;
      await expect(call("semver.compare", a, b), version).rejects.toThrow(
        `operand ${bad}: string "${version}" is not a valid SemVer`,
      );
    }
    const r = await rules(`
zero := semver.compare("0.0.0-0", "0.0.0")
alnum := semver.compare("1.0.0-0a", "1.0.0-1")
valid := semver.is_valid("1.2.3-01")
`);
    expect(r).toEqual({ zero: -1, alnum: 1, valid: false });
  });
});

describe("encodings", () => {
  it("encodes and decodes base64, base64url and hex", async () => {
    const r = await rules(`
b64 := base64.encode("héllo?")
b64_back := base64.decode(b64)
valid := base64.is_valid("aGVs\\nbG8=")
unpadded := base64.is_valid("aGVsbG8")
url := base64url.encode("??>")
url_no_pad := base64url.encode_no_pad("?")
url_back := base64url.decode("Pz8-")
url_unpadded := base64url.decode("aGVsbG8")
hx := hex.encode("hi")
hex_back := hex.decode("6869")
`);
    expect(r).toEqual({
      b64: "aMOpbGxvPw==",
      b64_back: "héllo?",
      valid: true,
      unpadded: false,
      url: "Pz8-",
      url_no_pad: "Pw",
      url_back: "??>",
      url_unpadded: "hello",
      hx: "6869",
      hex_back: "hi",
    });
  });

  it("decodes strictly, as Go", async () => {
    await expect(call("base64.decode", "aGVsbG8")).rejects.toThrow(/illegal base64 data/);
    await expect(call("base64url.decode", "a")).rejects.toThrow(/illegal base64url string/);
    await expect(call("hex.decode", "6g")).rejects.toThrow("encoding/hex: invalid byte: U+0067 'g'");
    await expect(call("hex.decode", "686")).rejects.toThrow("encoding/hex: odd length hex string");
    await expect(call("base64.encode", 1)).rejects.toThrow("base64.encode: operand 1 must be string but got number");
  });

  it("escapes and parses URL queries as Go's net/url", async () => {
    expect(await call("urlquery.encode", "a b&c=d/é!*'()~")).toBe("a+b%26c%3Dd%2F%C3%A9%21%2A%27%28%29~");
    expect(await call("urlquery.decode", "a+b%26c%3Dd")).toBe("a b&c=d");
    expect(await call("urlquery.encode_object", { b: ["2", "1"], a: "x y", c: [] })).toBe("a=x+y&b=2&b=1");
    expect(await call("urlquery.decode_object", "a=1&b=2&a=3&c")).toEqual({ a: ["1", "3"], b: ["2"], c: [""] });
    await expect(call("urlquery.decode", "%zz")).rejects.toThrow('invalid URL escape "%zz"');
    await expect(call("urlquery.decode_object", "a=1;b=2")).rejects.toThrow(/invalid semicolon separator/);
    await expect(call("urlquery.encode_object", { a: 1 })).rejects.toThrow(
      "operand 1 values must be string, array[string], or set[string]",
    );
  });
});

describe("crypto", () => {
  it("digests and MACs strings as hex (FIPS 180 and RFC 2202/4231 vectors)", async () => {
    const r = await rules(`
md5 := crypto.md5("abc")
sha1 := crypto.sha1("abc")
sha256 := crypto.sha256("abc")
hmac_md5 := crypto.hmac.md5("what do ya want for nothing?", "Jefe")
hmac_sha1 := crypto.hmac.sha1("what do ya want for nothing?", "Jefe")
hmac_sha256 := crypto.hmac.sha256("what do ya want for nothing?", "Jefe")
hmac_sha512 := crypto.hmac.sha512("what do ya want for nothing?", "Jefe")
equal := crypto.hmac.equal(hmac_sha256, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
unequal := crypto.hmac.equal("abc", "abd")
shorter := crypto.hmac.equal("abc", "ab")
`);
    expect(r).toEqual({
      md5: "900150983cd24fb0d6963f7d28e17f72",
      sha1: "a9993e364706816aba3e25717850c26c9cd0d89d",
      sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
      hmac_md5: "750c783e6ab0b503eaa86e310a5db738",
      hmac_sha1: "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
      hmac_sha256: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      hmac_sha512:
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
      equal: true,
      unequal: false,
      shorter: false,
    });
    await expect(call("crypto.sha256", 1)).rejects.toThrow("crypto.sha256: operand 1 must be string but got number");
  });
});

describe("JWT", () => {
  const b64url = (x: Buffer | string) => Buffer.from(x).toString("base64url");
  const encode = (header: object, payload: object | string, signer: (data: Buffer) => Buffer) => {
    const h = b64url(JSON.stringify(header));
    const p = b64url(typeof payload === "string" ? payload : JSON.stringify(payload));
    return `${h}.${p}.${b64url(signer(Buffer.from(`${h}.${p}`)))}`;
  };

  const keys: Record<string, { privateKey: KeyObject; publicKey: KeyObject }> = {};
  const secret = "s3cret-for-hmac";
  const claims = { sub: "alice", iss: "https://issuer.example", aud: "mandate", exp: 2000000000, nbf: 1600000000 };
  let rsaOther: KeyObject;

  const signer = (alg: string): ((data: Buffer) => Buffer) => {
    const hash = `sha${alg.slice(2)}`;
    switch (alg.slice(0, 2)) {
      case "RS":
        return (d) => sign(hash, d, keys.rsa?.privateKey as KeyObject);
      case "PS":
        return (d) =>
          sign(hash, d, {
            key: keys.rsa?.privateKey as KeyObject,
            padding: constants.RSA_PKCS1_PSS_PADDING,
            saltLength: Number(alg.slice(2)) / 8,
          });
      case "ES":
        return (d) =>
          sign(hash, d, { key: keys[`ec${alg.slice(2)}`]?.privateKey as KeyObject, dsaEncoding: "ieee-p1363" });
      case "HS":
        return (d) => createHmac(hash, secret).update(d).digest();
      default:
        return (d) => sign(null, d, keys.ed25519?.privateKey as KeyObject);
    }
  };
  const keyFor = (alg: string) =>
    alg.startsWith("ES") ? keys[`ec${alg.slice(2)}`] : alg === "EdDSA" ? keys.ed25519 : keys.rsa;
  const pem = (alg: string) => keyFor(alg)?.publicKey.export({ type: "spki", format: "pem" }) as string;

  beforeAll(() => {
    keys.rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
    rsaOther = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey;
    keys.ec256 = generateKeyPairSync("ec", { namedCurve: "P-256" });
    keys.ec384 = generateKeyPairSync("ec", { namedCurve: "P-384" });
    keys.ec512 = generateKeyPairSync("ec", { namedCurve: "P-521" });
    keys.ed25519 = generateKeyPairSync("ed25519");
  });

  const asymmetric = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];

  it.each(asymmetric)("verifies %s with a PEM public key, and refuses a tampered or foreign token", async (alg) => {
    const fn = `io.jwt.verify_${alg.toLowerCase()}`;
    const token = encode({ alg, typ: "JWT" }, claims, signer(alg));
    expect(await call(fn, token, pem(alg))).toBe(true);
    const [h, , s] = token.split(".");
    const tampered = `${h}.${b64url(JSON.stringify({ ...claims, sub: "mallory" }))}.${s}`;
    expect(await call(fn, tampered, pem(alg))).toBe(false);
    const foreign = rsaOther.export({ type: "spki", format: "pem" }) as string;
    expect(await call(fn, token, foreign)).toBe(false);
  });

  it.each(["HS256", "HS384", "HS512"])("verifies %s with the secret, and refuses another secret", async (alg) => {
    const fn = `io.jwt.verify_${alg.toLowerCase()}`;
    const token = encode({ alg }, claims, signer(alg));
    expect(await call(fn, token, secret)).toBe(true);
    expect(await call(fn, token, "other")).toBe(false);
  });

  it("takes a JWK or a JWKS (matching kid and alg) for asymmetric algorithms", async () => {
    const jwk = keys.ec256?.publicKey.export({ format: "jwk" }) as Record<string, unknown>;
    const token = encode({ alg: "ES256", kid: "k2" }, claims, signer("ES256"));
    expect(await call("io.jwt.verify_es256", token, JSON.stringify(jwk))).toBe(true);
    const other = keys.ec384?.publicKey.export({ format: "jwk" }) as Record<string, unknown>;
    const jwks = {
      keys: [
        { ...other, kid: "k1" },
        { ...jwk, kid: "k2", alg: "ES256" },
      ],
    };
    expect(await call("io.jwt.verify_es256", token, JSON.stringify(jwks))).toBe(true);
    // The kid picks the key: a kid naming the wrong key fails even though another key would verify.
    const wrongKid = {
      keys: [
        { ...other, kid: "k2" },
        { ...jwk, kid: "k3" },
      ],
    };
    expect(await call("io.jwt.verify_es256", token, JSON.stringify(wrongKid))).toBe(false);
    // A key declared for another algorithm is skipped.
    const otherAlg = { keys: [{ ...jwk, alg: "ES384" }] };
    expect(
      await call("io.jwt.verify_es256", encode({ alg: "ES256" }, claims, signer("ES256")), JSON.stringify(otherAlg)),
    ).toBe(false);
  });

  it("refuses a token whose header names another algorithm, and alg none", async () => {
    const rs256Signed = encode({ alg: "RS512" }, claims, signer("RS256"));
    expect(await call("io.jwt.verify_rs256", rs256Signed, pem("RS256"))).toBe(false);
    const hsAsRs = encode({ alg: "HS256" }, claims, signer("HS256"));
    expect(await call("io.jwt.verify_hs384", hsAsRs, secret)).toBe(false);
    const none = `${b64url(JSON.stringify({ alg: "none" }))}.${b64url(JSON.stringify(claims))}.`;
    expect(await call("io.jwt.verify_rs256", none, pem("RS256"))).toBe(false);
    expect(await call("io.jwt.verify_hs256", none, secret)).toBe(false);
  });

  it("fails on malformed tokens and keys", async () => {
    const token = encode({ alg: "RS256" }, claims, signer("RS256"));
    await expect(call("io.jwt.verify_rs256", "not-a-token", pem("RS256"))).rejects.toThrow(
      "encoded JWT had no period separators",
    );
    await expect(call("io.jwt.verify_rs256", "a.b", pem("RS256"))).rejects.toThrow(
      "encoded JWT must have 3 sections, found 2",
    );
    await expect(call("io.jwt.verify_rs256", token, "not a key")).rejects.toThrow(/failed to parse a JWK key/);
    await expect(call("io.jwt.verify_rs256", token, `${pem("RS256")}\n`)).rejects.toThrow(
      "extra data after a PEM certificate block",
    );
    await expect(call("io.jwt.verify_rs256", token, 1)).rejects.toThrow("operand 2 must be string but got number");
  });

  it("decodes header, claims and signature without verifying", async () => {
    const token = encode({ alg: "HS256", typ: "JWT" }, claims, signer("HS256"));
    const [header, payload, sig] = (await call("io.jwt.decode", token)) as [object, Record<string, unknown>, string];
    expect(header).toEqual({ alg: "HS256", typ: "JWT" });
    expect(payload).toEqual(claims);
    expect(sig).toBe(Buffer.from(token.split(".")[2] as string, "base64url").toString("hex"));
    // Claims keep their numbers exactly, as OPA's json.Number.
    const big = encode({ alg: "HS256" }, '{"n":12345678901234567890,"f":1.0}', signer("HS256"));
    expect(await rules("r := json.marshal(io.jwt.decode(input.t)[1])", { t: big })).toEqual({
      r: '{"f":1.0,"n":12345678901234567890}',
    });
    const nested = encode({ alg: "HS256", cty: "JWT" }, JSON.stringify(token), signer("HS256"));
    expect(((await call("io.jwt.decode", nested)) as unknown[])[1]).toMatchObject(claims);
    await expect(call("io.jwt.decode", `${b64url("{")}.e30.`)).rejects.toThrow(/bad JWT header/);
    await expect(call("io.jwt.decode", `${b64url('{"enc":"A128GCM"}')}.e30.`)).rejects.toThrow(/JWE/);
  });

  it("decodes and verifies with constraints (io.jwt.decode_verify)", async () => {
    const token = encode({ alg: "RS256", typ: "JWT" }, claims, signer("RS256"));
    const at = (seconds: number) => seconds * 1e9;
    const cert = pem("RS256");
    const good = await call("io.jwt.decode_verify", token, { cert, aud: "mandate", time: at(1700000000) });
    expect(good).toEqual([true, { alg: "RS256", typ: "JWT" }, claims]);
    const unverified = [false, {}, {}];
    expect(await call("io.jwt.decode_verify", token, { cert, aud: "mandate", time: at(2000000001) })).toEqual(
      unverified,
    );
    expect(await call("io.jwt.decode_verify", token, { cert, aud: "mandate", time: at(1500000000) })).toEqual(
      unverified,
    );
    expect(await call("io.jwt.decode_verify", token, { cert, time: at(1700000000) })).toEqual(unverified); // aud unchecked
    expect(await call("io.jwt.decode_verify", token, { cert, aud: "mandate", iss: "x", time: at(1700000000) })).toEqual(
      unverified,
    );
    expect(await call("io.jwt.decode_verify", token, { cert, aud: "mandate", alg: "ES256", time: at(1.7e9) })).toEqual(
      unverified,
    );
    const hs = encode({ alg: "HS256" }, claims, signer("HS256"));
    expect(
      ((await call("io.jwt.decode_verify", hs, { secret, aud: "mandate", time: at(1.7e9) })) as unknown[])[0],
    ).toBe(true);
    await expect(call("io.jwt.decode_verify", token, { aud: "mandate" })).rejects.toThrow("no key constraint");
    await expect(call("io.jwt.decode_verify", token, { cert, secret })).rejects.toThrow("duplicate key constraints");
    await expect(call("io.jwt.decode_verify", token, { cert, foo: 1 })).rejects.toThrow(
      "unknown token validation constraint: foo",
    );
  });
});

describe("bits", () => {
  it("operates on arbitrary-precision integers", async () => {
    const r = await rules(`
b_or := bits.or(12, 10)
b_and := bits.and(12, 10)
b_xor := bits.xor(12, 10)
negate := bits.negate(-50)
lsh := bits.lsh(9, 2)
rsh := bits.rsh(-9, 1)
big := json.marshal(bits.lsh(1, 70))
`);
    expect(r).toEqual({ b_or: 14, b_and: 8, b_xor: 6, negate: 49, lsh: 36, rsh: -5, big: "1180591620717411303424" });
  });

  it("rejects non-integers and negative shifts", async () => {
    await expect(call("bits.or", 1.5, 1)).rejects.toThrow(
      "operand 1 must be integer number but got floating-point number",
    );
    await expect(call("bits.lsh", 1, "str")).rejects.toThrow("bits.lsh: operand 2 must be integer but got string");
    await expect(call("bits.rsh", 1, -1)).rejects.toThrow("operand 2 must be an unsigned integer number");
  });
});

describe("strings.replace_n and rand.intn", () => {
  it("replaces with Go's strings.Replacer over the patterns in key order", async () => {
    expect(await call("strings.replace_n", { f: "x", foo: "xxx" }, "foo")).toBe("xoo");
    expect(await call("strings.replace_n", { a: "1", b: "2" }, "abcab")).toBe("12c12");
    await expect(call("strings.replace_n", ["a"], "abc")).rejects.toThrow("operand 1 must be object but got array");
    await expect(call("strings.replace_n", { a: 1 }, "abc")).rejects.toThrow(
      "non-string value found in pattern object",
    );
  });

  it("draws one number per (string, n) in an evaluation", async () => {
    const r = await rules(`
a := rand.intn("x", 1000)
b := rand.intn("x", 1000)
c := rand.intn("x", -1000)
zero := rand.intn("x", 0)
`);
    expect(r.a).toBe(r.b);
    expect(r.c).toBe(r.a); // OPA uses |n|
    expect(r.zero).toBe(0);
    expect(r.a as number).toBeGreaterThanOrEqual(0);
    expect(r.a as number).toBeLessThan(1000);
    await expect(call("rand.intn", "x", 10.3)).rejects.toThrow(
      "operand 2 must be integer number but got floating-point number",
    );
    await expect(call("rand.intn", 1, 2)).rejects.toThrow("rand.intn: operand 1 must be string but got number");
  });
});

describe("casts, trace, numbers.range_step, strings.split_n, net.cidr_overlap", () => {
  it("casts scalars to themselves and refuses other types as OPA (v1/topdown/casts.go)", async () => {
    const r = await rules(`
s := cast_string("x")
b := cast_boolean(false)
n := cast_null(null)
t := trace("note")
`);
    expect(r).toEqual({ s: "x", b: false, n: null, t: true });
    await expect(call("cast_string", 1)).rejects.toThrow("cast_string: operand 1 must be string but got number");
    await expect(call("cast_boolean", "true")).rejects.toThrow(
      "cast_boolean: operand 1 must be boolean but got string",
    );
    await expect(call("cast_null", false)).rejects.toThrow("cast_null: operand 1 must be null but got boolean");
    await expect(call("trace", 1)).rejects.toThrow("trace: operand 1 must be string but got number");
  });

  it("steps ranges up and down, exactly beyond 2^53", async () => {
    const r = await rules(`
up := numbers.range_step(0, 10, 3)
down := numbers.range_step(10, 0, 4)
one := numbers.range_step(5, 5, 7)
big := json.marshal(numbers.range_step(9007199254740993, 9007199254740997, 2))
`);
    expect(r).toEqual({
      up: [0, 3, 6, 9],
      down: [10, 6, 2],
      one: [5],
      big: "[9007199254740993,9007199254740995,9007199254740997]",
    });
    await expect(call("numbers.range_step", 0, 5, 0)).rejects.toThrow(
      "numbers.range_step: step must be a positive integer",
    );
    await expect(call("numbers.range_step", 0, 5, -1)).rejects.toThrow("step must be a positive integer");
    await expect(call("numbers.range_step", 0.5, 5, 1)).rejects.toThrow(
      "operand 1 must be integer number but got floating-point number",
    );
    await expect(call("numbers.range_step", 0, 1e12, 1)).rejects.toThrow(BUDGET_EXHAUSTED_MESSAGE);
  });

  it("splits into the first n pieces, or the last -n, as OPA's strings.split_n", async () => {
    const r = await rules(`
first_two := strings.split_n("a.b.c", ".", 2)
all := strings.split_n("a.b.c", ".", 5)
none := strings.split_n("a.b.c", ".", 0)
last_two := strings.split_n("a.b.c", ".", -2)
last_many := strings.split_n("a.b.c", ".", -9)
runes := strings.split_n("añb", "", 2)
absent := strings.split_n("abc", ",", 1)
`);
    expect(r).toEqual({
      first_two: ["a", "b"],
      all: ["a", "b", "c"],
      none: [],
      last_two: ["b", "c"],
      last_many: ["a", "b", "c"],
      runes: ["a", "ñ"],
      absent: ["abc"],
    });
    await expect(call("strings.split_n", "a", ".", 1.5)).rejects.toThrow(
      "strings.split_n: operand 3 must be integer number but got floating-point number",
    );
  });

  it("answers net.cidr_overlap as net.cidr_contains (OPA registers one for the other)", async () => {
    expect(await call("net.cidr_overlap", "10.0.0.0/8", "10.1.2.3")).toBe(true);
    expect(await call("net.cidr_overlap", "10.0.0.0/8", "11.0.0.1")).toBe(false);
    await expect(call("net.cidr_overlap", 1, "10.1.2.3")).rejects.toThrow("net.cidr_overlap: operand 1");
  });
});

describe("errors and number texts", () => {
  it("labels errors with OPA's codes: eval_type_error for operands, eval_builtin_error otherwise", async () => {
    await expect(call("cast_string", 1)).rejects.toThrow(
      /^eval_type_error: cast_string: operand 1 must be string but got number$/,
    );
    await expect(call("units.parse", "")).rejects.toThrow(/^eval_builtin_error: units\.parse: no amount provided$/);
  });

  it("reads large numbers exactly also from a copy of the built-ins (as policy tests make)", async () => {
    const { wasm } = compileRego({
      modules: { "t.rego": "package t\nr := time.format(1703444325734390123)\ns := time.format(input.ns)" },
      entrypoints: ["t"],
    });
    const policy = await loadPolicy(wasm, undefined, { ...hostBuiltins });
    const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;
    expect(policy.evaluate({ ns: rawJSON("1703444325734390124") }, "t")).toEqual([
      { result: { r: "2023-12-24T18:58:45.734390123Z", s: "2023-12-24T18:58:45.734390124Z" } },
    ]);
  });
});

describe("mandate.regex_split", () => {
  const split = hostBuiltins["mandate.regex_split"] as (pattern: unknown, value: unknown) => unknown;

  it("splits as Go's Regexp.Split(s, -1) (Go's documented examples)", () => {
    expect(split("a", "banana")).toEqual(["b", "n", "n", ""]);
    expect(split("z+", "pizza")).toEqual(["pi", "a"]);
    expect(split("a*", "abaabaccadaaae")).toEqual(["", "b", "b", "c", "c", "d", "e"]);
    expect(split("a", "")).toEqual([""]);
    expect(split(",", "x")).toEqual(["x"]);
  });

  it("takes RE2 syntax and names regex.split in its errors", () => {
    expect(split("\\pL+", "añb1c")).toEqual(["", "1", ""]);
    expect(() => split("(?=a)", "a")).toThrow(/^eval_builtin_error: regex\.split: /);
    expect(() => split(1, "a")).toThrow("eval_type_error: regex.split: operand 1 must be string but got number");
  });
});
