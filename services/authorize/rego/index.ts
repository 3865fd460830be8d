// The Rego compiler as a library (`import { compileRego } from "mandate/rego"`): compile Rego to an
// OPA ABI Wasm module, build and load OPA bundles, and the host built-ins loadPolicy needs.
export { annotatedEntrypoints, buildBundle, loadBundle, readBundle, writeBundle } from "./bundle.ts";
export { type CompiledPolicy, type CompileOptions, compileRego, RegoCompileErrors } from "./compile.ts";
export { hostBuiltins, lenientHostBuiltins } from "./host-builtins.ts";
export { RegoError } from "./lexer.ts";
