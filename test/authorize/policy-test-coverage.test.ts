// `mandate policy test --coverage` in process: the lines of a branch the tests never take are not
// covered, the lines they evaluate are, counted as `opa test --coverage` counts them (expressions
// when evaluated, rule heads when the rule produced a value); and a module compiled without
// coverage never calls the coverage built-in.
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import { describe, expect, it } from "vitest";
import { compileModules, compileRego, parseModules } from "../../services/authorize/rego/compile.ts";
import { coverageReport, coverageSummary } from "../../services/authorize/rego/coverage.ts";
import { hostBuiltins } from "../../services/authorize/rego/host-builtins.ts";
import { COVER_BUILTIN, instrumentCoverage } from "../../services/authorize/rego/plan/coverage.ts";
import { runPolicyTestsWithCoverage } from "../../services/authorize/rego/policy-test.ts";
import { policyDir } from "../helpers/policy-bundles.ts";

// Rows: 5 the default, 7 the admin rule, 9-12 the guest rule (never taken by the tests), 14-16 a
// function, 18-20 a partial set with a comprehension.
const POLICY = `package authz

import rego.v1

default allow := false

allow if input.user == "admin"

allow if {
	input.user == "guest"
	input.action == "read"
}

level(user) := n if {
	n := count(user)
}

names contains name if {
	some name in [x | some x in input.names]
}
`;

const TESTS = `package authz

import rego.v1

test_admin if allow with input as {"user": "admin"}

test_nobody if not allow with input as {"user": "nobody"}

test_level if level("ab") == 2

test_names if names == {"a"} with input as {"names": ["a"]}
`;

const rows = (ranges: Array<{ start: { row: number }; end: { row: number } }> = []) =>
  ranges.flatMap(({ start, end }) => Array.from({ length: end.row - start.row + 1 }, (_, i) => start.row + i));

describe("policy test coverage", () => {
  it("reports the lines the tests evaluated as covered and a branch never taken as not covered", async () => {
    const { results, coverage } = await runPolicyTestsWithCoverage(
      policyDir({ "policy.rego": POLICY, "policy_test.rego": TESTS }),
    );
    expect(results.map((r) => [r.name, r.outcome])).toEqual([
      ["data.authz.test_admin", "pass"],
      ["data.authz.test_nobody", "pass"],
      ["data.authz.test_level", "pass"],
      ["data.authz.test_names", "pass"],
    ]);
    const policy = coverage.files["policy.rego"];
    // The guest rule's first expression is evaluated (and fails): its head and second line are not.
    expect(rows(policy?.covered)).toEqual([5, 7, 10, 14, 15, 18, 19]);
    expect(rows(policy?.not_covered)).toEqual([9, 11]);
    expect(policy).toMatchObject({ covered_lines: 7, not_covered_lines: 2 });
    expect(policy?.coverage).toBeCloseTo((100 * 7) / 9);
    expect(rows(coverage.files["policy_test.rego"]?.covered)).toEqual([5, 7, 9, 11]);
    expect(coverage.files["policy_test.rego"]?.not_covered).toBeUndefined();
    expect(coverage).toMatchObject({ covered_lines: 11, not_covered_lines: 2 });
  });

  it("counts a default rule's head only when the default was taken", async () => {
    const { coverage } = await runPolicyTestsWithCoverage(
      policyDir({
        "policy.rego": POLICY,
        "policy_test.rego": `package authz\nimport rego.v1\ntest_admin if allow with input as {"user": "admin"}\n`,
      }),
    );
    expect(rows(coverage.files["policy.rego"]?.not_covered)).toEqual([5, 9, 11, 14, 15, 18, 19]);
  });

  it("shapes the report as opa test --coverage: ranges of consecutive rows, percentages, keys left out when empty", () => {
    const points = [1, 2, 3, 5, 8, 9].map((row) => ({ file: "a.rego", row }));
    const report = coverageReport(points, new Set([0, 1, 2, 4]));
    expect(report).toEqual({
      files: {
        "a.rego": {
          covered: [
            { start: { row: 1 }, end: { row: 3 } },
            { start: { row: 8 }, end: { row: 8 } },
          ],
          not_covered: [
            { start: { row: 5 }, end: { row: 5 } },
            { start: { row: 9 }, end: { row: 9 } },
          ],
          covered_lines: 4,
          not_covered_lines: 2,
          coverage: (100 * 4) / 6,
        },
      },
      covered_lines: 4,
      not_covered_lines: 2,
      coverage: (100 * 4) / 6,
    });
    expect(coverageReport(points, new Set()).files["a.rego"]).toEqual({
      not_covered: [
        { start: { row: 1 }, end: { row: 3 } },
        { start: { row: 5 }, end: { row: 5 } },
        { start: { row: 8 }, end: { row: 9 } },
      ],
      not_covered_lines: 6,
    });
    expect(coverageSummary(report)).toBe(
      ["a.rego   66.67%  4/6 lines  not covered: 5, 9", "total    66.67%  4/6 lines"].join("\n"),
    );
  });

  it("leaves the coverage built-in out of modules compiled without coverage", () => {
    const { manifest } = compileRego({
      modules: { "policy.rego": POLICY, "policy_test.rego": TESTS },
      entrypoints: ["authz/allow", "authz/test_admin"],
    });
    expect(manifest.hostBuiltins).not.toContain(COVER_BUILTIN);
  });
});

describe("coverage markers", () => {
  it("call the host once per point in a loop, not once per iteration", async () => {
    const modules = parseModules({
      "loop_test.rego":
        "package loop\nimport rego.v1\ntest_loop if {\n\tevery n in numbers.range(1, 1000) {\n\t\tn > 0\n\t}\n}\n",
    });
    const { result, points } = instrumentCoverage(modules, () => compileModules(modules, ["loop/test_loop"]));
    const calls: number[] = [];
    const policy = await loadPolicy(result.wasm, undefined, {
      ...hostBuiltins,
      [COVER_BUILTIN]: (point: number) => calls.push(point) > 0,
    });
    expect(policy.evaluate(undefined, "loop/test_loop")).toEqual([{ result: true }]);
    expect(calls.map((point) => points[point]?.row).sort()).toEqual([3, 4, 5]);
  });
});
