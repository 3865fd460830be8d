// Stage 6 of the Rego compiler: the planned IR to WebAssembly, linked onto the prebuilt runtime
// (gen/rego/runtime.wasm) with binaryen. Each planned function becomes a Wasm function; the
// runtime's `mandate.policy_*` imports are replaced by the policy's entry dispatcher and its JSON
// tables; constants are parsed once, by the start function, below the heap base that opa-wasm
// records after instantiation (so resetting the heap between evaluations keeps them). Every loop and
// call the policy makes counts down the evaluation budget (`mandate_budget`, see runtime/budget.ts).
import binaryen from "binaryen";
import type { Local, Plan, PlannedFunc, Stmt } from "./ir.ts";

/** What @open-policy-agent/opa-wasm (and OPA's ABI 1.x) uses; every other export is dropped. */
const ABI_EXPORTS = new Set([
  "opa_wasm_abi_version",
  "opa_wasm_abi_minor_version",
  "eval",
  "opa_eval",
  "entrypoints",
  "builtins",
  "opa_malloc",
  "opa_free",
  "opa_heap_ptr_get",
  "opa_heap_ptr_set",
  "opa_json_parse",
  "opa_value_parse",
  "opa_json_dump",
  "opa_value_dump",
  "opa_eval_ctx_new",
  "opa_eval_ctx_set_input",
  "opa_eval_ctx_set_data",
  "opa_eval_ctx_set_entrypoint",
  "opa_eval_ctx_get_result",
  // Mandate's evaluation budget (runtime/budget.ts): mutable i32 globals the host sets and reads.
  "mandate_budget",
  "mandate_budget_remaining",
]);

/**
 * Steps a call of a host built-in (opa_builtinN) costs: its arguments and result cross into
 * JavaScript as JSON, about as much work as this many iterations of a compiled loop.
 */
export const HOST_CALL_STEPS = 100;

const i32 = binaryen.i32;

/** The runtime's exported function names, to know which built-ins it implements natively. */
export function runtimeExports(runtime: Uint8Array): Set<string> {
  const module = new WebAssembly.Module(runtime as Uint8Array<ArrayBuffer>);
  return new Set(WebAssembly.Module.exports(module).map((e) => e.name));
}

export function generateWasm(
  plan: Plan,
  runtime: Uint8Array,
  options: { optimize?: boolean; strictBuiltinErrors?: boolean; memoryLimitMiB?: number } = {},
): Uint8Array {
  const mod = binaryen.readBinary(runtime);
  try {
    return link(mod, plan, {
      optimize: options.optimize ?? true,
      strict: options.strictBuiltinErrors ?? true,
      memoryLimit: Math.min(options.memoryLimitMiB ?? 256, 4095) * 1024 * 1024,
    });
  } finally {
    mod.dispose();
  }
}

function link(
  mod: binaryen.Module,
  plan: Plan,
  { optimize, strict, memoryLimit }: { optimize: boolean; strict: boolean; memoryLimit: number },
): Uint8Array {
  mod.setFeatures(
    binaryen.Features.MVP |
      binaryen.Features.MutableGlobals |
      binaryen.Features.SignExt |
      binaryen.Features.BulkMemory |
      binaryen.Features.BulkMemoryOpt |
      binaryen.Features.NontrappingFPToInt,
  );
  const runtime = runtimeFunctions(mod);
  mod.addGlobal("g_input", i32, true, mod.i32.const(0));
  mod.addGlobal("g_data", i32, true, mod.i32.const(0));
  mod.addGlobal("g_with", i32, true, mod.i32.const(0));
  const texts = constantTexts(plan);
  addStartFunction(mod, texts, runtime.fn, { strict, memoryLimit });
  const charge = budgetCharger(mod, runtime);
  const hostCall = hostCaller(mod, plan, charge);
  for (const func of plan.funcs) {
    if (func.memo) mod.addGlobal(memoGlobal(func), i32, true, mod.i32.const(0));
  }
  for (const func of plan.funcs) {
    new FunctionEmitter(mod, func, runtime.fn, constGlobal, hostCall, charge).emit();
  }
  replacePolicyImports(mod, runtime.imported, plan, texts.length);
  for (let i = mod.getNumExports() - 1; i >= 0; i--) {
    const info = binaryen.getExportInfo(mod.getExportByIndex(i));
    if (!ABI_EXPORTS.has(info.name)) mod.removeExport(info.name);
  }
  if (!mod.validate()) throw new Error("internal compiler error: generated module does not validate");
  if (optimize) {
    // Only the policy's own functions: the runtime was optimised when it was built, and
    // re-optimising all of it (mostly cross-module inlining) tripled compile time for about 5 %
    // on loop-bound policies and nothing measurable on decisions (bench/rego.ts).
    binaryen.setOptimizeLevel(2);
    binaryen.setShrinkLevel(1);
    for (const func of plan.funcs) mod.optimizeFunction(funcName(func.name));
    mod.runPasses(["remove-unused-module-elements"]);
  }
  return mod.emitBinary();
}

