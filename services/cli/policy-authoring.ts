// What a policy author runs on a policy directory: `mandate policy test` (as `opa test`: --run,
// --verbose, --coverage, --bench, --watch) and `mandate policy check` (every compiler check without
// building); `mandate policy builtins`, which built-ins Mandate compiles and how; and how every compile error is shown: `file:row:col: code: message`, the source line
// with a caret under the column and, where there is one, what to do — or, with --json, the errors as
// { file, row, col, code, message }.
import { readFileSync, watch } from "node:fs";
import { join } from "node:path";
import { CommanderError } from "commander";
import { readPolicyDir } from "../authorize/rego/bundle.ts";
import { builtinCatalogue, type Implementation } from "../authorize/rego/catalogue.ts";
import { RegoCompileErrors } from "../authorize/rego/check.ts";
import { checkRego } from "../authorize/rego/compile.ts";
import { coverageSummary } from "../authorize/rego/coverage.ts";
import { RegoError } from "../authorize/rego/lexer.ts";
import {
  benchPolicyTests,
  type PolicyBenchResult,
  type PolicyTestOptions,
  type PolicyTestResult,
  runPolicyTests,
  runPolicyTestsWithCoverage,
} from "../authorize/rego/policy-test.ts";
import { type CommandFactory, type Print, table } from "./common.ts";

/** A compile error as --json prints it. */
export interface CompileErrorJson {
  file?: string;
  row?: number;
  col?: number;
  code: string;
  message: string;
}

/** What to do about an error, by its message. */
const HINTS: Array<[RegExp, string]> = [
  [/^var (\S+) is unsafe/, "bind $1 before it is used (`$1 := …`, `some $1 in …`) or compare it with something bound"],
  [/^undefined function /, "check its name and the imports; `mandate policy builtins` lists the built-ins"],
  [/^unsupported: built-in function /, "`mandate policy builtins` lists the built-ins Mandate compiles"],
  [/ is recursive: /, "a rule may not depend on itself: break the cycle"],
  [/^var (\S+) referenced above/, "declare $1 before its first use, or give one of them another name"],
  [/^conflicting rules |^multiple default rules /, "keep one kind of definition (and one default) per rule"],
  [
    /keyword is required/,
    "this is Rego v0 syntax: add the keyword (Rego v1), or pass --v0 to read the policy as Rego v0",
  ],
];

/** The compile errors an error holds; undefined when it is no compile error. */
function compileErrorsOf(error: unknown): RegoError[] | undefined {
  if (error instanceof RegoCompileErrors) return error.errors;
  if (error instanceof RegoError) return [error];
  return undefined;
}

/** The message without the `file:row: code:` prefix RegoError puts in front. */
function bareMessage(error: RegoError): string {
  const prefix = `${error.code}: `;
  const at = error.message.indexOf(prefix);
  return at === -1 ? error.message : error.message.slice(at + prefix.length);
}

export function compileErrorJson(error: RegoError): CompileErrorJson {
  const { loc } = error;
  return {
    ...(loc ? { file: loc.file, row: loc.row, col: loc.col } : {}),
    code: error.code,
    message: bareMessage(error),
  };
}

/**
 * `file:row:col: code: message`, then the offending line of `dir`'s file with a caret under the
 * column, then what to do about it where there is a hint.
 */
export function compileErrorText(error: RegoError, dir: string): string {
  const message = bareMessage(error);
  const { loc } = error;
  const lines = [loc ? `${loc.file}:${loc.row}:${loc.col}: ${error.code}: ${message}` : `${error.code}: ${message}`];
  const sourceLine = loc ? readSourceLine(join(dir, loc.file), loc.row) : undefined;
  if (loc && sourceLine !== undefined) {
    // Keep the line's tabs in the caret's indentation, so the caret lines up however tabs are shown.
    const indent = sourceLine.slice(0, Math.max(0, loc.col - 1)).replace(/[^\t]/g, " ");
    lines.push(`  ${sourceLine}`, `  ${indent}^`);
  }
  for (const [pattern, hint] of HINTS) {
    const match = pattern.exec(message);
    if (match) lines.push(`  hint: ${hint.replaceAll("$1", match[1] ?? "")}`);
  }
  return lines.join("\n");
}

