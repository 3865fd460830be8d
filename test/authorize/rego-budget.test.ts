// The evaluation budget: a compiled policy counts steps (calls, loop iterations, host calls, and the
// runtime built-ins' work in proportion to what they scan) down from `mandate_budget`, an exported
// mutable i32 global the host sets, and aborts with `mandate: evaluation budget exhausted` when it
// runs out. Runaway loops end within a small budget; normal policies, policies/default included,
// never come near the default; every evaluation starts from the budget afresh; host built-ins, which
// run outside it, stay bounded (linear regex and glob matching, explicit bounds elsewhere).
import { type LoadedPolicy, loadPolicy } from "@open-policy-agent/opa-wasm";
import { beforeAll, describe, expect, it } from "vitest";
import { readPolicyDir } from "../../services/authorize/rego/bundle.ts";
import { compileRego } from "../../services/authorize/rego/compile.ts";
import {
  BUDGET_EXHAUSTED_MESSAGE,
  DEFAULT_BUDGET,
  getBudget,
  hasBudget,
  isBudgetExhausted,
  MAX_BUDGET,
  setBudget,
  stepsUsed,
} from "../../services/authorize/rego/evaluation-budget.ts";
import { hostBuiltins, lenientHostBuiltins } from "../../services/authorize/rego/host-builtins.ts";
import { HOST_CALL_STEPS } from "../../services/authorize/rego/wasm.ts";

const header = "package p\n\nimport rego.v1\n\n";

async function load(rules: string, entrypoints: string[]): Promise<LoadedPolicy> {
  const { wasm } = compileRego({ modules: { "p.rego": header + rules }, entrypoints });
  return loadPolicy(wasm, undefined, hostBuiltins);
}

/** What an evaluation threw (opa-wasm throws the abort message as a string), or undefined. */
function thrown(run: () => unknown): unknown {
  try {
    run();
    return undefined;
  } catch (error) {
    return error;
  }
}

const exhausted = (run: () => unknown) => isBudgetExhausted(thrown(run));

/** Milliseconds `run` takes. */
function timed(run: () => unknown): number {
  const started = performance.now();
  run();
  return performance.now() - started;
}

describe("the budget globals", () => {
  it("are mutable i32 exports, the budget at its default until the host sets it", async () => {
    const policy = await load("x := 1", ["p/x"]);
    const exports = (policy.wasmInstance as WebAssembly.Instance).exports;
    expect(exports.mandate_budget).toBeInstanceOf(WebAssembly.Global);
    expect(exports.mandate_budget_remaining).toBeInstanceOf(WebAssembly.Global);
    expect(hasBudget(policy)).toBe(true);
    expect(getBudget(policy)).toBe(DEFAULT_BUDGET);
    (exports.mandate_budget as WebAssembly.Global).value = 1234;
    expect(getBudget(policy)).toBe(1234);
    // An i32: a BigInt (what an i64 global would take) is refused.
    expect(() => {
      (exports.mandate_budget as WebAssembly.Global).value = 5n;
    }).toThrow(TypeError);
  });

  it("setBudget clamps to 0..2^31-1; a module not compiled by Mandate has no budget", async () => {
    const policy = await load("x := 1", ["p/x"]);
    expect(setBudget(policy, 1e12)).toBe(true);
    expect(getBudget(policy)).toBe(MAX_BUDGET);
    setBudget(policy, -5);
    expect(getBudget(policy)).toBe(0);
    setBudget(policy, 10.9);
    expect(getBudget(policy)).toBe(10);
    const empty = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0])));
    const foreign = { wasmInstance: empty } as Pick<LoadedPolicy, "wasmInstance">;
    expect(hasBudget(foreign)).toBe(false);
    expect(setBudget(foreign, 10)).toBe(false);
    expect(stepsUsed(foreign)).toBeUndefined();
  });

  it("isBudgetExhausted reads opa-wasm's thrown string and errors that carry the message", () => {
    expect(isBudgetExhausted(BUDGET_EXHAUSTED_MESSAGE)).toBe(true);
    expect(isBudgetExhausted(new Error(`regex.match: ${BUDGET_EXHAUSTED_MESSAGE}`))).toBe(true);
    expect(isBudgetExhausted("eval_memory_limit_error: policy evaluation exceeded its memory limit")).toBe(false);
    expect(isBudgetExhausted(undefined)).toBe(false);
  });
});

