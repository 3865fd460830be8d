// Ad-hoc queries (`x := split("a,b", ",")`, `data.test.p = x`, `1 + 1`): planned as a synthetic
// partial-set rule `data.__query__.rows` whose elements are the query's solutions, so the same
// compiler and opa-wasm evaluate them. A solution is the object of the query's variables; a query
// without variables yields the value of its one expression, or the array of its expressions'
// values (each of which must hold, as in a rule body).
import type { Literal, Module, Term } from "./ast.ts";
import { varsIn } from "./check.ts";
import type { Location } from "./lexer.ts";
import { parseQuery } from "./parser.ts";
import { isWildcard } from "./vars.ts";

export const QUERY_ENTRYPOINT = "__query__/rows";

const loc: Location = { file: "query.rego", row: 1, col: 1 };

const variable = (name: string): Term => ({ kind: "var", name, loc });

export function queryModule(query: string): Module {
  const literals = parseQuery(query, { file: "query.rego" });
  const names = queryVariables(literals);
  const { body, row } = names.length > 0 ? { body: literals, row: variablesRow(names) } : expressionValues(literals);
  return {
    file: "query.rego",
    package: ["__query__"],
    imports: [],
    rules: [
      {
        default: false,
        head: { ref: variable("rows"), args: undefined, contains: row, value: undefined, assign: false, loc },
        bodies: [body],
        elses: [],
        loc,
      },
    ],
    v1: true,
  };
}

/**
 * The query's own variables, in order of appearance (not input, data or wildcards). A query has no
 * package, so a variable named like a rule of some module is still a variable, as in OPA.
 */
function queryVariables(literals: Literal[]): string[] {
  const names: string[] = [];
  for (const v of literals.flatMap(queryTerms).flatMap(varsIn)) {
    if (v.kind !== "var" || isWildcard(v.name) || v.name === "input" || v.name === "data") continue;
    if (!names.includes(v.name)) names.push(v.name);
  }
  return names;
}

function queryTerms(literal: Literal): Term[] {
  switch (literal.kind) {
    case "expr":
      return [literal.expr];
    case "unify":
      return [literal.left, literal.right];
    case "somein":
      return [literal.key, literal.value].filter((t): t is Term => t !== undefined);
    case "some":
      return literal.vars;
    default:
      return [];
  }
}

/** A solution: the object of the query's variables. */
function variablesRow(names: string[]): Term {
  return { kind: "object", entries: names.map((n) => [{ kind: "string", value: n, loc }, variable(n)]), loc };
}

/**
 * A query without variables: each expression's value is kept as `__vN := expr`; with several, each
 * must not be false (as in a rule body), and the solution is the array of their values.
 */
function expressionValues(literals: Literal[]): { body: Literal[]; row: Term } {
  const values: Term[] = [];
  const body = literals.map((literal, i): Literal => {
    if (literal.kind !== "expr" || literal.negated || literal.with.length > 0) return literal;
    const v = variable(`__v${i}`);
    values.push(v);
    return { kind: "unify", assign: true, negated: false, left: v, right: literal.expr, with: [], loc: literal.loc };
  });
  const single = values.length === 1 && literals.length === 1;
  if (single) return { body, row: values[0] as Term };
  const holds = values.map((v): Literal => {
    const notFalse: Term = { kind: "binary", op: "!=", left: v, right: { kind: "boolean", value: false, loc }, loc };
    return { kind: "expr", negated: false, expr: notFalse, with: [], loc };
  });
  const row: Term = values.length > 0 ? { kind: "array", items: values, loc } : { kind: "boolean", value: true, loc };
  return { body: [...body, ...holds], row };
}