interface Runtime {
  /** An exported function's internal name. */
  fn: (name: string) => string;
  /** An exported global's internal name. */
  global: (name: string) => string;
  /** Imports by `module.base`. */
  imported: Map<string, string>;
}

/** The runtime's exported functions and globals (by export name) and its imports (by `module.base`), as internal names. */
function runtimeFunctions(mod: binaryen.Module): Runtime {
  const exported = new Map<string, string>();
  const globals = new Map<string, string>();
  for (let i = 0; i < mod.getNumExports(); i++) {
    const info = binaryen.getExportInfo(mod.getExportByIndex(i));
    if (info.kind === binaryen.ExternalFunction) exported.set(info.name, info.value);
    if (info.kind === binaryen.ExternalGlobal) globals.set(info.name, info.value);
  }
  const imported = new Map<string, string>();
  for (let i = 0; i < mod.getNumFunctions(); i++) {
    const info = binaryen.getFunctionInfo(mod.getFunctionByIndex(i));
    if (info.module) imported.set(`${info.module}.${info.base}`, info.name);
  }
  const lookup = (map: Map<string, string>) => (name: string) => {
    const internal = map.get(name);
    if (!internal) throw new Error(`internal compiler error: the runtime has no ${name}`);
    return internal;
  };
  return { fn: lookup(exported), global: lookup(globals), imported };
}

/**
 * The budget check the compiled code makes at each back-edge and call: `steps` off the counter, and
 * the runtime's abort (`mandate: evaluation budget exhausted`) when it goes below zero. A global
 * decrement, a compare and a branch; the abort is out of line.
 */
function budgetCharger(mod: binaryen.Module, runtime: Runtime): (steps: number) => number {
  const remaining = runtime.global("mandate_budget_remaining");
  const exhausted = runtime.fn("rt_budget_exhausted");
  return (steps) =>
    mod.block(null, [
      mod.global.set(remaining, mod.i32.sub(mod.global.get(remaining, i32), mod.i32.const(steps))),
      mod.if(mod.i32.lt_s(mod.global.get(remaining, i32), mod.i32.const(0)), mod.call(exhausted, [], binaryen.none)),
    ]);
}

/** The plan's constants as UTF-8 JSON, then the entrypoints and built-ins tables. */
function constantTexts(plan: Plan): Uint8Array[] {
  const encoder = new TextEncoder();
  const tables = {
    entrypoints: JSON.stringify(Object.fromEntries(plan.entrypoints.map((e, i) => [e.name, i]))),
    builtins: JSON.stringify(Object.fromEntries(plan.hostBuiltins.map((name, i) => [name, i]))),
  };
  return [...plan.constants, tables.entrypoints, tables.builtins].map((t) => encoder.encode(t));
}

function constGlobal(index: number): string {
  return `c${index}`;
}

/**
 * The start function: sets the runtime's options, then writes the constants' JSON texts to the
 * heap (as 8-byte stores: binaryen cannot add a data segment to an imported memory) and parses
 * each once into the global holding its value.
 */
