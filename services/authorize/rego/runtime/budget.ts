// The evaluation budget: Wasm evaluation is synchronous, so no wall-clock timeout can interrupt a
// runaway policy; instead every unit of work that is not bounded by the policy's size counts steps
// down from a budget, and an evaluation that runs out aborts through opa_abort (opa-wasm throws the
// message). Steps are charged by the compiled policy (one per call of a planned function, one per
// iteration of a scan, HOST_CALL_STEPS per host built-in call: see wasm.ts) and here, by the runtime,
// for work proportional to a value's size that allocates nothing (allocating work is bounded by the
// heap limit already): comparing collections and long strings, moving slots to insert into a set or
// object, scanning strings, and the built-ins' loops (builtins.ts).
//
// `mandate_budget` (exported, i32) is the budget of each evaluation: the host may set it before any
// evaluation; opa_eval and eval copy it into `mandate_budget_remaining` (exported too, so the host
// can read how many steps an evaluation took) and count that down. Loading data (setData, which
// starts with opa_heap_ptr_set) is not metered: opa_heap_ptr_set refills the counter to the maximum.

@external("env", "opa_abort") declare function opa_abort(addr: usize): void;

/** The step budget of one evaluation; the host sets it (exported as a mutable i32 global). */
export let mandate_budget: i32 = 50_000_000;
/** Steps left in the current evaluation; unmetered work (loading data) starts from the maximum. */
export let mandate_budget_remaining: i32 = i32.MAX_VALUE;

const MESSAGE: string = "mandate: evaluation budget exhausted";
const messageBuffer: usize = memory.data(48);

/** An evaluation starts: the host's budget (a negative one counts as 0). */
export function budgetStart(): void {
  mandate_budget_remaining = mandate_budget < 0 ? 0 : mandate_budget;
}

/** Work outside an evaluation (loading data) is not metered. */
export function budgetUnmetered(): void {
  mandate_budget_remaining = i32.MAX_VALUE;
}

/** Out of steps: ends the evaluation (without allocating: the heap may be what ran out). */
export function rt_budget_exhausted(): void {
  for (let i = 0; i < MESSAGE.length; i++) store<u8>(messageBuffer + <usize>i, <u8>MESSAGE.charCodeAt(i));
  store<u8>(messageBuffer + <usize>MESSAGE.length, 0);
  opa_abort(messageBuffer);
  unreachable();
}

/** Takes `steps` (at most 2^30 at a time, so the counter cannot wrap) from the budget. */
// @ts-ignore: decorator
@inline export function consume(steps: i32): void {
  mandate_budget_remaining -= steps;
  if (mandate_budget_remaining < 0) rt_budget_exhausted();
}

/** Charges a count that may be large (an i64 range, a u32 length): clamped to 2^30 steps. */
export function consumeMany(steps: i64): void {
  consume(steps > 0x40000000 ? 0x40000000 : steps < 0 ? 0 : <i32>steps);
}

/** Bytes scanned (or slots moved): one step per 64; short runs, the usual case, are free. */
// @ts-ignore: decorator
@inline export function consumeBytes(bytes: usize): void {
  if (bytes >= 64) consume(<i32>(bytes >> 6));
}
