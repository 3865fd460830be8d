// `with` as OPA 1.x has it: input, base documents, rules and packages, functions and built-ins
// replaced (by a function, a built-in, a document or a value), nested, through imports, in rule
// bodies, comprehensions, `every` and `not`; and OPA's compile errors for targets it refuses. Also
// walk, the one relation among the built-ins, which the planner lowers to a scan.
// Expected results are OPA's: the cases named `withkeyword/…` are OPA's own test cases
// (v1/test/cases/testdata/v1/withkeyword/*.yaml, file named in each), the others are written here
// with the result OPA 1.x gives. Every positive case is compiled into one module (each case's
// packages renamed under a prefix of its own), so the suite costs one compile; as OPA runs its
// cases, built-in errors are not strict.
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import { beforeAll, describe, expect, it } from "vitest";
import { RegoCompileErrors } from "../../services/authorize/rego/check.ts";
import { compileRego } from "../../services/authorize/rego/compile.ts";
import { lenientHostBuiltins } from "../../services/authorize/rego/host-builtins.ts";

interface Case {
  note: string;
  modules: string[];
  /** The document evaluated, as an entrypoint (`test/p`). */
  query: string;
  data?: Record<string, unknown>;
  input?: unknown;
  /** The result, or undefined for no result. */
  want: unknown;
}

const UNDEFINED = undefined;

