// Which of OPA's built-ins Mandate compiles, and how: natively in the Wasm runtime (an export
// b_<name> of gen/rego/runtime.wasm), on the host by Mandate (host-builtins.ts), on the host by
// @open-policy-agent/opa-wasm's own JavaScript, or not at all (with the reason: I/O, or no exact
// implementation yet). `mandate policy builtins` prints it.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { BUILTIN_NAMES, builtinArity, builtinRefusal, nativeExportName } from "./builtins.ts";
import { HOST_RENAMES, hostBuiltins, OPA_WASM_BUILTINS } from "./host-builtins.ts";
import { runtimeExports } from "./wasm.ts";

export type Implementation = "native" | "host" | "opa-wasm" | "refused";

export interface CatalogueEntry {
  name: string;
  arity: number | "variadic";
  implementation: Implementation;
  /** Why it is refused, or a note on how it is implemented. */
  reason?: string;
}

/** What opa-wasm's JavaScript does differently from OPA (known; the planner still calls it). */
const OPA_WASM_DIFFERENCES: Record<string, string> = {
  sprintf: "sprintf-js, not Go's fmt (%v of collections, %x, %o, %e and error forms differ); mandate.sprintf is Go's",
  "regex.split": "V8's RegExp on the pattern as JavaScript syntax, not RE2",
  "yaml.marshal": "the yaml package (YAML 1.2), not Go's YAML 1.1 encoder: formatting differs",
  "yaml.unmarshal":
    "the yaml package (YAML 1.2): YAML 1.1 forms such as yes/no read as strings, not booleans; invalid YAML is undefined, not an error",
  "yaml.is_valid": "the yaml package (YAML 1.2); a non-string operand is undefined instead of false",
};

/** Built-ins the planner compiles itself rather than calling. */
const INLINE: Record<string, string> = {
  print: "compiled inline: true, without output (compiled policies have no print hook)",
};

function runtimeExportNames(): Set<string> {
  const path = fileURLToPath(new URL("../../../gen/rego/runtime.wasm", import.meta.url));
  return runtimeExports(readFileSync(path));
}

/**
 * Every built-in of OPA's catalogue (builtins.ts) by name, classified. `exports` are the runtime's
 * export names (default: those of gen/rego/runtime.wasm).
 */
export function builtinCatalogue(exports: ReadonlySet<string> = runtimeExportNames()): CatalogueEntry[] {
  const opaWasm = new Set(OPA_WASM_BUILTINS);
  return [...BUILTIN_NAMES].sort().map((name): CatalogueEntry => {
    const arity = builtinArity(name) as number | "variadic";
    const entry = (implementation: Implementation, reason?: string): CatalogueEntry =>
      reason === undefined ? { name, arity, implementation } : { name, arity, implementation, reason };
    if (exports.has(nativeExportName(name))) return entry("native");
    const inline = INLINE[name];
    if (inline) return entry("native", inline);
    // opa-wasm dispatches to its own implementation before any custom one of the same name.
    if (opaWasm.has(name)) return entry("opa-wasm", OPA_WASM_DIFFERENCES[name]);
    if (Object.hasOwn(hostBuiltins, name)) return entry("host");
    const renamed = HOST_RENAMES[name];
    if (renamed && Object.hasOwn(hostBuiltins, renamed)) return entry("host", `called as ${renamed}`);
    return entry("refused", builtinRefusal(name) ?? "not implemented");
  });
}
