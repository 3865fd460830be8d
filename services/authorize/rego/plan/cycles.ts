// Recursion through documents: a document that (through `data` or a package) includes the rule
// reading it would recurse forever at run time. The structural check (check.ts) sees rules naming
// rules; only the plan sees a rule reading the package document that holds it.
import type { PlannedFunc, Stmt } from "../ir.ts";
import { RegoError } from "../lexer.ts";

/** Refuses a plan whose functions call each other in a cycle, naming the cycle, as OPA's recursion check. */
export function checkCycles(funcs: Iterable<PlannedFunc>): void {
  const calls = new Map<string, Set<string>>();
  for (const func of funcs) calls.set(func.name, calledBy(func.body, new Set()));
  const done = new Set<string>();
  const stack: string[] = [];
  const visit = (name: string): void => {
    if (done.has(name)) return;
    if (stack.includes(name)) throw recursionError([...stack.slice(stack.indexOf(name)), name]);
    stack.push(name);
    for (const next of calls.get(name) ?? []) visit(next);
    stack.pop();
    done.add(name);
  };
  for (const name of calls.keys()) visit(name);
}

function calledBy(stmts: Stmt[], into: Set<string>): Set<string> {
  for (const s of stmts) {
    if (s.op === "callFunc") into.add(s.func);
    if (s.op === "block" || s.op === "not" || s.op === "scan") calledBy(s.body, into);
  }
  return into;
}

function recursionError(cycle: string[]): RegoError {
  // Function names are `kind:path`, `@with<n>` after a copy's (with-context.ts); the message names the paths.
  const paths = cycle.map((name) => name.slice(name.indexOf(":") + 1).replace(/@with\d+$/, ""));
  return new RegoError("rego_recursion_error", `rule ${paths[0]} is recursive: ${paths.join(" -> ")}`);
}