describe("what counts", () => {
  it("one step per planned call and per loop iteration; host calls cost HOST_CALL_STEPS", async () => {
    const policy = await load(
      ["n := count([x | some x in input.xs])", "h := time.parse_rfc3339_ns(input.t)", "k := 1"].join("\n"),
      ["p/n", "p/h", "p/k"],
    );
    policy.evaluate({ xs: [1, 2, 3, 4, 5] }, "p/k");
    const base = stepsUsed(policy) as number;
    expect(base).toBeGreaterThan(0);
    expect(base).toBeLessThan(5);
    policy.evaluate({ xs: Array.from({ length: 1000 }, (_, i) => i) }, "p/n");
    expect(stepsUsed(policy)).toBeGreaterThanOrEqual(1000);
    expect(stepsUsed(policy)).toBeLessThan(1010);
    policy.evaluate({ t: "2024-01-01T00:00:00Z" }, "p/h");
    expect(stepsUsed(policy)).toBeGreaterThanOrEqual(HOST_CALL_STEPS);
    expect(stepsUsed(policy)).toBeLessThan(HOST_CALL_STEPS + 10);
  });

  it("numbers.range is charged before it builds anything", async () => {
    const policy = await load("n := count(numbers.range(1, input.n))", ["p/n"]);
    policy.evaluate({ n: 100_000 }, "p/n");
    expect(stepsUsed(policy)).toBeGreaterThanOrEqual(100_000);
    setBudget(policy, 50_000);
    expect(exhausted(() => policy.evaluate({ n: 100_000 }, "p/n"))).toBe(true);
  });

  it("runtime built-ins that scan without allocating are charged for what they scan", async () => {
    const policy = await load(
      [
        "found := contains(input.hay, input.needle)",
        "same := input.a == input.b",
        "sorted := count(sort(input.xs))",
        "both := count(input.s & input.s)",
      ].join("\n"),
      ["p/found", "p/same", "p/sorted", "p/both"],
    );
    const hay = "a".repeat(100_000);
    policy.evaluate({ hay, needle: `${"a".repeat(200)}b` }, "p/found");
    expect(stepsUsed(policy)).toBeGreaterThan(100_000); // a step per position, more for a long needle
    const big = Array.from({ length: 50_000 }, (_, i) => i);
    policy.evaluate({ a: big, b: [...big] }, "p/same");
    expect(stepsUsed(policy)).toBeGreaterThanOrEqual(50_000);
    // Insertion sort over a reversed array: every element shifts past every other.
    policy.evaluate({ xs: Array.from({ length: 2000 }, (_, i) => 2000 - i) }, "p/sorted");
    expect(stepsUsed(policy)).toBeGreaterThanOrEqual((2000 * 1999) / 2);
    setBudget(policy, 10_000);
    expect(exhausted(() => policy.evaluate({ hay, needle: "b" }, "p/found"))).toBe(true);
    expect(exhausted(() => policy.evaluate({ xs: Array.from({ length: 2000 }, (_, i) => -i) }, "p/sorted"))).toBe(true);
  });

  it("building a set out of order is charged for the slots it moves", async () => {
    const policy = await load("n := count({x | some x in numbers.range(input.n, 1)})", ["p/n"]);
    policy.evaluate({ n: 20_000 }, "p/n");
    // Each insert at the front moves every slot after it: about n²/2 slots, a step per 64.
    expect(stepsUsed(policy)).toBeGreaterThan((20_000 * 20_000) / 2 / 64 - 10_000);
  });
});

