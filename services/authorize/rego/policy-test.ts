// `mandate policy test`: runs a policy directory's `test_*` rules as `opa test` does — each test is
// compiled as an entrypoint, evaluated through @open-policy-agent/opa-wasm with the directory's
// data, and passes when it is defined and not false. `todo_*` rules are reported skipped. `run`
// selects tests by a regular expression over their full name (`data.pkg.test_x`), as `opa test
// --run`. Besides the plain run: a run with line coverage (the module compiled with coverage
// markers, plan/coverage.ts) and benchmarks (each test evaluated repeatedly, as `opa test --bench`).
import { performance } from "node:perf_hooks";
import { type LoadedPolicy, loadPolicy } from "@open-policy-agent/opa-wasm";
import type { Module, Rule } from "./ast.ts";
import { readPolicyDir } from "./bundle.ts";
import { refParts } from "./check.ts";
import { type CompiledPolicy, checkRego, compileModules, parseModules } from "./compile.ts";
import { type CoverageReport, coverageReport } from "./coverage.ts";
import { MAX_BUDGET, setBudget } from "./evaluation-budget.ts";
import { hostBuiltins } from "./host-builtins.ts";
import type { Location } from "./lexer.ts";
import { COVER_BUILTIN, type CoveragePoint, instrumentCoverage } from "./plan/coverage.ts";

export interface PolicyTestOptions {
  /** Read Rego v0 syntax. */
  v0?: boolean;
  /** Only the tests whose full name (`data.pkg.test_x`) matches. */
  run?: RegExp;
}

export interface PolicyTestResult {
  /** `data.pkg.test_name` */
  name: string;
  /** Where the test rule is. */
  location: Location;
  outcome: "pass" | "fail" | "error" | "skip";
  durationMs: number;
  /** Why it failed (its value) or erred. */
  message?: string;
}

export interface PolicyBenchResult extends PolicyTestResult {
  /** Evaluations timed (only for a passing test). */
  n?: number;
  nsPerOp?: number;
  /** Bytes the evaluation allocated on the module's heap. */
  bytesPerOp?: number;
}

interface TestCase {
  /** `pkg/test_name` */
  entrypoint: string;
  name: string;
  location: Location;
  skip: boolean;
}

interface LoadedTests {
  modules: Module[];
  data: Record<string, unknown>;
  tests: TestCase[];
}

export async function runPolicyTests(dir: string, options: PolicyTestOptions = {}): Promise<PolicyTestResult[]> {
  const loaded = loadTests(dir, options);
  const policy = await compileTests(loaded, (modules, entrypoints) => compileModules(modules, entrypoints));
  return loaded.tests.map((test) => (policy ? runTest(policy, test) : skipped(test)));
}

/** The tests run on a module that records which lines ran, and the coverage of every module. */
export async function runPolicyTestsWithCoverage(
  dir: string,
  options: PolicyTestOptions = {},
): Promise<{ results: PolicyTestResult[]; coverage: CoverageReport }> {
  const loaded = loadTests(dir, options);
  let points: CoveragePoint[] = [];
  const hits = new Set<number>();
  const markHit = (point: unknown) => {
    hits.add(Number(point));
    return true;
  };
  const policy = await compileTests(
    loaded,
    (modules, entrypoints) => {
      // Unoptimised: a coverage run is about which lines ran, and compiles faster so.
      const instrumented = instrumentCoverage(modules, () => compileModules(modules, entrypoints, { optimize: false }));
      points = instrumented.points;
      return instrumented.result;
    },
    { [COVER_BUILTIN]: markHit },
  );
  // Every marker is a host call, charged as one (100 steps): a loop the budget allows uninstrumented
  // could exhaust it, so the coverage run gets the most the budget can be.
  if (policy) setBudget(policy, MAX_BUDGET);
  const results = loaded.tests.map((test) => (policy ? runTest(policy, test) : skipped(test)));
  return { results, coverage: coverageReport(points, hits) };
}

/**
 * Each passing test evaluated `n` times, `n` grown until the timed run lasts `benchTimeMs`, as Go's
 * testing.Benchmark (and so `opa test --bench`) does; a test that does not pass is reported as such.
 */
export async function benchPolicyTests(
  dir: string,
  options: PolicyTestOptions & { benchTimeMs?: number } = {},
): Promise<PolicyBenchResult[]> {
  const loaded = loadTests(dir, options);
  const policy = await compileTests(loaded, (modules, entrypoints) => compileModules(modules, entrypoints));
  const benchTimeMs = options.benchTimeMs ?? 1000;
  return loaded.tests.map((test) => {
    if (!policy) return skipped(test);
    const result = runTest(policy, test);
    return result.outcome === "pass" ? { ...result, ...benchmark(policy, test.entrypoint, benchTimeMs) } : result;
  });
}

