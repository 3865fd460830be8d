// Built-ins a compiled policy calls on its host through opa_builtinN: those
// @open-policy-agent/opa-wasm implements in JavaScript itself, and those Mandate supplies to
// loadPolicy as custom built-ins (pass `hostBuiltins` as loadPolicy's third argument).

/** Implemented by @open-policy-agent/opa-wasm (src/builtins). */
const OPA_WASM_JS = ["sprintf", "regex.split", "yaml.marshal", "yaml.unmarshal", "yaml.is_valid"];

type Builtin = (...args: unknown[]) => unknown;

/** Mandate's host built-ins, by OPA name. */
export const hostBuiltins: Record<string, Builtin> = {};

export const HOST_BUILTINS: Record<string, true> = Object.fromEntries(
  [...OPA_WASM_JS, ...Object.keys(hostBuiltins)].map((name) => [name, true]),
);
