// Ad-hoc queries (`x := split("a,b", ",")`, `data.test.p = x`, `1 + 1`): planned as a synthetic
// partial-set rule `data.__query__.rows` whose elements are the query's solutions, so the same
// compiler and opa-wasm evaluate them. A solution is the object of the query's variables; a query
// without variables yields the value of its one expression, or the array of its expressions'
// values (each of which must hold, as in a rule body).
import type { Literal, Module, Term } from "./ast.ts";
import { varsIn } from "./check.ts";
import type { Location } from "./lexer.ts";
import { parseQuery } from "./parser.ts";

export const QUERY_ENTRYPOINT = "__query__/rows";

export function queryModule(query: string, modules: Module[]): Module {
  const literals = parseQuery(query, { file: "query.rego" });
  const loc: Location = { file: "query.rego", row: 1, col: 1 };
  const ruleNames = new Set(
    modules.flatMap((m) => m.rules.map((r) => (r.head.ref.kind === "var" ? r.head.ref.name : ""))),
  );
  const names: string[] = [];
  for (const literal of literals) {
    const terms =
      literal.kind === "expr"
        ? [literal.expr]
        : literal.kind === "unify"
          ? [literal.left, literal.right]
          : literal.kind === "somein"
            ? [literal.key, literal.value].filter((t): t is Term => t !== undefined)
            : literal.kind === "some"
              ? literal.vars
              : [];
    for (const t of terms) {
      for (const v of varsIn(t)) {
        if (v.kind !== "var" || v.name === "_" || v.name.startsWith("$") || v.name === "input" || v.name === "data")
          continue;
        if (!ruleNames.has(v.name) && !names.includes(v.name)) names.push(v.name);
      }
    }
  }
  const variable = (name: string): Term => ({ kind: "var", name, loc });
  let body: Literal[] = literals;
  let row: Term;
  if (names.length > 0) {
    row = { kind: "object", entries: names.map((n) => [{ kind: "string", value: n, loc }, variable(n)]), loc };
  } else {
    // Expressions become values: `__vN := expr`, kept only when not false (multi-expression queries).
    const values: Term[] = [];
    body = literals.map((literal, i) => {
      if (literal.kind !== "expr" || literal.negated || literal.with.length > 0) return literal;
      const v = variable(`__v${i}`);
      values.push(v);
      return { kind: "unify", assign: true, negated: false, left: v, right: literal.expr, with: [], loc: literal.loc };
    });
    if (values.length > 1 || (values.length === 1 && literals.length > 1)) {
      body = [
        ...body,
        ...values.map(
          (v): Literal => ({
            kind: "expr",
            negated: false,
            expr: { kind: "binary", op: "!=", left: v, right: { kind: "boolean", value: false, loc }, loc },
            with: [],
            loc,
          }),
        ),
      ];
    }
    row =
      values.length === 1 && literals.length === 1
        ? (values[0] as Term)
        : values.length > 0
          ? { kind: "array", items: values, loc }
          : { kind: "boolean", value: true, loc };
  }
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