const OPA_CASES: Case[] = [
  // test-with-function-mock.yaml
  {
    note: "withkeyword/function: direct call, value replacement, arity 1",
    modules: ["package test\nf(_) := 2\np := y if {\n  y = f(true) with f as 1\n}"],
    query: "test/p",
    want: 1,
  },
  {
    note: "withkeyword/function: direct call, function replacement, arity 1",
    modules: ["package test\nf(_) := 2\ng(_) := 1\np := y if {\n  y = f(true) with f as g\n}"],
    query: "test/p",
    want: 1,
  },
  {
    note: "withkeyword/function: direct call, function replacement, arity 1, result captured",
    modules: ["package test\nf(_) := 2\ng(_) := 1\np if {\n  f(true, 1) with f as g\n}"],
    query: "test/p",
    want: true,
  },
  {
    note: "withkeyword/function: direct call, built-in replacement, arity 1",
    modules: ["package test\nf(_) := 2\np := y if {\n  y = f([1]) with f as count\n}"],
    query: "test/p",
    want: 1,
  },
  {
    note: "withkeyword/function: direct call, built-in replacement, arity 1, result captured",
    modules: ["package test\nf(_) := 2\np if {\n  f([1], 1) with f as count\n}"],
    query: "test/p",
    want: true,
  },
  {
    note: "withkeyword/function: nested scope handling",
    modules: [
      `package test
f1(x) := object.union_n(x)
f2(x) := count(x)
f3(x) := array.reverse(x)
f(x) := f1(x)
g(x) := 123 if {
  f2(x)
  s with f3 as h
}
h(_) := ["replaced"]
p if q with f1 as f
q if r with f2 as g
r if {
  x := [{"foo": 4}, {"baz": 5}]
  f2(x) == 123
  f1(x) == {"foo": 4, "baz": 5}
}
s if {
  x := [{}]
  f3(x) == ["replaced"]
}`,
    ],
    query: "test/p",
    want: true,
  },
  {
    note: "withkeyword/function: simple scope handling (no recursion here)",
    modules: ["package test\nf(x) := 2\ng(x) := f(x)\np := y if y := f(1) with f as g"],
    query: "test/p",
    want: 2,
  },
  {
    note: "withkeyword/function: rule indexing irrelevant",
    modules: ['package test\nf(_) := 1 if {\n  input.x = "x"\n}\np := y if y := f(1) with f as 2'],
    query: "test/p",
    want: 2,
  },
  {
    note: "withkeyword/function: direct call, arity 1, replacement is value that needs eval (array comprehension)",
    modules: ["package test\nf(_) := 1\np if {\n  f([1, 2, 3]) == 1 with f as [1 | true][0]\n}"],
    query: "test/p",
    want: true,
  },
  {
    note: "withkeyword/function: indirect call, arity 1, replacement is value that needs eval (array comprehension)",
    modules: ["package test\nf(_) := 1\np if {\n  q with f as [1 | true][0]\n}\nq if {\n  f([1, 2, 3]) == 1\n}"],
    query: "test/p",
    want: true,
  },
  // test-with-builtin-mock.yaml
  {
    note: "withkeyword/builtin: direct call, arity 0",
    modules: ["package test\nf := 1\np := y if {\n  y = time.now_ns() with time.now_ns as f\n}"],
    query: "test/p",
    want: 1,
  },
  {
    note: "withkeyword/builtin: direct call, arity 1",
    modules: ["package test\nf(_) := 1\np := y if {\n  y = count([1, 2, 3]) with count as f\n}"],
    query: "test/p",
    want: 1,
  },
  {
    note: "withkeyword/builtin: indirect call, arity 1",
    modules: ["package test\nf(_) := 1\np if {\n  q with count as f\n}\nq if {\n  count([1, 2, 3]) == 1\n}"],
    query: "test/p",
    want: true,
  },
  {
    note: "withkeyword/builtin: indirect call, arity 0, rule queried with and without mock",
    modules: ["package test\nf := 1\np if {\n  q with time.now_ns as f\n  not q\n}\nq if {\n  time.now_ns() == 1\n}"],
    query: "test/p",
    want: true,
  },
  {
    note: "withkeyword/builtin: indirect call, arity 0, query package",
    modules: ["package test\nf := 1\np if {\n  q with time.now_ns as f\n}\nq if {\n  time.now_ns() == 1\n}"],
    query: "test",
    want: { f: 1, p: true },
  },
  {
    note: "withkeyword/builtin: http.send example",
    modules: [
      `package test
pass_resp := {"body": {"roles": ["admin"]}}
deny_resp := {"body": {"roles": []}}
mock_http_send(req) := pass_resp if {
  req.body.name == "alice"
} else := deny_resp
test_allow if {
  allow with http.send as mock_http_send with input.name as "alice"
}
allow if {
  "admin" in http.send({"method": "GET", "body": input}).body.roles
}`,
    ],
    query: "test/test_allow",
    want: true,
  },
  {
    note: "withkeyword/builtin: nested, multiple mocks",
    modules: [
      `package test
pass_resp := {"body": {"jwt": "myjot"}}
deny_resp := {"body"}
mock_http_send(req) := pass_resp if {
  req.body.name == "alice"
} else := deny_resp
mock_decode_verify("myjot", _) := [true, {}, {"owner": "alice"}]
test_allow if {
  allow with data.verification.cert as "cert"
    with input.name as "alice"
    with http.send as mock_http_send
    with io.jwt.decode_verify as mock_decode_verify
}
allow if {
  payload.owner == input.name
}
claims[k] := v if {
  resp := http.send({"method": "GET", "body": input}).body
  some k, v in resp
}
payload := p if {
  some p
  [true, _, p] = io.jwt.decode_verify(claims.jwt, {"cert": data.verification.cert, "iss": "issuer"})
}`,
    ],
    query: "test/test_allow",
    want: true,
  },
  {
    note: "withkeyword/builtin: indirect call through function, rule with and without mock",
    modules: [
      "package test\nf := 1\np if {\n  q with time.now_ns as f\n  not q\n}\nq if {\n  valid_time(1)\n}\nvalid_time(x) if time.now_ns() == x",
    ],
    query: "test/p",
    want: true,
  },
  {
    note: "withkeyword/builtin: mock function calls original",
    modules: [
      `package test
mock_count("one") := 1
mock_count(x) := count(x) if {
  x != "one"
}
numbers := {"one", "two", "tree"}
p := s if {
  s := {count(n) | some n in numbers} with count as mock_count
}`,
    ],
    query: "test/p",
    want: [1, 3, 4],
  },
  {
    note: "withkeyword/builtin: mock function returns same result for both rule defs",
    modules: [
      `package test
mock_concat("one", _) := ["one"]
mock_concat("one", x) := x
numbers := ["one", "one"]
p := s if {
  s := {concat(n, [n]) | some n in numbers} with concat as mock_concat
}`,
    ],
    query: "test/p",
    want: [["one"]],
  },
  {
    note: "withkeyword/builtin: nested, mock function calls original",
    modules: [
      `package test
mock_concat("one", _) := ["one"]
mock_concat("one", x) := x
count_four(4) := 4
count_four(x) := count(x)
numbers := {"one", "two", "tree"}
q := s if {
  s := {concat(n, [n]) | some n in numbers} with concat as mock_concat
  r
}
r if {
  count(input.four) == 4
}
p := y if {
  y := q with concat as mock_concat
    with count as count_four
    with input.four as 4
}`,
    ],
    query: "test/p",
    want: [["one"]],
  },
  {
    note: "withkeyword/builtin: multiple with",
    modules: [
      `package test
f(_) := 1
g(x) := count(x) # replaced with f by inner "with"
q := y if {
  y = count([1, 2, 3]) with count as f
}
p := y if {
  y = q with count as g
}`,
    ],
    query: "test/p",
    want: 1,
  },
  {
    note: "withkeyword/builtin: mock will not call other mock",
    modules: [
      `package test
f(x) := object.union_n(x) if {x: i | x := ["a", "a"][i]} # never called, runtime error
g(x) := count(x)
p if {
  q with count as f
}
q if {
  r with object.union_n as g
}
r if {
  object.union_n([{}])
}`,
    ],
    query: "test/p",
    want: true,
  },
  {
    note: "withkeyword/builtin: nested scope handling",
    modules: [
      `package test
f(x) := object.union_n(x) # b1
g(x) := 123 if {
  count(x) # b2
  s with array.reverse as h
}
h(_) := ["replaced"]
p if q with object.union_n as f
q if r with count as g
r if {
  x := [{"foo": 4}, {"baz": 5}]
  count(x) == 123
  object.union_n(x) == {"foo": 4, "baz": 5}
}
s if {
  x := [{}]
  array.reverse(x) == ["replaced"]
}`,
    ],
    query: "test/p",
    want: true,
  },
  {
    note: "withkeyword/builtin-value: arity-0, captured output",
    modules: ["package test\np := y if {\n  y = time.now_ns() with time.now_ns as 12300\n}"],
    query: "test/p",
    want: 12300,
  },
  {
    note: "withkeyword/builtin-value: arity-0, false",
    modules: ["package test\np if {\n  time.now_ns() with time.now_ns as false\n}"],
    query: "test/p",
    want: UNDEFINED,
  },
  {
    note: "withkeyword/builtin-value: arity-0, var",
    modules: ["package test\np if {\n  x := true\n  time.now_ns() with time.now_ns as x\n}"],
    query: "test/p",
    want: true,
  },
  {
    note: "withkeyword/builtin-value: arity-1",
    modules: ["package test\np if {\n  count([]) == 1 with count as 1\n}"],
    query: "test/p",
    want: true,
  },
  {
    note: "withkeyword/builtin-value: arity-1, captured",
    modules: ["package test\np if {\n  count([], 1) with count as 1\n}"],
    query: "test/p",
    want: true,
  },
  {
    note: "withkeyword/builtin-value: arity-1, input must still be defined",
    modules: ["package test\np if {\n  count(input) == 1 with count as 1\n}"],
    query: "test/p",
    want: UNDEFINED,
  },
  {
    note: "withkeyword/builtin-builtin: arity 1, replacement is compound",
    modules: ['package test\np := x if {\n  x = count([{}, {"foo": 3}]) with count as object.union_n\n}'],
    query: "test/p",
    want: { foo: 3 },
  },
  {
    note: "withkeyword/builtin-builtin: arity 1, replacement is simple",
    modules: ['package test\np := x if {\n  x = object.union_n([{}, {"foo": 3}]) with object.union_n as count\n}'],
    query: "test/p",
    want: 2,
  },
  {
    note: "withkeyword/builtin: indirect call, arity 1, replacement is value that needs eval (array comprehension)",
    modules: ["package test\np if {\n  q with count as [1 | true][0]\n}\nq if count([1, 2, 3]) == 1"],
    query: "test/p",
    want: true,
  },
  {
    note: "withkeyword/builtin: indirect call, arity 1, replacement is local variable via scan",
    modules: [
      'package test\np if {\n  some v in numbers.range(1, 10)\n  q with count as v\n}\nq if r\nr if count("foo") == 10',
    ],
    query: "test/p",
    want: true,
  },
  {
    note: "withkeyword/builtin: indirect call, arity 1, multiple, nested replacements",
    modules: [
      `package test
p if {
  v := 3
  m with count as v
}
m if {
  v := "300"
  sprintf("x", []) == "x" # unreplaced
  n with sprintf as v
}
n if {
  count(input) == 3
  sprintf("", input) == "300"
}`,
    ],
    query: "test/p",
    input: {},
    want: true,
  },
  // test-withkeyword-10xx.yaml: input and data
  {
    note: "withkeyword/with (1015)",
    modules: [
      "package generated\np if {\n  data.ex.loopback with input as true\n  data.ex.loopback = false with input as false\n}",
      "package ex\nloopback := __local0__ if {\n  true\n  __local0__ = input\n}",
    ],
    query: "generated/p",
    want: true,
  },
  {
    note: "withkeyword/with conflict (1019)",
    modules: [
      'package generated\np := x if {\n  x := data.ex.loopback with input.foo as "x" with input.foo.bar as "y"\n}',
      "package ex\nloopback := y if {\n  true\n  y = input\n}",
    ],
    query: "generated/p",
    want: { foo: { bar: "y" } },
  },
  {
    note: "withkeyword/with stack (data) (1022)",
    modules: [
      `package generated
r := __local0__ if {
  true
  __local0__ = data.test
}
q := x if {
  data.generated.r = x with data.test.a.c as 2
}
p := x if {
  data.generated.q = x with data.test.a.b as 1
}`,
      "package test.a\nd := 3",
      "package test\ne := 4",
    ],
    query: "generated/p",
    want: { a: { b: 1, c: 2, d: 3 }, e: 4 },
  },
  {
    note: "withkeyword/with not stack (data) (1023)",
    modules: [
      "package test.a\nd := 3",
      "package test\ne := 4",
      `package generated
r := __local0__ if {
  true
  __local0__ = data.test
}
n1 if {
  data.test.a.z = 7
}
n if {
  not data.generated.n1
}
q := x if {
  not data.generated.n with data.test.a.z as 7
  data.generated.r = x with data.test.a.c as 2
}
p := x if {
  data.generated.q = x with data.test.a.b as 1
}`,
    ],
    query: "generated/p",
    want: { a: { b: 1, c: 2, d: 3 }, e: 4 },
  },
  {
    note: "withkeyword/with stack overwrites (1024)",
    modules: [
      'package generated\nq := __local0__ if {\n  true\n  __local0__ = input\n}\np := x if {\n  data.generated.q = x with input.a as {"d": 3}\n}',
    ],
    query: "generated/p",
    input: { a: { b: 1, c: 2 } },
    want: { a: { d: 3 } },
  },
  {
    note: "withkeyword/with stack overwrites (data) (1025)",
    modules: [
      'package generated\nq := __local0__ if {\n  true\n  __local0__ = data.test\n}\np := x if {\n  data.generated.q = x with data.test.a as {"d": 3}\n}',
      'package test\na := {"b": 1, "c": 2}',
    ],
    query: "generated/p",
    want: { a: { d: 3 } },
  },
  {
    note: "withkeyword/with invalidate (1026)",
    modules: [
      "package generated\np contains x if {\n  data.a[_] = x\n  not data.ex.input_eq with input.x as x\n}",
      "package ex\ninput_eq if {\n  input.x = 1\n}",
    ],
    query: "generated/p",
    data: { a: [1, 2, 3, 4] },
    want: [2, 3, 4],
  },
  {
    note: "withkeyword/with invalidate input stack (1027)",
    modules: ['package generated\np := [x, y] if {\n  x = input with input as "a"\n  y = input\n}'],
    query: "generated/p",
    input: "b",
    want: ["a", "b"],
  },
  {
    note: "withkeyword/with invalidate data stack (1030)",
    modules: [
      'package generated\nq := "b"\np := [x, y] if {\n  data.generated.q = x with data.generated.q as "a"\n  data.generated.q = y\n}',
    ],
    query: "generated/p",
    want: ["a", "b"],
  },
  {
    note: "withkeyword/with map data overwrite (1033)",
    modules: [
      'package generated\np if {\n  data.ex.allow_merge_1 = true with data.b.v2 as "world"\n}',
      'package ex\nallow_merge_1 if {\n  data.b = {"v1": "hello", "v2": "world"}\n}',
    ],
    query: "generated/p",
    data: { b: { v1: "hello", v2: "goodbye" } },
    want: true,
  },
  {
    note: "withkeyword/with data conflict (1035)",
    modules: [
      "package generated\ndefault p := false\np if {\n  data.ex.allow_basic = true with data.a.b as 5\n}",
      'package ex\nallow_basic if {\n  data.a = "testdata"\n}',
    ],
    query: "generated/p",
    want: false,
  },
  {
    note: "withkeyword/undefined_1 (1038)",
    modules: ["package generated\np if {\n  data.a.b.c with data.a.b as 1\n}"],
    query: "generated/p",
    want: UNDEFINED,
  },
  {
    note: "withkeyword/with virtual doc not specific index (1043)",
    modules: [
      'package generated\np if {\n  not data.ex.virtual.d with data.a.b as {"c": 1, "d": 2, "e": 1}\n}',
      "package ex\nvirtual contains x if {\n  data.a.b[x] = 1\n}",
    ],
    query: "generated/p",
    want: true,
  },
  {
    note: "withkeyword/with mock var (1044)",
    modules: [
      'package generated\np := y if {\n  y = data.ex.mock_var with data.ex.mock_var as {"c": 1, "d": 2}\n}',
      'package ex\nmock_var := {"a": 0, "b": 0}',
    ],
    query: "generated/p",
    want: { c: 1, d: 2 },
  },
  {
    note: "withkeyword/with mock rule (1045)",
    modules: [
      "package generated\np if {\n  data.ex.mock_rule with data.ex.mock_rule as true\n}",
      "package ex\nmock_rule := false if {\n  1 = 2\n}",
    ],
    query: "generated/p",
    want: true,
  },
  {
    note: "withkeyword/with mock iteration on arrays (1049)",
    modules: [
      "package generated\nq contains 1\nq contains 2\np contains x if {\n  data.generated.q[_] = x with data.generated.q as [3, 4]\n}",
    ],
    query: "generated/p",
    want: [3, 4],
  },
  {
    note: "withkeyword/bug 1083 (1050)",
    modules: [
      "package generated\np if {\n  data.ex.input_eq with data.foo as 1\n}",
      "package ex\ninput_eq if {\n  input.x = 1\n}",
    ],
    query: "generated/p",
    want: UNDEFINED,
  },
  {
    note: "withkeyword/set lookup (1052)",
    modules: [
      "package generated\np if {\n  data.ex.setl[1] with data.foo as {1}\n}",
      "package ex\nsetl contains x if {\n  data.foo[x]\n}",
    ],
    query: "generated/p",
    want: true,
  },
  {
    note: "with: ndb_cache-issue (test-with-and-ndbcache-issue.yaml)",
    modules: ["package rules\np if {\n  time.now_ns(now)\n}\nq if p with data.x as 7"],
    query: "rules",
    want: { p: true, q: true },
  },
];