/**
 * The directory's modules, data and tests. Every rule is checked first, as `opa test` compiles every
 * module: an error in a rule no test reaches fails the run too.
 */
function loadTests(dir: string, options: PolicyTestOptions): LoadedTests {
  const { modules, data } = readPolicyDir(dir);
  checkRego({ modules, v0: options.v0 });
  const parsed = parseModules(modules, options.v0);
  return { modules: parsed, data, tests: testCases(parsed, options.run) };
}

/** The tests' module with the directory's data, or undefined when no test is to run. */
async function compileTests(
  { modules, data, tests }: LoadedTests,
  compile: (modules: Module[], entrypoints: string[]) => CompiledPolicy,
  builtins: Record<string, (...args: unknown[]) => unknown> = {},
): Promise<LoadedPolicy | undefined> {
  const entrypoints = tests.filter((t) => !t.skip).map((t) => t.entrypoint);
  if (entrypoints.length === 0) return undefined;
  const { wasm } = compile(modules, entrypoints);
  const policy = await loadPolicy(wasm, undefined, { ...hostBuiltins, ...builtins });
  policy.setData(data);
  return policy;
}

/**
 * `test_*` and `todo_*` rules (not functions, not ref heads), once per name, in file order, those
 * `run` selects.
 */
function testCases(modules: Module[], run: RegExp | undefined): TestCase[] {
  const tests = new Map<string, TestCase>();
  for (const module of modules) {
    for (const rule of module.rules) {
      const ruleName = testRuleName(rule);
      if (ruleName === undefined) continue;
      const entrypoint = [...module.package, ruleName].join("/");
      const name = `data.${entrypoint.replaceAll("/", ".")}`;
      if (tests.has(entrypoint) || (run && !run.test(name))) continue;
      tests.set(entrypoint, { entrypoint, name, location: rule.loc, skip: ruleName.startsWith("todo_") });
    }
  }
  return [...tests.values()];
}

/** The name of a test (`test_*`) or skipped test (`todo_*`) rule; undefined for any other rule. */
function testRuleName(rule: Rule): string | undefined {
  const parts = refParts(rule.head.ref);
  const name = parts[0]?.kind === "string" ? parts[0].value : undefined;
  if (parts.length !== 1 || rule.head.args || !name) return undefined;
  return name.startsWith("test_") || name.startsWith("todo_") ? name : undefined;
}

function skipped({ name, location }: TestCase): PolicyTestResult {
  return { name, location, outcome: "skip", durationMs: 0 };
}

function runTest(policy: LoadedPolicy, test: TestCase): PolicyTestResult {
  if (test.skip) return skipped(test);
  const { name, location } = test;
  const started = performance.now();
  try {
    const rows = policy.evaluate(undefined, test.entrypoint) as Array<{ result: unknown }>;
    const durationMs = performance.now() - started;
    if (rows.length === 0) return { name, location, outcome: "fail", durationMs, message: "undefined" };
    if (rows[0]?.result === false) return { name, location, outcome: "fail", durationMs, message: "false" };
    return { name, location, outcome: "pass", durationMs };
  } catch (error) {
    const message = typeof error === "string" ? error : (error as Error).message;
    return { name, location, outcome: "error", durationMs: performance.now() - started, message };
  }
}

/** Go's benchmark loop: a run of n evaluations, n predicted from the last run until one lasts long enough. */
function benchmark(
  policy: LoadedPolicy,
  entrypoint: string,
  benchTimeMs: number,
): Pick<PolicyBenchResult, "n" | "nsPerOp" | "bytesPerOp"> {
  const bytesPerOp = allocatedBy(policy, entrypoint);
  let n = 1;
  for (;;) {
    const started = performance.now();
    for (let i = 0; i < n; i++) policy.evaluate(undefined, entrypoint);
    const elapsedMs = performance.now() - started;
    if (elapsedMs >= benchTimeMs || n >= 1e9) return { n, nsPerOp: (elapsedMs * 1e6) / n, bytesPerOp };
    const predicted = elapsedMs > 0 ? Math.ceil((n * benchTimeMs * 1.2) / elapsedMs) : n * 100;
    n = Math.max(n + 1, Math.min(predicted, n * 100));
  }
}

/**
 * What one evaluation allocates on the module's heap: opa-wasm starts each at the end of the data
 * (dataHeapPtr), and the runtime's bump allocator frees nothing during one.
 */
function allocatedBy(policy: LoadedPolicy, entrypoint: string): number {
  policy.evaluate(undefined, entrypoint);
  const instance = "instance" in policy.wasmInstance ? policy.wasmInstance.instance : policy.wasmInstance;
  return (instance.exports.opa_heap_ptr_get as () => number)() - policy.dataHeapPtr;
}
