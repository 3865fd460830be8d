// The deprecated cast_* built-ins whose operand and result are scalars, and trace, as OPA
// (v1/topdown/casts.go, trace.go). cast_array, cast_set and cast_object return their collection
// operand, whose sets and non-string keys JSON would change on the way through the host: they are
// not host built-ins (see builtins.ts, REFUSED).
import { type Builtin, operandTypeError, str } from "./args.ts";

export const castBuiltins: Record<string, Builtin> = {
  cast_string: (x) => str(x, 1),
  cast_boolean: (x) => {
    if (typeof x !== "boolean") throw operandTypeError(1, x, "boolean");
    return x;
  },
  cast_null: (x) => {
    if (x !== null) throw operandTypeError(1, x, "null");
    return null;
  },
  // A note for OPA's tracer, which compiled policies do not have: true, as in OPA.
  trace: (note) => {
    str(note, 1);
    return true;
  },
};