function readSourceLine(file: string, row: number): string | undefined {
  try {
    return readFileSync(file, "utf8").split(/\r?\n/)[row - 1];
  } catch {
    return undefined;
  }
}

/**
 * Runs `run`; compile errors are the author's to fix: with --json they are printed as JSON on stdout,
 * otherwise each with its source line; either way the command fails (exit 1) saying how many.
 */
export async function reportingCompileErrors<T>(
  dir: string,
  options: { json?: boolean },
  run: () => Promise<T> | T,
): Promise<T> {
  try {
    return await run();
  } catch (error) {
    const errors = compileErrorsOf(error);
    if (errors) {
      if (options.json) process.stdout.write(`${JSON.stringify({ errors: errors.map(compileErrorJson) }, null, 2)}\n`);
      const listed = options.json ? "" : `\n${errors.map((e) => compileErrorText(e, dir)).join("\n")}`;
      throw new CommanderError(
        1,
        "mandate.usage",
        `${errors.length} error${errors.length === 1 ? "" : "s"} occurred:${listed}`,
      );
    }
    if ((error as NodeJS.ErrnoException).code === "ENOENT" || (error as NodeJS.ErrnoException).code === "ENOTDIR") {
      throw new CommanderError(
        2,
        "mandate.usage",
        `cannot read the policy directory ${dir}: ${(error as Error).message}`,
      );
    }
    throw error;
  }
}

interface TestOptions {
  run?: string;
  v0?: boolean;
  json?: boolean;
  verbose?: boolean;
  coverage?: boolean;
  threshold?: string;
  bench?: boolean;
  benchTime?: string;
  watch?: boolean;
}

/** `policy test`: the test_* rules, as `opa test` runs them. */
export function testSubcommand(command: CommandFactory, print: Print) {
  return command("test", "run the test_* rules of a policy directory, as opa test does")
    .argument("[dir]", "directory of .rego files (and data.json files)", ".")
    .option("-r, --run <regex>", "only tests whose full name (data.pkg.test_x) matches the regular expression")
    .option("-v, --verbose", "list every test with its time, failures with their location")
    .option("--coverage", "report the lines the tests evaluated, per file (with --json: opa test --coverage's JSON)")
    .option("--threshold <percent>", "with --coverage: fail (exit 2) below this total coverage")
    .option("--bench", "benchmark the tests: evaluations timed, ns/op and heap bytes allocated per op")
    .option("--bench-time <ms>", "with --bench: how long each test's timed run lasts at least", "1000")
    .option("-w, --watch", "run again whenever a .rego or data file in the directory changes (Ctrl-C stops)")
    .option("--v0", "read Rego v0 syntax, as opa --v0-compatible")
    .option("--json", "print results as JSON")
    .action(async (dir: string, options: TestOptions) => {
      const testOptions = {
        v0: options.v0,
        run: options.run === undefined ? undefined : userPattern(options.run, "--run"),
      };
      if (options.coverage && options.bench) {
        throw new CommanderError(2, "mandate.usage", "--coverage and --bench cannot be combined (as in opa test)");
      }
      const once = () => runTestsOnce(dir, testOptions, options, print);
      if (!options.watch) {
        process.exitCode = await reportingCompileErrors(dir, options, once);
        return;
      }
      await watchDirectory(dir, async () => {
        try {
          await reportingCompileErrors(dir, options, once);
        } catch (error) {
          if (!(error instanceof CommanderError)) throw error;
          process.stderr.write(`error: ${error.message}\n`);
        }
      });
    });
}

/** A regular expression the user gave (`what` names it); a bad one is a usage error. */
function userPattern(pattern: string, what: string): RegExp {
  try {
    return new RegExp(pattern);
  } catch (error) {
    throw new CommanderError(2, "mandate.usage", `${what}: ${(error as Error).message}`);
  }
}