function addStartFunction(
  mod: binaryen.Module,
  texts: Uint8Array[],
  fn: (name: string) => string,
  { strict, memoryLimit }: { strict: boolean; memoryLimit: number },
): void {
  const offsets: number[] = [];
  let size = 0;
  for (const t of texts) {
    offsets.push(size);
    size += t.length;
  }
  const blob = new Uint8Array(align(size, 8));
  texts.forEach((t, i) => {
    blob.set(t, offsets[i] as number);
    mod.addGlobal(constGlobal(i), i32, true, mod.i32.const(0));
  });
  const base = () => mod.local.get(0, i32);
  const init: number[] = [
    ...runtimeStart(mod),
    mod.call(fn("rt_set_strict"), [mod.i32.const(strict ? 1 : 0)], binaryen.none),
    mod.call(fn("rt_set_heap_limit"), [mod.i32.const(memoryLimit | 0)], binaryen.none),
    mod.local.set(0, mod.call(fn("opa_malloc"), [mod.i32.const(blob.length)], i32)),
  ];
  const words = new DataView(blob.buffer);
  for (let at = 0; at < blob.length; at += 8) {
    const word = words.getBigInt64(at, true);
    if (word !== 0n) init.push(mod.i64.store(at, 1, base(), (mod.i64.const as unknown as (v: bigint) => number)(word)));
  }
  texts.forEach((t, i) => {
    const at = mod.i32.add(base(), mod.i32.const(offsets[i] as number));
    init.push(mod.global.set(constGlobal(i), mod.call(fn("rt_const"), [at, mod.i32.const(t.length)], i32)));
  });
  mod.addFunction("mandate_init", binaryen.none, binaryen.none, [i32], mod.block(null, init));
  mod.setStart(mod.getFunction("mandate_init"));
}

/** The runtime's own start function (AssemblyScript's global initialisers), which mandate_init replaces and calls first. */
function runtimeStart(mod: binaryen.Module): number[] {
  const start = (mod as unknown as { getStart(): number }).getStart();
  if (!start) return [];
  return [mod.call(binaryen.getFunctionInfo(start).name, [], binaryen.none)];
}

/** Calls of host built-ins, through opa_builtinN (imported once per arity, on first use), each HOST_CALL_STEPS. */
function hostCaller(
  mod: binaryen.Module,
  plan: Plan,
  charge: (steps: number) => number,
): (name: string, args: number[]) => number {
  const hostImports = new Set<number>();
  return (name, args) => {
    const arity = args.length;
    const importName = `opa_builtin${arity}`;
    if (!hostImports.has(arity)) {
      hostImports.add(arity);
      const params = binaryen.createType(Array.from({ length: arity + 2 }, () => i32));
      mod.addFunctionImport(importName, "env", importName, params, i32);
    }
    const call = mod.call(importName, [mod.i32.const(plan.hostBuiltins.indexOf(name)), mod.i32.const(0), ...args], i32);
    return mod.block(null, [charge(HOST_CALL_STEPS), call], i32);
  };
}

/** The entry dispatcher and the two tables replace the runtime's placeholder imports. */
function replacePolicyImports(
  mod: binaryen.Module,
  imported: Map<string, string>,
  plan: Plan,
  constants: number,
): void {
  replaceImport(mod, imported, "mandate.policy_entry", [i32, i32, i32], () => entryDispatcher(mod, plan));
  replaceImport(mod, imported, "mandate.policy_entrypoints", [], () => mod.global.get(constGlobal(constants - 2), i32));
  replaceImport(mod, imported, "mandate.policy_builtins", [], () => mod.global.get(constGlobal(constants - 1), i32));
}

/** policy_entry(entrypoint, input, data): sets the documents, clears the rule memo, calls the entrypoint's function. */
function entryDispatcher(mod: binaryen.Module, plan: Plan): number {
  const body: number[] = [
    mod.global.set("g_input", mod.local.get(1, i32)),
    mod.global.set("g_data", mod.local.get(2, i32)),
    mod.global.set("g_with", mod.i32.const(0)),
  ];
  for (const func of plan.funcs) if (func.memo) body.push(mod.global.set(memoGlobal(func), mod.i32.const(0)));
  plan.entrypoints.forEach((entry, i) => {
    body.push(
      mod.if(mod.i32.eq(mod.local.get(0, i32), mod.i32.const(i)), mod.return(mod.call(funcName(entry.func), [], i32))),
    );
  });
  body.push(mod.i32.const(0));
  return mod.block(null, body, i32);
}

function memoGlobal(func: PlannedFunc): string {
  return `m:${func.name}`;
}

function funcName(name: string): string {
  return `p:${name}`;
}