/** Shapes OPA's cases leave out; results as OPA 1.x gives them. */
const MANDATE_CASES: Case[] = [
  {
    note: "function mocked by full path, local name, import alias; a rule replaced across packages",
    modules: [
      'package lib\nallowed(x) if x == "ok"\nroles := {"alice": ["admin"]}',
      'package svc\nimport data.lib\npermit(u) if "admin" in lib.roles[u]\ncheck(x) if lib.allowed(x)',
      `package test
import data.lib.allowed as ok
import data.svc
yes(_) := true
a if svc.check("bad") with ok as yes
b if svc.check("bad") with data.lib.allowed as yes
c if svc.permit("bob") with data.lib.roles as {"bob": ["admin"]}
d if svc.permit("alice")
default e := false
e if svc.check("bad")
p := [a, b, c, d, e]`,
    ],
    query: "test/p",
    want: [true, true, true, true, false],
  },
  {
    note: "replacing a whole package hides its rules; the package's base data stays replaced",
    modules: [
      "package lib\nlimit := 5\nover(n) if n > limit",
      'package test\np := [data.lib, l] if {\n  l := data.lib.limit with data.lib as {"limit": 9}\n}',
    ],
    query: "test/p",
    want: [{ limit: 5 }, 9],
  },
  {
    note: "part of a package with base data and rules replaced: the rest merges",
    modules: ["package cfg\nd := 3", "package test\np := x if x := data.cfg with data.cfg.c as 2"],
    query: "test/p",
    data: { cfg: { base: 1 } },
    want: { base: 1, c: 2, d: 3 },
  },
  {
    note: "with in comprehensions, every and not",
    modules: [
      `package test
f(x) := x
comp := [y | some x in [1, 2]; y := f(x) with f as 10]
all_ok if {
  every x in [1, 2] { f(x) == 7 with f as 7 }
}
neg if not f(1) with f as false
p := [comp, all_ok, neg]`,
    ],
    query: "test/p",
    want: [[10, 10], true, true],
  },
  {
    note: "nested with: the inner one wins for its target, the outer one stays for the others",
    modules: [
      `package test
q := [time.now_ns(), count([])]
r := x if x := q with time.now_ns as 2
p := y if y := r with time.now_ns as 1 with count as 5`,
    ],
    query: "test/p",
    want: [2, 5],
  },
  {
    note: "the same rule in two contexts and outside any: three values in one evaluation",
    modules: [
      `package test
now := time.now_ns()
default late := false
late if now > 100
p := [a, b, c] if {
  a := late with time.now_ns as 50
  b := late with time.now_ns as 500
  c := is_number(now)
}`,
    ],
    query: "test/p",
    want: [false, true, true],
  },
  {
    note: "a mocked function's value comes from a variable bound per solution",
    modules: [
      `package test
score(_) := 0
passing if score(input.user) > 1
p contains n if {
  some n in [1, 2, 3]
  passing with score as n
}`,
    ],
    query: "test/p",
    input: { user: "u" },
    want: [2, 3],
  },
  {
    note: "an I/O built-in mocked by a value in a test rule, through a rule and a function",
    modules: [
      `package test
fetch(u) := http.send({"method": "GET", "url": u}).body
allowed if fetch("https://policy.example/allow").ok == true
test_p if allowed with http.send as {"body": {"ok": true}}
p := test_p`,
    ],
    query: "test/p",
    want: true,
  },
  {
    note: "a local variable named like a rule does not hide that the rule is affected (no memo of a partial answer)",
    modules: [
      `package test
c := count([1, 2])
a := x if {
  some b in [10]
  x := c + b
}
b := a + 1
p := [y, z] if {
  y := a with count as 5
  z := b with count as 5
}`,
    ],
    query: "test/p",
    want: [15, 16],
  },
  {
    note: "a declared variable or argument named like a built-in is the variable as a mock's value",
    modules: [
      `package test
f(_) := 1
g(count) := x if x := f(0) with f as count
p := [a, b, c] if {
  count := 5
  a := f(1) with f as count
  b := f([1, 2]) with f as array.reverse
  c := g(7)
}`,
    ],
    query: "test/p",
    want: [5, [2, 1], 7],
  },
  {
    note: "operators are built-ins too: with plus as minus",
    modules: ["package test\nsum2(a, b) := a + b\np := x if x := sum2(5, 3) with plus as minus"],
    query: "test/p",
    want: 2,
  },
];

