// Calls: a function rule is a planned function called with its arguments' values; a built-in is
// native (a runtime export `b_<name>`) or delegated to the host through opa_builtinN; operators
// and membership are built-ins. Which one a name calls follows OPA: `data.`-paths, imports, then
// the caller's package, else the built-in.
import type { Module, Term, TermOf } from "../ast.ts";
import { builtinArity, builtinRefusal, nativeExportName } from "../builtins.ts";
import { pathKey } from "../check.ts";
import { HOST_RENAMES } from "../host-builtins.ts";
import type { Local } from "../ir.ts";
import { type Location, RegoError } from "../lexer.ts";
import { type Callee, type Planner, unsupported } from "./planner.ts";
import type { Scope } from "./scope.ts";
import { calledGroup, isHidden, mockFreeContext, operatorBuiltin } from "./with-context.ts";
import type { Mock } from "./with-mocks.ts";

type Value = (value: Local) => void;

export function callee(p: Planner, term: TermOf<"call">, module: Module): Callee {
  const group = calledGroup(p, term.name, module);
  if (group) return { group, arity: group.arity ?? 0 };
  const arity = builtinArity(term.name);
  return { arity: typeof arity === "number" ? arity : term.args.length };
}

/** A call used as a value: exactly its arity's arguments (`print` takes any). */
export function planCallTerm(p: Planner, term: TermOf<"call">, scope: Scope, k: Value): void {
  const target = callee(p, term, scope.module);
  if (term.args.length > target.arity && term.name !== "print") {
    // Only an expression on its own may pass an output argument: `count(xs, n)`.
    throw new RegoError(
      "rego_type_error",
      `${term.name}: too many arguments: have ${term.args.length}, want ${target.arity}`,
      term.loc,
    );
  }
  planCall(p, term, scope, target, term.args, k);
}

export function planCall(p: Planner, term: TermOf<"call">, scope: Scope, target: Callee, args: Term[], k: Value): void {
  const { group } = target;
  if (!group) {
    planBuiltin(p, term.name, args, scope, term.loc, k);
    return;
  }
  const mock = p.context.mocks.get(pathKey(group.path));
  if (mock) {
    planMocked(p, mock, args, scope, term.loc, k);
    return;
  }
  if (isHidden(p.context, group.path.slice(1))) {
    throw unsupported(`calling function ${pathKey(group.path)} where a \`with\` replaced its document`, term.loc);
  }
  const func = p.steps.ruleFunc(p, group);
  p.steps.terms(p, args, scope, (locals) => k(p.callFunc(func, locals)));
}

export function planOperator(p: Planner, term: TermOf<"binary">, scope: Scope, k: Value): void {
  planBuiltin(p, operatorBuiltin(term.op), [term.left, term.right], scope, term.loc, k);
}

/** `v in xs` and `k, v in xs` as a value. */
export function planMembership(p: Planner, term: TermOf<"membership">, scope: Scope, k: Value): void {
  if (term.key) planBuiltin(p, "internal.member_3", [term.key, term.value, term.collection], scope, term.loc, k);
  else planBuiltin(p, "internal.member_2", [term.value, term.collection], scope, term.loc, k);
}

/** A built-in call, or its mock where a `with` replaced it. */
function planBuiltin(p: Planner, name: string, args: Term[], scope: Scope, loc: Location, k: Value): void {
  if (name === "print") {
    k(p.ir.const("true"));
    return;
  }
  const mock = p.context.mocks.get(name);
  if (mock) {
    planMocked(p, mock, args, scope, loc, k);
    return;
  }
  if (name === WALK) {
    planWalk(p, args, scope, k);
    return;
  }
  checkBuiltin(p, name, loc);
  p.steps.terms(p, args, scope, (locals) => k(emitBuiltin(p, name, locals)));
}

/** The one relation among the built-ins: it yields every [path, value] pair of its operand. */
export const WALK = "walk";

/**
 * walk(x) as a value — `walk(x, [path, value])`, or `[path, value] := walk(x)`, which OPA's
 * compiler rewrites to the former — is one value per pair, in OPA's order (the runtime's pairs).
 */
function planWalk(p: Planner, args: Term[], scope: Scope, k: Value): void {
  p.steps.terms(p, args, scope, ([x]) => {
    const pairs = p.ir.local();
    p.ir.emit({ op: "call", fn: "rt_walk_pairs", args: [x as Local], dst: pairs });
    p.ir.scan(pairs, (_key, pair) => k(pair));
  });
}

/** Refuses a built-in Mandate cannot run (I/O built-ins compile only where a `with` replaces them). */
function checkBuiltin(p: Planner, name: string, loc: Location): void {
  if (p.options.native.has(name) || p.options.host.has(hostName(name))) return;
  const why = builtinRefusal(name);
  throw unsupported(`built-in function ${name}${why ? ` (${why})` : ""}`, loc);
}

/**
 * The host built-in a name calls: Mandate's own with OPA's semantics where opa-wasm's JavaScript
 * one differs (sprintf, regex.split), since opa-wasm dispatches to its own before any custom one.
 */
function hostName(name: string): string {
  return HOST_RENAMES[name] ?? name;
}

/** Built-ins whose OPA result is a set: their host result crosses as JSON (an array) and is made a set again. */
const HOST_SET_RESULTS = new Set(["net.cidr_expand"]);

function emitBuiltin(p: Planner, name: string, locals: Local[]): Local {
  const dst = p.ir.local();
  if (p.options.native.has(name)) {
    p.ir.emit({ op: "call", fn: nativeExportName(name), args: locals, dst });
    return dst;
  }
  const host = hostName(name);
  p.useHostBuiltin(host);
  if (name === "sprintf") {
    // sprintf(format, args): the runtime tags each operand as Rego prints it, the host formats.
    const tagged = p.ir.local();
    p.ir.emit({ op: "call", fn: "rt_sprintf_args", args: [locals[1] as Local], dst: tagged });
    p.ir.emit({ op: "host", name: host, args: [locals[0] as Local, tagged], dst });
    return dst;
  }
  p.ir.emit({ op: "host", name: host, args: locals, dst });
  if (!HOST_SET_RESULTS.has(name)) return dst;
  const set = p.ir.local();
  p.ir.emit({ op: "call", fn: "rt_set", args: [], dst: set });
  p.ir.scan(dst, (_key, element) => p.ir.emit({ op: "call", fn: "rt_set_add", args: [set, element] }));
  return set;
}

/**
 * A call a `with` mocked: its arguments are still evaluated (they must be defined), then the
 * replacement gives the value: a function (planned without mocks, as OPA), a built-in, a document,
 * a constant, or a value the context carries.
 */
function planMocked(p: Planner, mock: Mock, args: Term[], scope: Scope, loc: Location, k: Value): void {
  p.steps.terms(p, args, scope, (locals) => {
    switch (mock.kind) {
      case "function": {
        const func = p.within(mockFreeContext(p), [], () => p.steps.ruleFunc(p, mock.group));
        k(p.callFunc(func, locals));
        break;
      }
      case "builtin":
        checkBuiltin(p, mock.name, loc);
        k(emitBuiltin(p, mock.name, locals));
        break;
      case "document":
        p.steps.data(p, stringTerms(mock.path, loc), scope, k);
        break;
      case "constant":
        p.steps.term(p, mock.term, scope, k);
        break;
      case "value":
        k(p.contextValues[mock.index] as Local);
        break;
    }
  });
}

function stringTerms(path: string[], loc: Location): Term[] {
  return path.map((value) => ({ kind: "string", value, loc }));
}