function align(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

function replaceImport(
  mod: binaryen.Module,
  imported: Map<string, string>,
  key: string,
  params: number[],
  body: () => number,
): void {
  const internal = imported.get(key);
  if (!internal) return; // the runtime never calls it
  mod.removeFunction(internal);
  mod.addFunction(internal, binaryen.createType(params), i32, [], body());
}

class FunctionEmitter {
  readonly #mod: binaryen.Module;
  readonly #func: PlannedFunc;
  readonly #fn: (name: string) => string;
  readonly #constGlobal: (index: number) => string;
  readonly #hostCall: (name: string, args: number[]) => number;
  readonly #charge: (steps: number) => number;
  #extra = 0;
  #labels = 0;
  /** For each enclosing `not`, the label its solution breaks to (the `not`'s own failure). */
  readonly #notFails: string[] = [];

  constructor(
    mod: binaryen.Module,
    func: PlannedFunc,
    fn: (name: string) => string,
    constGlobal: (index: number) => string,
    hostCall: (name: string, args: number[]) => number,
    charge: (steps: number) => number,
  ) {
    this.#mod = mod;
    this.#func = func;
    this.#fn = fn;
    this.#constGlobal = constGlobal;
    this.#hostCall = hostCall;
    this.#charge = charge;
  }

  emit(): void {
    const m = this.#mod;
    const func = this.#func;
    const top = this.#label();
    const result = () => m.local.get(func.result, i32);
    // One step per call (rules cannot recurse, but calls inside loops add up).
    const body: number[] = [this.#charge(1)];
    const memo = memoGlobal(func);
    if (func.memo) {
      body.push(
        m.if(
          m.i32.and(m.i32.eqz(m.global.get("g_with", i32)), m.i32.ne(m.global.get(memo, i32), m.i32.const(0))),
          m.return(
            m.select(m.i32.eq(m.global.get(memo, i32), m.i32.const(1)), m.i32.const(0), m.global.get(memo, i32)),
          ),
        ),
      );
    }
    body.push(m.block(top, this.#stmts(func.body, top)));
    if (func.memo) {
      body.push(
        m.if(
          m.i32.eqz(m.global.get("g_with", i32)),
          m.global.set(memo, m.select(m.i32.eqz(result()), m.i32.const(1), result())),
        ),
      );
    }
    body.push(m.return(result()));
    const vars = Array.from({ length: func.locals - func.params + this.#extra }, () => i32);
    m.addFunction(
      funcName(func.name),
      binaryen.createType(Array.from({ length: func.params }, () => i32)),
      i32,
      vars,
      m.block(null, body),
    );
  }

  #label(): string {
    return `b${this.#labels++}`;
  }

  #scratch(): Local {
    return this.#func.locals + this.#extra++;
  }

  #stmts(stmts: Stmt[], fail: string): number[] {
    const out = stmts.map((s) => this.#stmt(s, fail));
    return out.length > 0 ? out : [this.#mod.nop()];
  }

  #get(local: Local): number {
    return this.#mod.local.get(local, i32);
  }

  #failIfZero(local: Local, fail: string): number {
    return this.#mod.br(fail, this.#mod.i32.eqz(this.#get(local)));
  }

  #stmt(s: Stmt, fail: string): number {
    switch (s.op) {
      case "block":
        return this.#block(s);
      case "not":
        return this.#not(s, fail);
      case "scan":
        return this.#scan(s);
      case "br":
      case "brIf":
      case "fail":
      case "exitNot":
        return this.#branch(s, fail);
      case "call":
      case "callFunc":
      case "host":
        return this.#call(s, fail);
      case "check":
      case "checkZero":
      case "checkNonZero":
        return this.#check(s, fail);
      default:
        return this.#assign(s, fail);
    }
  }

  #block(s: Extract<Stmt, { op: "block" }>): number {
    const label = s.label ?? this.#label();
    return this.#mod.block(label, this.#stmts(s.body, label));
  }

  /** `not`: a solution of its body (exitNot) fails the `not`, i.e. breaks to the enclosing failure. */
  #not(s: Extract<Stmt, { op: "not" }>, fail: string): number {
    const label = this.#label();
    this.#notFails.push(fail);
    const block = this.#mod.block(label, this.#stmts(s.body, label));
    this.#notFails.pop();
    return block;
  }

  #branch(s: Extract<Stmt, { op: "br" | "brIf" | "fail" | "exitNot" }>, fail: string): number {
    const m = this.#mod;
    switch (s.op) {
      case "br":
        return m.br(s.label);
      case "brIf":
        return m.br(s.label, this.#get(s.src));
      case "fail":
        return m.br(fail);
      case "exitNot":
        return m.br(this.#notFails.at(-1) as string);
    }
  }

  /** A loop over a collection's entries: each iteration's failure goes on with the next one; each costs a step. */
  #scan(s: Extract<Stmt, { op: "scan" }>): number {
    const m = this.#mod;
    const length = this.#scratch();
    const index = this.#scratch();
    const exit = this.#label();
    const loop = this.#label();
    const next = this.#label();
    const body: number[] = [];
    if (s.key !== undefined) {
      body.push(m.local.set(s.key, m.call(this.#fn("rt_iter_key"), [this.#get(s.source), this.#get(index)], i32)));
    }
    if (s.value !== undefined) {
      body.push(m.local.set(s.value, m.call(this.#fn("rt_iter_value"), [this.#get(s.source), this.#get(index)], i32)));
    }
    body.push(...this.#stmts(s.body, next));
    return m.block(null, [
      m.local.set(length, m.call(this.#fn("rt_iter_len"), [this.#get(s.source)], i32)),
      m.local.set(index, m.i32.const(0)),
      m.block(exit, [
        m.loop(
          loop,
          m.block(null, [
            m.br(exit, m.i32.ge_s(this.#get(index), this.#get(length))),
            m.block(next, body),
            m.local.set(index, m.i32.add(this.#get(index), m.i32.const(1))),
            this.#charge(1),
            m.br(loop),
          ]),
        ),
      ]),
    ]);
  }

  /** Calls: of the runtime, of another planned function, of a host built-in; an undefined result fails. */
  #call(s: Extract<Stmt, { op: "call" | "callFunc" | "host" }>, fail: string): number {
    const m = this.#mod;
    if (s.op === "host") {
      const set = m.local.set(
        s.dst,
        this.#hostCall(
          s.name,
          s.args.map((a) => this.#get(a)),
        ),
      );
      return m.block(null, [set, this.#failIfZero(s.dst, fail)]);
    }
    if (s.op === "callFunc") {
      const call = m.call(
        funcName(s.func),
        s.args.map((a) => this.#get(a)),
        i32,
      );
      return this.#setResult(s.dst, call, s.maybe, fail);
    }
    const args = [
      ...s.args.map((a) => this.#get(a)),
      ...(s.ints ?? []).map((n) => m.i32.const(n)),
      ...(s.tail ?? []).map((a) => this.#get(a)),
    ];
    if (s.dst === undefined) return m.call(this.#fn(s.fn), args, binaryen.none);
    return this.#setResult(s.dst, m.call(this.#fn(s.fn), args, i32), s.maybe, fail);
  }

  /** A call's result into `dst`; unless it may be undefined, undefined (0) fails. */
  #setResult(dst: Local, call: number, maybe: boolean | undefined, fail: string): number {
    const set = this.#mod.local.set(dst, call);
    return maybe ? set : this.#mod.block(null, [set, this.#failIfZero(dst, fail)]);
  }

  #check(s: Extract<Stmt, { op: "check" | "checkZero" | "checkNonZero" }>, fail: string): number {
    const m = this.#mod;
    switch (s.op) {
      case "check": {
        const args = [...s.args.map((a) => this.#get(a)), ...(s.ints ?? []).map((n) => m.i32.const(n))];
        return m.br(fail, m.i32.eqz(m.call(this.#fn(s.fn), args, i32)));
      }
      case "checkZero":
        return m.br(fail, this.#get(s.src));
      case "checkNonZero":
        return this.#failIfZero(s.src, fail);
    }
  }

  /** Locals and globals: moves, flags, constants, the input and data documents, `with` depth. */
  #assign(s: Extract<Stmt, { op: "move" | "flag" | "const" | "global" | "setGlobal" | "withDepth" }>, fail: string) {
    const m = this.#mod;
    switch (s.op) {
      case "move":
        return m.local.set(s.dst, this.#get(s.src));
      case "flag":
        return m.local.set(s.dst, m.i32.const(s.value));
      case "const":
        return m.local.set(s.dst, m.global.get(this.#constGlobal(s.index), i32));
      case "global": {
        const read = m.local.set(s.dst, m.global.get(s.name === "input" ? "g_input" : "g_data", i32));
        if (s.name === "data" || s.maybe) return read;
        return m.block(null, [read, this.#failIfZero(s.dst, fail)]);
      }
      case "setGlobal":
        return m.global.set(s.name === "input" ? "g_input" : "g_data", this.#get(s.src));
      case "withDepth":
        return m.global.set("g_with", m.i32.add(m.global.get("g_with", i32), m.i32.const(s.delta)));
    }
  }
}
