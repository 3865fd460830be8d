// `mandate policy test`: runs a policy directory's `test_*` rules as `opa test` does — each test is
// compiled as an entrypoint, evaluated through @open-policy-agent/opa-wasm with the directory's
// data, and passes when it is defined and not false.
import { performance } from "node:perf_hooks";
import { type LoadedPolicy, loadPolicy } from "@open-policy-agent/opa-wasm";
import type { Module } from "./ast.ts";
import { readPolicyDir } from "./bundle.ts";
import { refParts } from "./check.ts";
import { compileModules, parseModules } from "./compile.ts";
import { hostBuiltins } from "./host-builtins.ts";

export interface PolicyTestResult {
  /** `data.pkg.test_name` */
  name: string;
  outcome: "pass" | "fail" | "error";
  durationMs: number;
  /** Why it failed (its value) or erred. */
  message?: string;
}

export async function runPolicyTests(
  dir: string,
  options: { v0?: boolean; run?: RegExp } = {},
): Promise<PolicyTestResult[]> {
  const { modules, data } = readPolicyDir(dir);
  const parsed = parseModules(modules, options.v0);
  const tests = testEntrypoints(parsed, options.run);
  if (tests.length === 0) return [];
  const { wasm } = compileModules(parsed, tests);
  const policy = await loadPolicy(wasm, undefined, hostBuiltins);
  policy.setData(data);
  return tests.map((entrypoint) => runTest(policy, entrypoint));
}

/** `test_*` rules (not functions, not ref heads) as `pkg/test_name` entrypoints, those `run` selects. */
function testEntrypoints(modules: Module[], run: RegExp | undefined): string[] {
  const tests: string[] = [];
  for (const module of modules) {
    for (const rule of module.rules) {
      const parts = refParts(rule.head.ref);
      const name = parts[0]?.kind === "string" ? parts[0].value : undefined;
      if (parts.length !== 1 || !name?.startsWith("test_") || rule.head.args) continue;
      const path = [...module.package, name].join("/");
      if (!tests.includes(path) && (!run || run.test(`data.${path.replaceAll("/", ".")}`))) tests.push(path);
    }
  }
  return tests;
}

function runTest(policy: LoadedPolicy, entrypoint: string): PolicyTestResult {
  const name = `data.${entrypoint.replaceAll("/", ".")}`;
  const started = performance.now();
  try {
    const rows = policy.evaluate(undefined, entrypoint) as Array<{ result: unknown }>;
    const durationMs = performance.now() - started;
    if (rows.length === 0) return { name, outcome: "fail", durationMs, message: "undefined" };
    if (rows[0]?.result === false) return { name, outcome: "fail", durationMs, message: "false" };
    return { name, outcome: "pass", durationMs };
  } catch (error) {
    const message = typeof error === "string" ? error : (error as Error).message;
    return { name, outcome: "error", durationMs: performance.now() - started, message };
  }
}