/** walk, the relation the planner lowers onto the runtime's pairs (OPA's walkbuiltin cases, and OPA's rewrite of it as a value). */
const WALK_CASES: Case[] = [
  {
    note: "walkbuiltin/scalar (test-walkbuiltin-0970.yaml)",
    modules: ["package generated\np contains x if {\n  __local0__ = data.a[0]\n  walk(__local0__, x)\n}"],
    query: "generated/p",
    data: { a: [1, 2, 3, 4] },
    want: [[[], 1]],
  },
  {
    note: "walkbuiltin/objects (test-walkbuiltin-0972.yaml)",
    modules: ["package generated\np contains x if {\n  __local0__ = data.b\n  walk(__local0__, x)\n}"],
    query: "generated/p",
    data: { b: { v1: "hello", v2: "goodbye" } },
    want: [
      [[], { v1: "hello", v2: "goodbye" }],
      [["v1"], "hello"],
      [["v2"], "goodbye"],
    ],
  },
  {
    note: "walkbuiltin/partially ground path (test-walkbuiltin-0975.yaml)",
    modules: [
      `package generated
p contains [k1, k2, x] if {
  __local0__ = data.generated.q
  walk(__local0__, [["a", k1, "b", k2], x])
}
q := {"a": [
  {"b": {"foo": 1, "bar": 2}},
  {"b": {"baz": 3, "qux": 4}},
]}`,
    ],
    query: "generated/p",
    want: [
      [0, "bar", 2],
      [0, "foo", 1],
      [1, "baz", 3],
      [1, "qux", 4],
    ],
  },
  {
    note: "walkbuiltin/array path not overwritten (test-walkbuiltin-issue-7656.yaml)",
    modules: [
      `package generated
x := {"a": [{"b": [{"c": [
  {"aa": "AA"},
  {"bb": "BB"},
  {"cc": "CC"},
  {"dd": "DDD"},
]}]}]}
p := {path: value |
  [path, value] := walk(x)
  count(value) == 2
}`,
    ],
    query: "generated/p",
    want: {
      '["a",0,"b",0,"c",0,"aa"]': "AA",
      '["a",0,"b",0,"c",1,"bb"]': "BB",
      '["a",0,"b",0,"c",2,"cc"]': "CC",
    },
  },
  {
    note: "walk's pairs in OPA's order (depth first, the value before its members); walk(x) alone holds once",
    modules: [
      `package test
b := {"v1": "hello", "v2": [1, {"z": true}]}
p := [[x | walk(b, [_, x])], [1 | walk(b)]]`,
    ],
    query: "test/p",
    want: [[{ v1: "hello", v2: [1, { z: true }] }, "hello", [1, { z: true }], 1, { z: true }, true], [1]],
  },
];

