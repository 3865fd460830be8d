// `mandate policy …`: build OPA bundles with Mandate's Rego compiler, run policy tests, evaluate a
// bundle, and run the Rego conformance corpus.
import { readFileSync, writeFileSync } from "node:fs";
import { type Command, CommanderError } from "commander";
import { buildBundle, loadBundle, normaliseEntrypoint } from "../authorize/rego/bundle.ts";
import { RegoCompileErrors } from "../authorize/rego/check.ts";
import { runConformance } from "../authorize/rego/conformance/run.ts";
import { RegoError } from "../authorize/rego/lexer.ts";
import { runPolicyTests } from "../authorize/rego/policy-test.ts";

type Print = (options: { json?: boolean }, data: unknown, human: () => string) => void;
type CommandFactory = (name: string, description: string) => Command;

/** Compile errors are the user's to fix: each on its own line, OPA's `file:row: code: message`. */
async function reportingCompileErrors<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof RegoCompileErrors || error instanceof RegoError) {
      const errors = error instanceof RegoCompileErrors ? error.errors : [error];
      throw new CommanderError(
        1,
        "mandate.usage",
        `${errors.length} error${errors.length === 1 ? "" : "s"} occurred:\n${errors.map((e) => e.message).join("\n")}`,
      );
    }
    throw error;
  }
}

function readJsonFile(file: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(file === "-" ? 0 : file, "utf8"));
  } catch (error) {
    throw new CommanderError(2, "mandate.usage", `cannot read ${what} ${file}: ${(error as Error).message}`);
  }
}

export function policyCommand(command: CommandFactory, print: Print): Command {
  return command("policy", "compile Rego to OPA Wasm bundles, test and evaluate policies")
    .addCommand(buildSubcommand(command, print))
    .addCommand(testSubcommand(command, print))
    .addCommand(evalSubcommand(command, print))
    .addCommand(conformanceSubcommand(command, print));
}

/** `policy build`: Rego to an OPA bundle with our compiler. */
function buildSubcommand(command: CommandFactory, print: Print): Command {
  return command("build", "compile a policy directory into an OPA bundle (policy.wasm, data.json, .manifest)")
    .argument("[dir]", "directory of .rego files (and data.json files)", ".")
    .option("-e, --entrypoint <pkg/rule...>", "entrypoints (also taken from `# METADATA` entrypoint: true)")
    .option("-o, --out <file>", "bundle to write", "bundle.tar.gz")
    .option("--revision <revision>", "bundle revision (default: a hash of the module)")
    .option("--v0", "read Rego v0 syntax, as opa --v0-compatible")
    .option("--json", "print the manifest as JSON")
    .action(
      async (
        dir: string,
        options: { entrypoint?: string[]; out: string; revision?: string; v0?: boolean; json?: boolean },
      ) => {
        const started = Date.now();
        const { bytes, bundle } = await reportingCompileErrors(() =>
          buildBundle(dir, { entrypoints: options.entrypoint, revision: options.revision, v0: options.v0 }),
        );
        writeFileSync(options.out, bytes);
        const summary = {
          bundle: options.out,
          bytes: bytes.length,
          wasm_bytes: bundle.wasm.length,
          modules: Object.keys(bundle.modules).length,
          compile_ms: Date.now() - started,
          manifest: bundle.manifest,
        };
        print(options, summary, () =>
          [
            `wrote ${options.out} (${bytes.length} bytes; policy.wasm ${bundle.wasm.length} bytes) in ${summary.compile_ms} ms`,
            `  revision     ${bundle.manifest.revision}`,
            `  entrypoints  ${(bundle.manifest.wasm ?? []).map((w) => w.entrypoint).join(", ")}`,
            `  try: mandate policy eval --bundle ${options.out} --input input.json ${bundle.manifest.wasm?.[0]?.entrypoint ?? ""}`,
          ].join("\n"),
        );
      },
    );
}

