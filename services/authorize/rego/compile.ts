// The Rego compiler's library entry point: sources in, an OPA ABI 1.x Wasm module out, loadable by
// @open-policy-agent/opa-wasm exactly like the output of `opa build -t wasm`.
//
//   const { wasm, manifest } = compileRego({ modules: { "authz.rego": src }, entrypoints: ["authz/allow"] });
//   const policy = await loadPolicy(wasm, undefined, hostBuiltins);
//
// Stages (each testable alone): lexer → parser → checks → safety (per body) → planner → Wasm generation.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Module } from "./ast.ts";
import { BUILTIN_NAMES } from "./builtins.ts";
import { checkModules, RegoCompileErrors } from "./check.ts";
import { HOST_BUILTINS } from "./host-builtins.ts";
import type { Plan } from "./ir.ts";
import { RegoError } from "./lexer.ts";
import { parseModule } from "./parser.ts";
import { planPolicy } from "./plan.ts";
import { typeCheck } from "./typecheck.ts";
import { generateWasm, runtimeExports } from "./wasm.ts";

export interface CompileOptions {
  /** Rego sources by file name. */
  modules: Record<string, string>;
  /** Entrypoints as `pkg/rule` paths (`authz/allow`); "" is the whole `data` document. */
  entrypoints: string[];
  /** Read Rego v0 syntax (as `opa --v0-compatible`). */
  v0?: boolean;
  /** Skip binaryen's optimiser (faster compiles, slower policies). */
  optimize?: boolean;
  /**
   * Built-in errors (wrong operand types, division by zero) fail the evaluation — the default, as
   * `opa eval --strict-builtin-errors`; false makes the call undefined, as OPA's default does.
   */
  strictBuiltinErrors?: boolean;
  /** The most memory one policy instance may use (default 256 MiB); beyond it evaluation aborts. */
  memoryLimitMiB?: number;
}

export type GenerateOptions = Pick<CompileOptions, "optimize" | "strictBuiltinErrors" | "memoryLimitMiB">;

export interface CompiledPolicy {
  wasm: Uint8Array;
  manifest: {
    entrypoints: string[];
    /** Built-ins the module calls on its host through opa_builtinN. */
    hostBuiltins: string[];
  };
}

let runtime: { wasm: Uint8Array; native: Set<string> } | undefined;

function loadRuntime(): { wasm: Uint8Array; native: Set<string> } {
  if (!runtime) {
    const wasm = readFileSync(fileURLToPath(new URL("../../../gen/rego/runtime.wasm", import.meta.url)));
    const exported = runtimeExports(wasm);
    const native = new Set<string>();
    for (const name of BUILTIN_NAMES) if (exported.has(`b_${name.replaceAll(".", "_")}`)) native.add(name);
    runtime = { wasm, native };
  }
  return runtime;
}

/** Parses every module; a syntax error anywhere is reported with its file and row. */
export function parseModules(modules: Record<string, string>, v0 = false): Module[] {
  const errors: RegoError[] = [];
  const parsed: Module[] = [];
  for (const [file, source] of Object.entries(modules)) {
    try {
      parsed.push(parseModule(source, { file, v0 }));
    } catch (error) {
      if (error instanceof RegoError) errors.push(error);
      else throw error;
    }
  }
  if (errors.length > 0) throw new RegoCompileErrors(errors);
  return parsed;
}

export function compileRego(options: CompileOptions): CompiledPolicy {
  const modules = parseModules(options.modules, options.v0);
  return compileModules(modules, options.entrypoints, options);
}

export function compileModules(
  modules: Module[],
  entrypoints: string[],
  options: GenerateOptions = {},
): CompiledPolicy {
  const plan = checkAndPlan(modules, entrypoints);
  const wasm = generateWasm(plan, loadRuntime().wasm, options);
  return { wasm, manifest: { entrypoints, hostBuiltins: plan.hostBuiltins } };
}

export type CheckOptions = Pick<CompileOptions, "modules" | "v0"> & {
  /** Entrypoints to plan; by default the whole `data` document, so every rule is checked. */
  entrypoints?: string[];
};

/**
 * Every stage of compileRego except Wasm generation (`mandate policy check`): throws the same
 * RegoCompileErrors compileRego would, and says how many modules it checked otherwise.
 */
export function checkRego(options: CheckOptions): { modules: number } {
  const modules = parseModules(options.modules, options.v0);
  checkAndPlan(modules, options.entrypoints ?? [""]);
  return { modules: modules.length };
}

function checkAndPlan(modules: Module[], entrypoints: string[]): Plan {
  const index = checkModules(modules);
  let plan: Plan;
  try {
    plan = planPolicy(index, entrypoints, { native: loadRuntime().native, host: new Set(Object.keys(HOST_BUILTINS)) });
  } catch (error) {
    if (error instanceof RegoError) throw new RegoCompileErrors([error]);
    throw error;
  }
  // OPA checks types once the bodies are safe: an unsafe body is reported as such, not as a type error.
  const typeErrors = typeCheck(index);
  if (typeErrors.length > 0) throw new RegoCompileErrors(typeErrors);
  return plan;
}

export { RegoCompileErrors };
