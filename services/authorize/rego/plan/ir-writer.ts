// The IR being written (ir.ts): statements go to the current function's body, or to the block,
// scan or `not` being filled. Locals are numbered per function; labels and the constant pool are
// shared by the whole plan.
import type { Local, PlannedFunc, Stmt } from "../ir.ts";

export class IrWriter {
  /** Constants as JSON text, by index. */
  readonly constants: string[] = [];
  readonly #constantIndex = new Map<string, number>();
  #out: Stmt[] = [];
  #locals = 0;
  #labels = 0;

  /** Writes a function's body: its parameters are its first locals, `build` leaves its value in `result`. */
  writeFunction(func: PlannedFunc, build: (result: Local) => void): void {
    const saved = { out: this.#out, locals: this.#locals };
    this.#out = func.body;
    this.#locals = func.params;
    func.result = this.local();
    build(func.result);
    func.locals = this.#locals;
    this.#out = saved.out;
    this.#locals = saved.locals;
  }

  emit(stmt: Stmt): void {
    this.#out.push(stmt);
  }

  /** Runs `fill` with its statements going into `body`. */
  into(body: Stmt[], fill: () => void): void {
    const saved = this.#out;
    this.#out = body;
    try {
      fill();
    } finally {
      this.#out = saved;
    }
  }

  /** A block: failing inside it leaves it (or a `br` to its label does). */
  block(fill: () => void, label?: string): void {
    const body: Stmt[] = [];
    this.emit(label ? { op: "block", body, label } : { op: "block", body });
    this.into(body, fill);
  }

  /** A loop over a collection's keys and values. */
  scan(source: Local, fill: (key: Local, value: Local) => void): void {
    const key = this.local();
    const value = this.local();
    const body: Stmt[] = [];
    this.emit({ op: "scan", source, key, value, body });
    this.into(body, () => fill(key, value));
  }

  /** `not`: `inner` ends in notHolds where the negated query has a solution; `k` continues after it. */
  not(inner: () => void, k: () => void): void {
    const body: Stmt[] = [];
    this.emit({ op: "not", body });
    this.into(body, inner);
    k();
  }

  /** The continuation inside a `not`: the negated query has a solution, so the `not` fails. */
  readonly notHolds = (): void => this.emit({ op: "exitNot" });

  local(): Local {
    return this.#locals++;
  }

  label(): string {
    return `L${this.#labels++}`;
  }

  /** A new collection (`make`) holding `items` (added with `add`). */
  build(make: string, add: string, items: Local[]): Local {
    const dst = this.local();
    this.emit({ op: "call", fn: make, args: [], dst });
    for (const item of items) this.emit({ op: "call", fn: add, args: [dst, item] });
    return dst;
  }

  /** A local holding a pooled constant. */
  const(json: string): Local {
    let index = this.#constantIndex.get(json);
    if (index === undefined) {
      index = this.constants.length;
      this.constants.push(json);
      this.#constantIndex.set(json, index);
    }
    const dst = this.local();
    this.emit({ op: "const", dst, index });
    return dst;
  }
}