/** One run of the tests, printed; returns the exit code it deserves. */
function runTestsOnce(
  dir: string,
  testOptions: PolicyTestOptions,
  options: TestOptions,
  print: Print,
): Promise<number> {
  if (options.bench) return benchOnce(dir, testOptions, options, print);
  if (options.coverage) return coverageOnce(dir, testOptions, options, print);
  return runPolicyTests(dir, testOptions).then((results) => {
    print(options, results, () => testReport(dir, results, options.verbose));
    return exitCodeOf(results);
  });
}

async function benchOnce(dir: string, testOptions: PolicyTestOptions, options: TestOptions, print: Print) {
  const benchTimeMs = Number(options.benchTime);
  if (!(benchTimeMs > 0)) throw new CommanderError(2, "mandate.usage", "--bench-time: give a number of milliseconds");
  const results = await benchPolicyTests(dir, { ...testOptions, benchTimeMs });
  print(options, results, () => benchReport(dir, results));
  return exitCodeOf(results);
}

/** The tests' results and the coverage summary; with --json, opa test --coverage's report alone. */
async function coverageOnce(dir: string, testOptions: PolicyTestOptions, options: TestOptions, print: Print) {
  const threshold = options.threshold === undefined ? 0 : Number(options.threshold);
  if (!(threshold >= 0 && threshold <= 100)) {
    throw new CommanderError(2, "mandate.usage", "--threshold: give a percentage between 0 and 100");
  }
  const { results, coverage } = await runPolicyTestsWithCoverage(dir, testOptions);
  if (options.json) {
    const failures = results.filter((r) => r.outcome === "fail" || r.outcome === "error");
    if (failures.length > 0) process.stderr.write(`${failures.map(testLine(false)).join("\n")}\n`);
  }
  print(options, coverage, () => `${testReport(dir, results, options.verbose)}\n\n${coverageSummary(coverage)}`);
  if (coverage.coverage < threshold) {
    process.stderr.write(
      `Code coverage threshold not met: got ${coverage.coverage.toFixed(2)} instead of ${threshold.toFixed(2)}\n`,
    );
    return 2;
  }
  return exitCodeOf(results);
}

/** 1 when a test failed or erred, or when there was no test to run. */
function exitCodeOf(results: PolicyTestResult[]): number {
  return results.length === 0 || results.some((r) => r.outcome === "fail" || r.outcome === "error") ? 1 : 0;
}

const location = ({ location: { file, row, col } }: PolicyTestResult) => `${file}:${row}:${col}`;

const milliseconds = (ms: number) => `${ms.toFixed(3)} ms`;

/** A test's line: its outcome and name; with its time when verbose; where and why when it did not pass. */
const testLine =
  (verbose: boolean | undefined) =>
  (result: PolicyTestResult): string => {
    const timing = verbose && result.outcome !== "skip" ? ` (${milliseconds(result.durationMs)})` : "";
    const failed = result.outcome === "fail" || result.outcome === "error";
    const where = failed ? ` at ${location(result)}` : "";
    return `${result.outcome.toUpperCase().padEnd(5)} ${result.name}${timing}${where}${result.message ? `: ${result.message}` : ""}`;
  };

/** As opa test: the tests that did not pass (all with --verbose), then the counts. */
function testReport(dir: string, results: PolicyTestResult[], verbose: boolean | undefined): string {
  if (results.length === 0) return `no test_* rules found in ${dir}`;
  const listed = verbose ? results : results.filter((r) => r.outcome !== "pass");
  const totalMs = results.reduce((sum, r) => sum + r.durationMs, 0);
  return [
    ...listed.map(testLine(verbose)),
    ...(listed.length > 0 ? ["-".repeat(80)] : []),
    `${summary(results)}${verbose ? ` in ${milliseconds(totalMs)}` : ""}`,
  ].join("\n");
}

function summary(results: PolicyTestResult[]): string {
  const count = (outcome: PolicyTestResult["outcome"]) => results.filter((r) => r.outcome === outcome).length;
  const parts: Array<[string, number]> = [
    ["PASS", count("pass")],
    ["FAIL", count("fail")],
    ["ERROR", count("error")],
    ["SKIPPED", count("skip")],
  ];
  return parts
    .filter(([label, n]) => n > 0 || label === "PASS")
    .map(([label, n]) => `${label}: ${n}/${results.length}`)
    .join("   ");
}

