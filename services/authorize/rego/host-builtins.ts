// Built-ins a compiled policy calls on its host through opa_builtinN: those
// @open-policy-agent/opa-wasm implements in JavaScript itself, and those Mandate supplies to
// loadPolicy as custom built-ins (pass `hostBuiltins` as loadPolicy's third argument).
//
// Mandate's are OPA 1.x's semantics reimplemented on Node (see host/): time, glob, regex, net,
// uuid, units, semver, encodings, crypto digests, JWT, bits, strings.replace_n and rand.intn. A
// thrown error aborts the evaluation, as OPA's strict built-in errors; undefined is no result.
// Values cross as JSON: a set argument arrives as an array, and a set result (net.cidr_expand)
// goes back as an array in set order.
import { type Builtin, named } from "./host/args.ts";
import { encodingBuiltins } from "./host/encoding.ts";
import { globBuiltins } from "./host/glob.ts";
import { jwtBuiltins } from "./host/jwt.ts";
import { miscBuiltins } from "./host/misc.ts";
import { netBuiltins } from "./host/net.ts";
import { regexBuiltins } from "./host/regex.ts";
import { timeBuiltins } from "./host/time.ts";
import { unitsBuiltins } from "./host/units.ts";

/** Implemented by @open-policy-agent/opa-wasm (src/builtins). */
const OPA_WASM_JS = ["sprintf", "regex.split", "yaml.marshal", "yaml.unmarshal", "yaml.is_valid"];

/** Mandate's host built-ins, by OPA name. */
export const hostBuiltins: Record<string, Builtin> = named({
  ...timeBuiltins,
  ...globBuiltins,
  ...regexBuiltins,
  ...netBuiltins,
  ...unitsBuiltins,
  ...encodingBuiltins,
  ...jwtBuiltins,
  ...miscBuiltins,
});

export const HOST_BUILTINS: Record<string, true> = Object.fromEntries(
  [...OPA_WASM_JS, ...Object.keys(hostBuiltins)].map((name) => [name, true]),
);

/**
 * The same built-ins for a policy compiled with `strictBuiltinErrors: false`: an error makes the
 * call undefined instead of failing the evaluation, as OPA without --strict-builtin-errors. (A
 * thrown host error cannot be caught inside the Wasm module, so the choice is made here.)
 */
export const lenientHostBuiltins: Record<string, Builtin> = Object.fromEntries(
  Object.entries(hostBuiltins).map(([name, fn]) => [
    name,
    (...args: unknown[]) => {
      try {
        return fn(...args);
      } catch {
        return undefined;
      }
    },
  ]),
);
