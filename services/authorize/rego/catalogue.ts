// Which of OPA's built-ins Mandate compiles, and how: natively in the Wasm runtime (an export
// b_<name> of gen/rego/runtime.wasm), on the host by Mandate (host-builtins.ts), or not at all
// (with the reason: I/O, or no exact implementation yet). opa-wasm's own JavaScript built-ins are
// never called: each answers differently from OPA. `mandate policy builtins` prints it.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { BUILTIN_NAMES, builtinArity, builtinRefusal, nativeExportName } from "./builtins.ts";
import { HOST_RENAMES, hostBuiltins } from "./host-builtins.ts";
import { runtimeExports } from "./wasm.ts";

export type Implementation = "native" | "host" | "refused";

export interface CatalogueEntry {
  name: string;
  arity: number | "variadic";
  implementation: Implementation;
  /** Why it is refused, or a note on how it is implemented. */
  reason?: string;
}

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
  return [...BUILTIN_NAMES].sort().map((name): CatalogueEntry => {
    const arity = builtinArity(name) as number | "variadic";
    const entry = (implementation: Implementation, reason?: string): CatalogueEntry =>
      reason === undefined ? { name, arity, implementation } : { name, arity, implementation, reason };
    if (exports.has(nativeExportName(name))) return entry("native");
    const inline = INLINE[name];
    if (inline) return entry("native", inline);
    if (Object.hasOwn(hostBuiltins, name)) return entry("host");
    const renamed = HOST_RENAMES[name];
    if (renamed && Object.hasOwn(hostBuiltins, renamed)) return entry("host", `called as ${renamed}`);
    return entry("refused", builtinRefusal(name) ?? "not implemented");
  });
}
