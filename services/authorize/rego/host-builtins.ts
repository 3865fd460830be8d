// Built-ins a compiled policy calls on its host through opa_builtinN: those
// @open-policy-agent/opa-wasm implements in JavaScript itself, and those Mandate supplies to
// loadPolicy as custom built-ins (pass `hostBuiltins` as loadPolicy's third argument).
//
// Mandate's are OPA 1.x's semantics reimplemented on Node (see host/): time, glob, regex, net,
// uuid, units, semver, encodings, crypto digests, JWT, bits, strings.replace_n and rand.intn. A
// thrown error aborts the evaluation, as OPA's strict built-in errors; undefined is no result.
// Values cross as JSON: a set argument arrives as an array, and a set result (net.cidr_expand)
// goes back as an array in set order.
//
// They run outside the Wasm evaluation budget, so each call's own work is bounded: by the size of
// its arguments (each argument is first written into the module's heap as JSON, so an evaluation's
// memory limit bounds them all), or explicitly where a small input could make a large amount of
// work: regex and glob matching (a linear-time matcher when backtracking could be costly:
// host/linear-regex.ts), strings.replace_n (HOST_WORK_LIMIT comparisons), bits.lsh (shift at most
// 65 536), units.* (exponents of at most 4 digits), net.cidr_expand (at most 2^20 addresses). Past
// an explicit bound a call throws the budget message. The compiled module charges every host call
// HOST_CALL_STEPS steps, and its result's size (README.md, "Evaluation budget").
import { isBudgetExhausted } from "./evaluation-budget.ts";
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
 * thrown host error cannot be caught inside the Wasm module, so the choice is made here.) Work past
 * a built-in's bound is still the evaluation's budget running out, never undefined.
 */
export const lenientHostBuiltins: Record<string, Builtin> = Object.fromEntries(
  Object.entries(hostBuiltins).map(([name, fn]) => [
    name,
    (...args: unknown[]) => {
      try {
        return fn(...args);
      } catch (error) {
        if (isBudgetExhausted(error)) throw error;
        return undefined;
      }
    },
  ]),
);