const ALL = [...OPA_CASES, ...MANDATE_CASES, ...WALK_CASES];

/** A case's packages moved under `c<i>` (its data too), so all cases share one module. */
function isolate(index: number, c: Case): { files: Record<string, string>; entry: string; data: object } {
  const prefix = `c${index}`;
  const roots = new Set(c.modules.map((m) => /^package\s+(\w+)/m.exec(m)?.[1] as string));
  const files = Object.fromEntries(
    c.modules.map((m, i) => [
      `${prefix}_${i}.rego`,
      m
        .replace(/^package\s+/m, `package ${prefix}.`)
        .replace(/\bdata\.(\w+)/g, (all, root: string) => (roots.has(root) ? `data.${prefix}.${root}` : all)),
    ]),
  );
  const data: Record<string, unknown> = {};
  const moved: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(c.data ?? {})) (roots.has(key) ? moved : data)[key] = value;
  data[prefix] = moved;
  return { files, entry: `${prefix}/${c.query}`, data };
}

describe("with, evaluated through opa-wasm (one compile for every case)", () => {
  const isolated = ALL.map((c, i) => isolate(i, c));
  let evaluate: (i: number) => unknown;

  beforeAll(async () => {
    const modules = Object.assign({}, ...isolated.map((c) => c.files));
    // OPA's test cases run without strict built-in errors (one relies on it: a mock calling
    // count(4) in a definition that does not apply).
    const entrypoints = isolated.map((c) => c.entry);
    const { wasm } = compileRego({ modules, entrypoints, strictBuiltinErrors: false });
    const policy = await loadPolicy(wasm, undefined, lenientHostBuiltins);
    evaluate = (i) => {
      const c = isolated[i] as (typeof isolated)[number];
      policy.setData(c.data);
      const rows = policy.evaluate(ALL[i]?.input, c.entry) as Array<{ result: unknown }>;
      return rows[0]?.result;
    };
  }, 60_000);

  it.each(ALL.map((c, i) => [c.note, i] as const))("%s", (_note, i) => {
    expect(evaluate(i)).toEqual(ALL[i]?.want);
  });
});

