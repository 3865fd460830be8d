// What a `with` context is: the mocks in force (by target) and the data paths whose rules a `with`
// replaced. The planner carries one; with-context.ts makes and applies them.
import type { Term } from "../ast.ts";
import type { RuleGroup } from "../check.ts";

/** What replaces a mocked function or built-in. */
export type Mock =
  /** A user function of the same arity, called without any mock in force (as OPA). */
  | { kind: "function"; group: RuleGroup }
  /** A built-in of the same arity. */
  | { kind: "builtin"; name: string }
  /** A rule or package document, evaluated where the call is. */
  | { kind: "document"; path: string[] }
  /** A constant value. */
  | { kind: "constant"; term: Term }
  /** A value computed at the `with`: the context's value at `index`. */
  | { kind: "value"; index: number };

export interface WithContext {
  /** 0 for no context: the policy as written. */
  readonly id: number;
  readonly key: string;
  /** By target: a function's path key (`data.pkg.f`) or a built-in's name. */
  readonly mocks: ReadonlyMap<string, Mock>;
  /** Paths under data (without `data`) whose rules a `with` replaced: reads there see base data. */
  readonly hidden: readonly string[][];
  /** How many values the context passes along. */
  readonly values: number;
  /** Whether a rule group is affected, once computed. */
  readonly affected: Map<RuleGroup, boolean>;
}

export const EMPTY_CONTEXT: WithContext = {
  id: 0,
  key: "",
  mocks: new Map(),
  hidden: [],
  values: 0,
  affected: new Map(),
};
