// `mandate policy test`, `check` and `builtins` as a policy author runs them: --run over the full
// test name, --verbose, --coverage, --bench and --watch; check without building; and compile errors
// located at file:row:col with the offending line, a caret and a hint (or as JSON with --json).
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runMandate } from "../helpers/mandate-process.ts";
import { policyDir } from "../helpers/policy-bundles.ts";

const BIN = new URL("../../bin/mandate.js", import.meta.url).pathname;

const POLICY = `package authz

import rego.v1

default allow := false

allow if input.user == "admin"

allow if {
	input.user == "guest"
	input.action == "read"
}
`;

// test_guest_write fails: a guest may only read.
const TESTS = `package authz

import rego.v1

test_admin if allow with input as {"user": "admin"}

test_guest_write if allow with input as {"user": "guest", "action": "write"}

todo_test_later if false
`;

const json = (stdout: string) => JSON.parse(stdout) as Array<Record<string, unknown>>;

// Each case starts the CLI a few times; on a loaded machine a start takes seconds.
const CLI_CASE = { timeout: 120_000 };

describe("mandate policy test (CLI)", CLI_CASE, () => {
  const dir = policyDir({ "policy.rego": POLICY, "policy_test.rego": TESTS });

  it("lists what did not pass with its location; --verbose lists every test with its time", async () => {
    const quiet = await runMandate(["policy", "test", dir]);
    expect(quiet.code).toBe(1);
    expect(quiet.stdout).not.toContain("test_admin");
    expect(quiet.stdout).toContain("FAIL  data.authz.test_guest_write at policy_test.rego:7:1: undefined");
    expect(quiet.stdout).toContain("SKIP  data.authz.todo_test_later");
    expect(quiet.stdout).toContain("PASS: 1/3   FAIL: 1/3   SKIPPED: 1/3");

    const verbose = await runMandate(["policy", "test", dir, "--verbose"]);
    expect(verbose.code).toBe(1);
    expect(verbose.stdout).toMatch(/^PASS {2}data\.authz\.test_admin \(\d+\.\d{3} ms\)$/m);
    expect(verbose.stdout).toMatch(
      /^FAIL {2}data\.authz\.test_guest_write \(\d+\.\d{3} ms\) at policy_test\.rego:7:1: undefined$/m,
    );
  });

  it("--run selects tests by a regular expression over their full name, as opa test", async () => {
    const selected = await runMandate(["policy", "test", dir, "--run", "authz\\.test_admin$", "--json"]);
    expect(selected.code, selected.stderr).toBe(0);
    expect(json(selected.stdout)).toEqual([
      {
        name: "data.authz.test_admin",
        location: { file: "policy_test.rego", row: 5, col: 1 },
        outcome: "pass",
        durationMs: expect.any(Number),
      },
    ]);
    // The name starts with data.: a pattern anchored at test_ selects nothing.
    const none = await runMandate(["policy", "test", dir, "--run", "^test_admin"]);
    expect(none.code).toBe(1);
    expect(none.stdout).toContain(`no test_* rules found in ${dir}`);
    const bad = await runMandate(["policy", "test", dir, "--run", "("]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("error: --run: Invalid regular expression");
  });

  it("--coverage reports the lines the tests evaluated: opa test's JSON, a per-file summary, a threshold", async () => {
    const report = await runMandate(["policy", "test", dir, "--run", "test_admin", "--coverage", "--json"]);
    expect(report.code, report.stderr).toBe(0);
    const coverage = JSON.parse(report.stdout) as {
      files: Record<string, { covered?: unknown[]; not_covered?: unknown[] }>;
      coverage: number;
    };
    // Only the admin test ran: the default was not taken, the guest rule failed at its first line.
    expect(coverage.files["policy.rego"]).toEqual({
      covered: [
        { start: { row: 7 }, end: { row: 7 } },
        { start: { row: 10 }, end: { row: 10 } },
      ],
      not_covered: [
        { start: { row: 5 }, end: { row: 5 } },
        { start: { row: 9 }, end: { row: 9 } },
        { start: { row: 11 }, end: { row: 11 } },
      ],
      covered_lines: 2,
      not_covered_lines: 3,
      coverage: 40,
    });
    expect(Object.keys(coverage.files)).toEqual(["policy.rego", "policy_test.rego"]);

    const text = await runMandate(["policy", "test", dir, "--coverage", "--threshold", "100"]);
    expect(text.code).toBe(2);
    expect(text.stdout).toMatch(/^policy\.rego\s+\d+\.\d{2}%\s+\d+\/\d+ lines {2}not covered: [\d, -]+$/m);
    expect(text.stdout).toMatch(/^total\s+\d+\.\d{2}%/m);
    expect(text.stderr).toMatch(/Code coverage threshold not met: got \d+\.\d{2} instead of 100\.00/);
  });

  it("--bench times each passing test (evaluations, ns/op, heap bytes/op) and reports the others", async () => {
    const bench = await runMandate(["policy", "test", dir, "--bench", "--bench-time", "20", "--json"]);
    expect(bench.code).toBe(1);
    const [admin, guest, later] = json(bench.stdout);
    expect(admin).toMatchObject({ name: "data.authz.test_admin", outcome: "pass" });
    expect(admin?.n).toBeGreaterThanOrEqual(1);
    expect(admin?.nsPerOp).toBeGreaterThan(0);
    expect(admin?.bytesPerOp).toBeGreaterThan(0);
    expect(guest).toMatchObject({ name: "data.authz.test_guest_write", outcome: "fail" });
    expect(guest?.n).toBeUndefined();
    expect(later).toMatchObject({ outcome: "skip" });

    const text = await runMandate(["policy", "test", dir, "--bench", "--bench-time", "20", "--run", "test_admin$"]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^data\.authz\.test_admin\s+\d+\s+\d+ ns\/op\s+\d+ B\/op$/m);
    const both = await runMandate(["policy", "test", dir, "--bench", "--coverage"]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("--coverage and --bench cannot be combined");
  });

  it("--watch runs the tests again when a policy file changes, until interrupted", async () => {
    const watched = policyDir({ "policy.rego": POLICY, "policy_test.rego": TESTS });
    const child = spawn(process.execPath, [BIN, "policy", "test", watched, "--watch"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    const waitFor = async (what: string, holds: () => boolean) => {
      for (let waited = 0; !holds(); waited += 100) {
        if (waited > 60_000) throw new Error(`no ${what} in 60 s:\n${stdout}\n${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    try {
      await waitFor("first run", () => stdout.includes("Watching"));
      expect(stdout).toContain("FAIL  data.authz.test_guest_write");
      writeFileSync(join(watched, "policy_test.rego"), TESTS.replace('"action": "write"', '"action": "read"'));
      await waitFor("second run", () => stdout.split("Watching").length > 2);
      const secondRun = stdout.slice(stdout.indexOf("Watching"));
      expect(secondRun).toContain("PASS: 2/3   SKIPPED: 1/3");
      expect(secondRun).not.toContain("FAIL");
    } finally {
      child.kill("SIGINT");
    }
    expect(await exited).toBe(0);
  });
});

describe("mandate policy check and compile errors (CLI)", CLI_CASE, () => {
  it("checks a directory without building it", async () => {
    const dir = policyDir({ "policy.rego": POLICY, "policy_test.rego": TESTS });
    const ok = await runMandate(["policy", "check", dir]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.trim()).toBe("ok: 2 modules");
    const okJson = await runMandate(["policy", "check", dir, "--json"]);
    expect(JSON.parse(okJson.stdout)).toEqual({ ok: true, modules: 2, errors: [] });
    const v0 = policyDir({ "p.rego": "package p\n\nallow {\n\tinput.x == 1\n}\n" });
    const asV1 = await runMandate(["policy", "check", v0]);
    expect(asV1.code).toBe(1);
    expect(asV1.stderr).toContain("p.rego:3:1: rego_parse_error: `if` keyword is required before rule body");
    expect(asV1.stderr).toContain("hint: this is Rego v0 syntax: add the keyword (Rego v1), or pass --v0");
    const asV0 = await runMandate(["policy", "check", v0, "--v0"]);
    expect(asV0.stdout.trim()).toBe("ok: 1 module");
    const missing = await runMandate(["policy", "check", join(dir, "nope")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("cannot read the policy directory");
  });

  it("shows each error at file:row:col with its line, a caret under the column and what to do", async () => {
    const dir = policyDir({ "p.rego": "package p\n\nimport rego.v1\n\nallow if {\n\tfoo(input.x)\n}\n" });
    const text = await runMandate(["policy", "check", dir]);
    expect(text.code).toBe(1);
    expect(text.stderr).toContain(
      [
        "error: 1 error occurred:",
        "p.rego:6:2: rego_type_error: undefined function foo",
        "  \tfoo(input.x)",
        "  \t^",
        "  hint: check its name and the imports; `mandate policy builtins` lists the built-ins",
      ].join("\n"),
    );
    const structured = await runMandate(["policy", "check", dir, "--json"]);
    expect(structured.code).toBe(1);
    expect(JSON.parse(structured.stdout)).toEqual({
      errors: [{ file: "p.rego", row: 6, col: 2, code: "rego_type_error", message: "undefined function foo" }],
    });

    const unsafe = policyDir({ "u.rego": "package u\n\nimport rego.v1\n\ndeny if {\n    y := 1\n    x > y\n}\n" });
    const built = await runMandate(["policy", "build", unsafe, "-e", "u/deny", "-o", join(unsafe, "b.tar.gz")]);
    expect(built.code).toBe(1);
    expect(built.stderr).toContain(
      [
        "u.rego:7:5: rego_unsafe_var_error: var x is unsafe",
        "      x > y",
        "      ^",
        "  hint: bind x before it is used (`x := …`, `some x in …`) or compare it with something bound",
      ].join("\n"),
    );
    const tested = await runMandate(["policy", "test", unsafe, "--json"]);
    expect(tested.code).toBe(1);
    expect(JSON.parse(tested.stdout).errors).toEqual([
      { file: "u.rego", row: 7, col: 5, code: "rego_unsafe_var_error", message: "var x is unsafe" },
    ]);
  });
});

describe("mandate policy builtins (CLI)", CLI_CASE, () => {
  it("lists OPA's built-ins with how Mandate compiles each, or why it refuses one", async () => {
    const listed = await runMandate(["policy", "builtins", "--json", "^(count|time\\.now_ns|http\\.send)$"]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(json(listed.stdout)).toEqual([
      { name: "count", arity: 1, implementation: "native" },
      { name: "http.send", arity: 1, implementation: "refused", reason: expect.stringContaining("I/O") },
      { name: "time.now_ns", arity: 0, implementation: "host" },
    ]);
    const text = await runMandate(["policy", "builtins"]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^NAME\s+ARITY\s+IMPLEMENTATION\s+NOTE$/m);
    expect(text.stdout).toMatch(/^http\.send\s+1\s+refused\s+performs I\/O/m);
    expect(text.stdout).toMatch(/^\d+ built-ins: \d+ native in Wasm, \d+ on the host \(Mandate\), .*\d+ refused$/m);
  });
});
