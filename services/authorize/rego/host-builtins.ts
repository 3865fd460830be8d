// Built-ins a compiled policy calls on its host through opa_builtinN: those
// @open-policy-agent/opa-wasm implements in JavaScript itself, and those Mandate supplies to
// loadPolicy as custom built-ins (pass `hostBuiltins` as loadPolicy's third argument).
//
// Mandate's are OPA 1.x's semantics reimplemented on Node (see host/): time, glob, regex, net,
// uuid, units, semver, encodings, crypto digests, JWT, bits, the scalar casts, trace,
// numbers.range_step, strings.split_n, strings.replace_n, rand.intn, and mandate.sprintf (OPA's
// sprintf as Go's fmt, over arguments the runtime tags). A thrown error aborts the evaluation, as
// OPA's strict built-in errors; undefined is no result. Values cross as JSON: a set argument
// arrives as an array, and a set result (net.cidr_expand) goes back as an array in set order;
// integers beyond 2^53 are read from their JSON text (host/number-text.ts).
//
// They run outside the Wasm evaluation budget, so each call's own work is bounded: by the size of
// its arguments (each argument is first written into the module's heap as JSON, so an evaluation's
// memory limit bounds them all), or explicitly where a small input could make a large amount of
// work: regex and glob matching (a linear-time matcher when backtracking could be costly:
// host/linear-regex.ts), strings.replace_n (HOST_WORK_LIMIT comparisons), bits.lsh (shift at most
// 65 536), units.* (exponents of at most 4 digits), net.cidr_expand (at most 2^20 addresses),
// numbers.range_step (at most 5 million numbers). Past an explicit bound a call throws the budget
// message. The compiled module charges every host call HOST_CALL_STEPS steps, and its result's
// size (README.md, "Evaluation budget").
import { isBudgetExhausted } from "./evaluation-budget.ts";
import { type Builtin, isUnsupportedCall, named } from "./host/args.ts";
import { castBuiltins } from "./host/casts.ts";
import { encodingBuiltins } from "./host/encoding.ts";
import { globBuiltins } from "./host/glob.ts";
import { jwtBuiltins } from "./host/jwt.ts";
import { miscBuiltins } from "./host/misc.ts";
import { netBuiltins } from "./host/net.ts";
import { withNumberTexts } from "./host/number-text.ts";
import { numberBuiltins } from "./host/numbers.ts";
import { regexBuiltins, regexSplitBuiltins } from "./host/regex.ts";
import { sprintfBuiltins } from "./host/sprintf.ts";
import { stringBuiltins } from "./host/strings.ts";
import { timeBuiltins } from "./host/time.ts";
import { unitsBuiltins } from "./host/units.ts";

/**
 * Mandate's built-ins by OPA name, and `mandate.sprintf`, OPA's sprintf (Go's fmt) over
 * arguments the runtime tags so that numbers keep their text (host/sprintf.ts): opa-wasm's own
 * `sprintf` (sprintf-js) would take precedence over one of that name.
 */
const builtins: Record<string, Builtin> = {
  ...named({
    ...timeBuiltins,
    ...globBuiltins,
    ...regexBuiltins,
    ...netBuiltins,
    ...unitsBuiltins,
    ...encodingBuiltins,
    ...jwtBuiltins,
    ...miscBuiltins,
    ...castBuiltins,
    ...numberBuiltins,
    ...stringBuiltins,
    // Deprecated; OPA implements it as net.cidr_contains.
    "net.cidr_overlap": netBuiltins["net.cidr_contains"] as Builtin,
  }),
  ...sprintfBuiltins,
  ...named(regexSplitBuiltins, () => "regex.split"),
};

/**
 * Built-ins @open-policy-agent/opa-wasm implements in JavaScript unlike OPA (sprintf with
 * sprintf-js, regex.split with V8's RegExp), and the host built-in with OPA's semantics the planner
 * calls instead: opa-wasm dispatches to its own before any custom built-in of the same name
 * (mandate.sprintf takes the runtime's tagged arguments, see host/sprintf.ts). opa-wasm's yaml.*
 * (YAML 1.2) are not called at all (builtins.ts says why).
 */
export const HOST_RENAMES: Readonly<Record<string, string>> = {
  sprintf: "mandate.sprintf",
  "regex.split": "mandate.regex_split",
};

/** Mandate's host built-ins, by name; they read their large number arguments exactly (host/number-text.ts). */
export const hostBuiltins: Record<string, Builtin> = withNumberTexts(builtins);

export const HOST_BUILTINS: Record<string, true> = Object.fromEntries(
  Object.keys(hostBuiltins).map((name) => [name, true]),
);

/**
 * The same built-ins for a policy compiled with `strictBuiltinErrors: false`: an error makes the
 * call undefined instead of failing the evaluation, as OPA without --strict-builtin-errors. (A
 * thrown host error cannot be caught inside the Wasm module, so the choice is made here.) Work past
 * a built-in's bound is still the evaluation's budget running out, and a call Mandate cannot answer
 * as OPA (UnsupportedCall) still fails: neither is an undefined that OPA would not give.
 */
export const lenientHostBuiltins: Record<string, Builtin> = withNumberTexts(
  Object.fromEntries(
    Object.entries(builtins).map(([name, fn]) => [
      name,
      (...args: unknown[]) => {
        try {
          return fn(...args);
        } catch (error) {
          if (isBudgetExhausted(error) || isUnsupportedCall(error)) throw error;
          return undefined;
        }
      },
    ]),
  ),
);