/** `policy test`: the test_* rules, as `opa test` runs them. */
function testSubcommand(command: CommandFactory, print: Print): Command {
  return command("test", "run the test_* rules of a policy directory, as opa test does")
    .argument("[dir]", "directory of .rego files (and data.json files)", ".")
    .option("--run <regex>", "only tests whose name (data.pkg.test_x) matches")
    .option("--v0", "read Rego v0 syntax, as opa --v0-compatible")
    .option("--json", "print results as JSON")
    .action(async (dir: string, options: { run?: string; v0?: boolean; json?: boolean }) => {
      const results = await reportingCompileErrors(() =>
        runPolicyTests(dir, { v0: options.v0, run: options.run ? new RegExp(options.run) : undefined }),
      );
      const failed = results.filter((r) => r.outcome !== "pass").length;
      print(options, results, () =>
        results.length === 0
          ? `no test_* rules found in ${dir}`
          : [
              ...results.map(
                (r) =>
                  `${r.outcome.toUpperCase().padEnd(5)} ${r.name} (${r.durationMs.toFixed(2)} ms)${r.message ? `: ${r.message}` : ""}`,
              ),
              "-".repeat(60),
              `PASS: ${results.length - failed}/${results.length}${failed ? `   FAIL/ERROR: ${failed}/${results.length}` : ""}`,
            ].join("\n"),
      );
      if (failed > 0 || results.length === 0) process.exitCode = 1;
    });
}

/** `policy eval`: one entrypoint of a bundle, through @open-policy-agent/opa-wasm. */
function evalSubcommand(command: CommandFactory, print: Print): Command {
  return command("eval", "evaluate an entrypoint of a bundle through @open-policy-agent/opa-wasm")
    .argument("<entrypoint>", "pkg/rule (or data.pkg.rule)")
    .requiredOption("-b, --bundle <file>", "bundle built by `mandate policy build` or `opa build -t wasm`")
    .option("-i, --input <file>", "input document (JSON; - for stdin)")
    .option("-d, --data <file>", "data document replacing the bundle's data.json (JSON)")
    .option("--json", "print the result set as JSON")
    .action(async (entrypoint: string, options: { bundle: string; input?: string; data?: string; json?: boolean }) => {
      const bytes = readFileSync(options.bundle);
      const { policy: loaded, bundle } = await loadBundle(bytes);
      if (options.data) loaded.setData(readJsonFile(options.data, "data") as object);
      const input = options.input ? readJsonFile(options.input, "input") : undefined;
      const name = normaliseEntrypoint(entrypoint);
      if (!(name in loaded.entrypoints)) {
        const known = (bundle.manifest.wasm ?? []).map((w) => w.entrypoint).join(", ");
        throw new CommanderError(
          2,
          "mandate.usage",
          `the bundle has no entrypoint ${name} (it has: ${known || "none"})`,
        );
      }
      const rows = loaded.evaluate(input, name) as Array<{ result: unknown }>;
      print(options, rows, () => (rows.length === 0 ? "undefined" : JSON.stringify(rows[0]?.result, null, 2)));
    });
}

/** `policy conformance`: the YAML case corpus, a pass/fail/unsupported table per folder. */
function conformanceSubcommand(command: CommandFactory, print: Print): Command {
  return command("conformance", "run OPA/regorus-style YAML cases through the compiler and opa-wasm")
    .argument("<dir>", "directory of YAML case files (e.g. third_party/rego-conformance/cases)")
    .option("--json", "print every case's outcome as JSON")
    .action(async (dir: string, options: { json?: boolean }) => {
      const report = await runConformance(dir, (result, done, total) => {
        if (!options.json && (done % 50 === 0 || done === total)) process.stderr.write(`  ${done}/${total} cases\n`);
        if (!options.json && result.outcome === "fail") {
          process.stderr.write(`  FAIL ${result.file}: ${result.note}: ${result.detail ?? ""}\n`);
        }
      });
      const { totals } = report;
      const counted = totals.pass + totals.fail + totals.unsupported;
      const pct = (n: number, of: number) => (of === 0 ? "0.0" : ((100 * n) / of).toFixed(1));
      print(options, report, () => {
        const rows = Object.entries(report.folders).map(
          ([folder, t]) =>
            `${folder.padEnd(48)} ${String(t.pass).padStart(5)} ${String(t.fail).padStart(5)} ${String(t.unsupported).padStart(6)} ${String(t.skipped).padStart(5)}`,
        );
        return [
          `${"folder".padEnd(48)} ${"pass".padStart(5)} ${"fail".padStart(5)} ${"unsup".padStart(6)} ${"skip".padStart(5)}`,
          ...rows,
          "-".repeat(72),
          `${"total".padEnd(48)} ${String(totals.pass).padStart(5)} ${String(totals.fail).padStart(5)} ${String(totals.unsupported).padStart(6)} ${String(totals.skipped).padStart(5)}`,
          `pass ${pct(totals.pass, counted + totals.skipped)}% of all ${counted + totals.skipped} cases, ${pct(totals.pass, counted)}% of the ${counted} not marked skip`,
        ].join("\n");
      });
      if (totals.fail > 0) process.exitCode = 1;
    });
}