describe("runaway evaluations end with the budget message", () => {
  it("a comprehension over a huge range, within a small budget and within the default", async () => {
    const policy = await load("n := count([x | some x in numbers.range(1, 100000000)])", ["p/n"]);
    setBudget(policy, 100_000);
    const error = thrown(() => policy.evaluate({}, "p/n"));
    expect(error).toBe(BUDGET_EXHAUSTED_MESSAGE);
    setBudget(policy, DEFAULT_BUDGET);
    expect(exhausted(() => policy.evaluate({}, "p/n"))).toBe(true);
  });

  it("nested comprehensions (10^9 iterations) stop within the budget, not at the end of the loops", async () => {
    const policy = await load(
      [
        "deep := count([1 |",
        "  some a in numbers.range(1, 1000)",
        "  some b in numbers.range(1, 1000)",
        "  some c in [y | some y in numbers.range(1, 1000); y > a]",
        "])",
      ].join("\n"),
      ["p/deep"],
    );
    setBudget(policy, 2_000_000);
    const ms = timed(() => expect(exhausted(() => policy.evaluate({}, "p/deep"))).toBe(true));
    expect(ms).toBeLessThan(5000);
  });

  it("a loop calling rules and functions on every element of a big input", async () => {
    const policy = await load(
      [
        "f(x) := y if y := x * 2",
        "big contains v if {",
        "  some a in input.xs",
        "  some b in input.xs",
        "  v := f(a) + f(b)",
        "}",
        "n := count(big)",
      ].join("\n"),
      ["p/n"],
    );
    const xs = Array.from({ length: 3000 }, (_, i) => i); // 9 million pairs
    setBudget(policy, 1_000_000);
    expect(exhausted(() => policy.evaluate({ xs }, "p/n"))).toBe(true);
    setBudget(policy, 1_000_000);
    expect(policy.evaluate({ xs: xs.slice(0, 100) }, "p/n")).toEqual([{ result: 199 }]);
  });
});

describe("per evaluation", () => {
  it("an exhausted evaluation leaves the instance usable: the next starts from the budget again", async () => {
    const policy = await load("n := count([x | some x in input.xs])", ["p/n"]);
    const xs = Array.from({ length: 10_000 }, (_, i) => i);
    setBudget(policy, 1000);
    expect(exhausted(() => policy.evaluate({ xs }, "p/n"))).toBe(true);
    expect(stepsUsed(policy)).toBe(1000);
    // The host sets the budget again (as Authorize does before every evaluation)...
    setBudget(policy, 1000);
    expect(policy.evaluate({ xs: xs.slice(0, 500) }, "p/n")).toEqual([{ result: 500 }]);
    // ...or not: the module copies `mandate_budget` into its counter at every evaluation.
    expect(policy.evaluate({ xs: xs.slice(0, 900) }, "p/n")).toEqual([{ result: 900 }]);
    expect(exhausted(() => policy.evaluate({ xs }, "p/n"))).toBe(true);
    setBudget(policy, 20_000);
    expect(policy.evaluate({ xs }, "p/n")).toEqual([{ result: 10_000 }]);
  });

  it("many evaluations under the default budget never add up", async () => {
    const policy = await load("n := count([1 | some a in numbers.range(1, 1000); some b in numbers.range(1, 1000)])", [
      "p/n",
    ]);
    // About a million steps each: 60 evaluations take more than the default budget in all.
    for (let i = 0; i < 60; i++) policy.evaluate({}, "p/n");
    expect(stepsUsed(policy)).toBeGreaterThan(1_000_000);
    expect(policy.evaluate({}, "p/n")).toEqual([{ result: 1_000_000 }]);
  });

  it("loading data is not metered, even after an exhausted evaluation with a tiny budget", async () => {
    const policy = await load("n := count(data.items)", ["p/n"]);
    setBudget(policy, 1);
    expect(exhausted(() => policy.evaluate({}, "p/n"))).toBe(true);
    // Keys out of order (each insert moves the others) and long: data still loads.
    const items = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`${"k".repeat(100)}${5000 - i}`, i]));
    policy.setData({ items });
    setBudget(policy, 1_000_000);
    expect(policy.evaluate({}, "p/n")).toEqual([{ result: 5000 }]);
  });
});

