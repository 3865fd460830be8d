// The planner's output (stage 4) and the code generator's input (stage 5): a small imperative IR
// in the spirit of OPA's planner. Locals are i32 slots holding value addresses (0 = undefined) or
// flags. A statement that "fails" leaves its innermost enclosing block (a block, a scan's body or a
// not's body): that is how a query branch backtracks.

export type Local = number;

export type Stmt =
  /** A failure target; with a label, `br` can leave it on success too. */
  | { op: "block"; body: Stmt[]; label?: string }
  | { op: "br"; label: string }
  | { op: "brIf"; src: Local; label: string }
  /** Fails the innermost block. */
  | { op: "fail" }
  /** Continues when its body finds no solution; the body's `exitNot` (a solution) fails the `not`. */
  | { op: "not"; body: Stmt[] }
  | { op: "exitNot" }
  /** Runs the body once per (key, value) of an array, object or set; a failure moves to the next. */
  | { op: "scan"; source: Local; key: Local | undefined; value: Local | undefined; body: Stmt[] }
  | { op: "move"; dst: Local; src: Local }
  | { op: "flag"; dst: Local; value: number }
  | { op: "const"; dst: Local; index: number }
  /** Reads input or data; an undefined input fails unless `maybe`. */
  | { op: "global"; dst: Local; name: "input" | "data"; maybe?: boolean }
  | { op: "setGlobal"; name: "input" | "data"; src: Local }
  | { op: "withDepth"; delta: 1 | -1 }
  /**
   * A runtime helper or native built-in; with `dst` its result, failing when 0 unless `maybe`.
   * Arguments are `args`, then `ints` as i32 constants, then `tail`.
   */
  | { op: "call"; fn: string; args: Local[]; ints?: number[]; tail?: Local[]; dst?: Local; maybe?: boolean }
  /** A runtime predicate (i32): fails when it returns 0. */
  | { op: "check"; fn: string; args: Local[]; ints?: number[] }
  | { op: "checkZero"; src: Local }
  | { op: "checkNonZero"; src: Local }
  /** A planned function (rule, function, document node); fails when undefined unless `maybe`. */
  | { op: "callFunc"; func: string; args: Local[]; dst: Local; maybe?: boolean }
  /** A built-in the host implements (opa_builtinN). */
  | { op: "host"; name: string; args: Local[]; dst: Local };

export interface PlannedFunc {
  name: string;
  params: number;
  locals: number;
  body: Stmt[];
  /** The local returned at the end. */
  result: Local;
  /** Rules without arguments are computed once per evaluation (outside `with`). */
  memo: boolean;
}

export interface Plan {
  funcs: PlannedFunc[];
  /** Entrypoint name (`pkg/rule`) to the function computing it, in id order. */
  entrypoints: Array<{ name: string; func: string }>;
  /** Constant values as JSON text, by index. */
  constants: string[];
  /** Built-ins delegated to the host, in id order. */
  hostBuiltins: string[];
}
