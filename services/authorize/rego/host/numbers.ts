// numbers.range_step as OPA (v1/topdown/numbers.go): integers from a to b (either direction) by a
// positive step, exact beyond 2^53.
import { type Builtin, bigIntOperand, intResult, tooMuchWork } from "./args.ts";

/**
 * The longest range one call builds: a larger one is a runaway evaluation (the native numbers.range
 * charges its length to the budget; a host call cannot, so it is bounded here).
 */
const MAX_RANGE = 5_000_000n;

export const numberBuiltins: Record<string, Builtin> = {
  "numbers.range_step": (from, to, by) => {
    const a = bigIntOperand(from, 1);
    const b = bigIntOperand(to, 2);
    const step = bigIntOperand(by, 3);
    if (step <= 0n) throw new Error("numbers.range_step: step must be a positive integer");
    const span = a <= b ? b - a : a - b;
    if (span / step >= MAX_RANGE) throw tooMuchWork();
    const out: unknown[] = [];
    if (a <= b) for (let i = a; i <= b; i += step) out.push(intResult(i));
    else for (let i = a; i >= b; i -= step) out.push(intResult(i));
    return out;
  },
};