describe("policies/default", () => {
  let policy: LoadedPolicy;
  const input = {
    version: 1,
    tenant: "acme",
    subject: { id: "alice", kind: "human", attributes: { clearance: 3, amr: ["pwd", "mfa"] } },
    actors: [{ id: "agent:planner", kind: "agent", attributes: { tenant: "acme" } }],
    action: "orders.read",
    resource: { type: "order", id: "o-1", attributes: { audience: "https://orders.acme", classification: 1 } },
    token: { scopes: ["orders.*"], aud: ["https://orders.acme"], authorization_details: [] },
    context: { time: 1_800_000_000 },
  };

  beforeAll(async () => {
    const dir = readPolicyDir(new URL("../../policies/default", import.meta.url).pathname);
    const { wasm } = compileRego({ modules: dir.modules, entrypoints: ["mandate/authz/decision"] });
    policy = await loadPolicy(wasm, undefined, hostBuiltins);
    policy.setData(dir.data);
  });

  it("fails with a tiny budget and decides with a large one, on the same instance", () => {
    setBudget(policy, 10);
    expect(thrown(() => policy.evaluate(input, "mandate/authz/decision"))).toBe(BUDGET_EXHAUSTED_MESSAGE);
    setBudget(policy, 1_000_000);
    const [row] = policy.evaluate(input, "mandate/authz/decision") as Array<{ result: { allow: boolean } }>;
    expect(typeof row?.result.allow).toBe("boolean");
    const used = stepsUsed(policy) as number;
    expect(used).toBeGreaterThan(10);
    // A decision takes a tiny fraction of the default budget.
    expect(used).toBeLessThan(DEFAULT_BUDGET / 1000);
    setBudget(policy, used);
    expect(policy.evaluate(input, "mandate/authz/decision")).toEqual([row]);
    setBudget(policy, used - 1);
    expect(exhausted(() => policy.evaluate(input, "mandate/authz/decision"))).toBe(true);
  });
});

describe("host built-ins stay bounded: linear matching, explicit bounds elsewhere", () => {
  it("regex.match with nested repetition on a long subject (exponential when backtracking)", async () => {
    const policy = await load(
      ["m := regex.match(input.p, input.s)", "all := regex.find_n(input.p, input.s, -1)"].join("\n"),
      ["p/m", "p/all"],
    );
    const s = `${"a".repeat(50_000)}!`;
    const ms = timed(() => expect(policy.evaluate({ p: "^(a+)+$", s }, "p/m")).toEqual([{ result: false }]));
    expect(ms).toBeLessThan(5000);
    expect(policy.evaluate({ p: "(a|aa)+b", s: `${"a".repeat(5000)}` }, "p/all")).toEqual([{ result: [] }]);
    // Short subjects stay on V8, with the same answers.
    expect(policy.evaluate({ p: "^(a+)+$", s: "aaaa" }, "p/m")).toEqual([{ result: true }]);
  });

  it("glob.match with many stars on a long subject (polynomial when backtracking)", async () => {
    const policy = await load("m := glob.match(input.p, [], input.s)", ["p/m"]);
    const ms = timed(() =>
      expect(policy.evaluate({ p: "*a*a*a*a*a*a*b", s: "a".repeat(20_000) }, "p/m")).toEqual([{ result: false }]),
    );
    expect(ms).toBeLessThan(5000);
    expect(policy.evaluate({ p: "*a*b", s: "xxaxxb" }, "p/m")).toEqual([{ result: true }]);
  });

  it("strings.replace_n, bits.lsh and units.* bound what a small input makes them do", () => {
    const replaceN = hostBuiltins["strings.replace_n"] as (...a: unknown[]) => unknown;
    // Patterns sharing their first character are all tried at every position.
    const pairs = Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`${"a".repeat(30)}${i}`, "x"]));
    const s = "a".repeat(100_000);
    const ms = timed(() => expect(isBudgetExhausted(thrown(() => replaceN(pairs, s)))).toBe(true));
    expect(ms).toBeLessThan(5000);
    expect(replaceN({ "<": "&lt;", ">": "&gt;", "": "" }, "<a>")).toBe("&lt;a&gt;");
    expect(replaceN({ a: "1", ab: "2", b: "3" }, "abba")).toBe("1331");
    // The lenient built-ins make errors undefined, but not this one.
    expect(
      isBudgetExhausted(thrown(() => (lenientHostBuiltins["strings.replace_n"] as typeof replaceN)(pairs, s))),
    ).toBe(true);
    const lsh = hostBuiltins["bits.lsh"] as (...a: unknown[]) => unknown;
    expect(lsh(1, 10)).toBe(1024);
    expect(isBudgetExhausted(thrown(() => lsh(1, 1e9)))).toBe(true);
    const parse = hostBuiltins["units.parse"] as (...a: unknown[]) => unknown;
    expect(String(thrown(() => parse("1e99999")))).toMatch(/exponent too large/);
    expect(() => parse("1e9999")).not.toThrow();
  });
});