/** As opa test --bench: per test its name, evaluations timed, ns/op (and heap bytes per op). */
function benchReport(dir: string, results: PolicyBenchResult[]): string {
  if (results.length === 0) return `no test_* rules found in ${dir}`;
  const width = Math.max(...results.map((r) => r.name.length));
  const lines = results.map((r) =>
    r.n === undefined
      ? testLine(false)(r)
      : `${r.name.padEnd(width)}  ${String(r.n).padStart(10)}  ${(r.nsPerOp ?? 0).toFixed(0).padStart(12)} ns/op  ${String(r.bytesPerOp ?? 0).padStart(10)} B/op`,
  );
  return [...lines, "-".repeat(80), summary(results)].join("\n");
}

/**
 * Runs `run` now and again after each change of a .rego or data file under `dir` (debounced, one run
 * at a time), until SIGINT or SIGTERM.
 */
async function watchDirectory(dir: string, run: () => Promise<void>): Promise<void> {
  const announce = () => process.stdout.write(`${"*".repeat(80)}\nWatching ${dir} for changes ... (Ctrl-C to stop)\n`);
  let queue = run().then(announce);
  let debounce: NodeJS.Timeout | undefined;
  const watcher = watch(dir, { recursive: true }, (_event, file) => {
    if (!file || !/\.(rego|json|ya?ml)$/.test(file)) return;
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      queue = queue.then(run).then(announce);
    }, 150);
  });
  await new Promise<void>((resolve) => {
    const stop = () => {
      clearTimeout(debounce);
      watcher.close();
      resolve();
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  await queue;
}

/** `policy check`: every compiler check (parse, rules, types, safety, planning) without building. */
export function checkSubcommand(command: CommandFactory, print: Print) {
  return command("check", "check a policy directory (syntax, types, safety, built-ins) without building a bundle")
    .argument("[dir]", "directory of .rego files", ".")
    .option("--v0", "read Rego v0 syntax, as opa --v0-compatible")
    .option("--json", "print the result (or the errors) as JSON")
    .action(async (dir: string, options: { v0?: boolean; json?: boolean }) => {
      const checked = await reportingCompileErrors(dir, options, () => {
        const { modules } = readPolicyDir(dir);
        if (Object.keys(modules).length === 0) {
          throw new CommanderError(2, "mandate.usage", `${dir} holds no .rego files`);
        }
        return checkRego({ modules, v0: options.v0 });
      });
      print(
        options,
        { ok: true, modules: checked.modules, errors: [] },
        () => `ok: ${checked.modules} module${checked.modules === 1 ? "" : "s"}`,
      );
    });
}

const IMPLEMENTATIONS: Record<Implementation, string> = {
  native: "native in Wasm",
  host: "on the host (Mandate)",
  refused: "refused",
};

/** `policy builtins`: OPA's built-ins and how Mandate compiles each, or why it refuses one. */
export function builtinsSubcommand(command: CommandFactory, print: Print) {
  return command("builtins", "list OPA's built-in functions and how Mandate compiles each (or why it refuses one)")
    .argument("[pattern]", "only built-ins whose name matches this regular expression")
    .option("--json", "print the catalogue as JSON: [{ name, arity, implementation, reason? }]")
    .action((pattern: string | undefined, options: { json?: boolean }) => {
      const matches = userPattern(pattern ?? "", "pattern");
      const catalogue = builtinCatalogue().filter((b) => matches.test(b.name));
      print(options, catalogue, () => {
        if (catalogue.length === 0) return `no built-in matches ${pattern}`;
        const rows = catalogue.map((b) => [b.name, String(b.arity), b.implementation, b.reason ?? ""]);
        const counts = Object.entries(IMPLEMENTATIONS)
          .map(([kind, label]) => [catalogue.filter((b) => b.implementation === kind).length, label] as const)
          .filter(([n]) => n > 0)
          .map(([n, label]) => `${n} ${label}`);
        return `${table(["NAME", "ARITY", "IMPLEMENTATION", "NOTE"], rows)}\n\n${catalogue.length} built-ins: ${counts.join(", ")}`;
      });
    });
}