function compileError(source: string, entry = "test/p"): string {
  try {
    compileRego({ modules: { "t.rego": source }, entrypoints: [entry] });
  } catch (error) {
    expect(error).toBeInstanceOf(RegoCompileErrors);
    return (error as Error).message;
  }
  throw new Error("expected a compile error");
}

describe("OPA's compile errors for with", () => {
  it("a target that is neither input, data nor a function", () => {
    expect(compileError("package test\np if { true with foo.q as 1 }")).toMatch(
      /t\.rego:2: rego_type_error: with keyword target must reference existing input, data, or a function/,
    );
  });

  it("a local variable is no target, even named like a built-in (OPA renames it first)", () => {
    expect(compileError("package test\np if {\n  count := 1\n  true with count as 2\n}")).toMatch(
      /t\.rego:4: rego_type_error: with keyword target must reference existing input, data, or a function/,
    );
  });

  it("replacing part of a rule's value", () => {
    // OPA's TestCompilerMockVirtualDocumentPartially.
    expect(compileError('package test\nq := {"a": 1}\np := x if { q = x with q.a as 2 }')).toMatch(
      /t\.rego:3: rego_compile_error: with keyword cannot partially replace virtual document\(s\)/,
    );
  });

  it("built-ins that cannot be replaced (OPA's validateWithBuiltinTarget)", () => {
    const refused = "rego_compile_error: with keyword replacing built-in function";
    expect(compileError("package test\nf(_) := 1\np if { true with internal.member_2 as f }")).toContain(
      `${refused}: replacement of internal function "internal.member_2" invalid`,
    );
    expect(compileError("package test\nf(_) := 1\np if { true with walk as f }")).toContain(
      `${refused}: target must not be a relation`,
    );
    expect(compileError("package test\np if { true with print as 1 }")).toContain(
      `${refused}: target must not be a void function`,
    );
    expect(compileError("package test\np if { true with rego.metadata.rule as {} }")).toContain(
      `${refused}: replacement of "rego.metadata.rule" invalid`,
    );
  });

  it("a mock of another arity", () => {
    expect(compileError("package test\nf(x) := x\ng(x, y) := x\np := y if y := f(1) with f as g")).toMatch(
      /rego_type_error: data\.test\.f: arity mismatch/,
    );
    expect(compileError("package test\np := y if y := count([]) with count as concat")).toMatch(
      /rego_type_error: count: arity mismatch/,
    );
  });

  it("an I/O built-in compiles only where every call that runs is replaced", () => {
    const source = `package test
allow if http.send({"url": "u"}).body.ok
test_allow if allow with http.send as {"body": {"ok": true}}`;
    expect(() => compileRego({ modules: { "t.rego": source }, entrypoints: ["test/test_allow"] })).not.toThrow();
    expect(compileError(source, "test/allow")).toMatch(/t\.rego:2: .*built-in function http\.send/);
  });

  it("a replacement Mandate cannot run is refused, not answered otherwise", () => {
    // OPA's "builtin-builtin: arity 0" case answers {} (opa.runtime() without a runtime); Mandate has no opa.runtime.
    expect(compileError("package test\np := x if {\n  x = time.now_ns() with time.now_ns as opa.runtime\n}")).toMatch(
      /t\.rego:3: .*built-in function opa\.runtime/,
    );
  });

  it("a mock that evaluates what it replaces is refused as recursion, naming the rule", () => {
    expect(compileError("package test\nq := count([1])\np := x if { x := q with count as data.test.q }")).toMatch(
      /rego_recursion_error: rule data\.test\.q is recursive: data\.test\.q -> data\.test\.q/,
    );
  });

  it("a function named without a call is OPA's type error (functions are values only as mocks)", () => {
    // OPA 1.x (open-policy-agent/opa#8253): "function data.play.f[__local1__] used as reference, not called".
    const notCalled = /rego_type_error: function data\.test\.f used as reference, not called/;
    expect(compileError("package test\nf(x) := x\np := f")).toMatch(notCalled);
    expect(compileError("package test\nf(x) := x\np if { some x in f }")).toMatch(notCalled);
    expect(compileError("package test\nf(x) := x\np if { true with input as f }")).toMatch(notCalled);
  });
});

describe("sprintf, planned onto the host's Go fmt", () => {
  it("formats the runtime's tagged operands with mandate.sprintf, as OPA prints them", async () => {
    const source = 'package test\np := sprintf("%d|%v|%.2f|%s", [12345678901234567890, {"a": [1, "x"]}, 3.14159, "s"])';
    const { wasm, manifest } = compileRego({ modules: { "t.rego": source }, entrypoints: ["test/p"] });
    // opa-wasm's own sprintf (sprintf-js) is never called: it rounds big integers and prints composites as JSON.
    expect(manifest.hostBuiltins).toEqual(["mandate.sprintf"]);
    const policy = await loadPolicy(wasm, undefined, lenientHostBuiltins);
    expect(policy.evaluate(undefined, "test/p")).toEqual([{ result: '12345678901234567890|{"a": [1, "x"]}|3.14|s' }]);
  });
});
