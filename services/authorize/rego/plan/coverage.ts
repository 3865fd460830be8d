// Coverage instrumentation for `mandate policy test --coverage`. During a compile run inside
// `instrumentCoverage`, every planned term of a body literal or a rule head first calls the host
// built-in `mandate.cover(point)`, so the module reports which source lines ran, as OPA's coverage
// tracer counts them: an expression when it is evaluated, a rule head when the rule produces a value
// (its value is planned only then). Outside such a compile the step is the plain one, so production
// modules never call it. Planning is synchronous, so the instrumentation in force is module state.
import { type Literal, type Module, type Rule, subterms, type Term } from "../ast.ts";
import type { Location } from "../lexer.ts";
import type { Planner, PlanSteps } from "./planner.ts";

/** The host built-in an instrumented module calls with a point's index; it must return a value. */
export const COVER_BUILTIN = "mandate.cover";

/** A line coverage counts: the row of an expression, or of a rule head. */
export interface CoveragePoint {
  file: string;
  row: number;
}

interface Instrumentation {
  points: CoveragePoint[];
  /** Point index by a term's position (`file:row:col`). */
  pointAt: Map<string, number>;
  /** Points marked by the terms being planned: code planned inside them runs after their marker. */
  onPath: Set<number>;
}

let active: Instrumentation | undefined;

const positionKey = (loc: Location): string => `${loc.file}:${loc.row}:${loc.col}`;

/**
 * Runs `compile` (which must plan `modules`) with coverage markers; returns its result and the
 * points, every line OPA would report as covered or not covered, indexed as the markers pass them.
 */
export function instrumentCoverage<T>(modules: Module[], compile: () => T): { result: T; points: CoveragePoint[] } {
  const instrumentation = coveragePoints(modules);
  const previous = active;
  active = instrumentation;
  try {
    return { result: compile(), points: instrumentation.points };
  } finally {
    active = previous;
  }
}

/** The planner's term step, marking the point a term belongs to before its code (once per path). */
export function coveredTerm(planTerm: PlanSteps["term"]): PlanSteps["term"] {
  return (p, term, scope, k) => {
    const instrumentation = active;
    const point = instrumentation?.pointAt.get(positionKey(term.loc));
    if (instrumentation === undefined || point === undefined || instrumentation.onPath.has(point)) {
      planTerm(p, term, scope, k);
      return;
    }
    markOnce(p, point);
    instrumentation.onPath.add(point);
    try {
      planTerm(p, term, scope, k);
    } finally {
      instrumentation.onPath.delete(point);
    }
  };
}

/**
 * The host call marking `point`, once per call of the planned function: a flag local (zero when the
 * function starts, as every local) skips it after the first time, so a loop calls the host once, not
 * once per iteration.
 */
function markOnce(p: Planner, point: number): void {
  p.useHostBuiltin(COVER_BUILTIN);
  const marked = p.ir.local();
  const label = p.ir.label();
  p.ir.block(() => {
    p.ir.emit({ op: "brIf", src: marked, label });
    p.ir.emit({ op: "host", name: COVER_BUILTIN, args: [p.ir.const(String(point))], dst: p.ir.local() });
    p.ir.emit({ op: "flag", dst: marked, value: 1 });
  }, label);
}

/** Every rule head and expression (but `some x` declarations, as OPA) with the terms that mark it. */
function coveragePoints(modules: Module[]): Instrumentation {
  const instrumentation: Instrumentation = { points: [], pointAt: new Map(), onPath: new Set() };
  const addPoint = (loc: Location, locations: Location[]) => {
    const index = instrumentation.points.push({ file: loc.file, row: loc.row }) - 1;
    for (const at of locations) {
      const key = positionKey(at);
      if (!instrumentation.pointAt.has(key)) instrumentation.pointAt.set(key, index);
    }
  };
  const addLiterals = (literals: Literal[]) => {
    for (const literal of literals) {
      const { terms, bodies } = literalParts(literal);
      if (literal.kind !== "some") addPoint(literal.loc, [literal.loc, ...terms.flatMap(termLocations)]);
      for (const term of terms) for (const body of comprehensionBodies(term)) addLiterals(body);
      for (const body of bodies) addLiterals(body);
    }
  };
  for (const module of modules) {
    for (const rule of module.rules) {
      addPoint(rule.head.loc, [rule.loc, rule.head.loc, ...headTerms(rule).flatMap(termLocations)]);
      for (const body of rule.bodies) addLiterals(body);
      for (const clause of rule.elses) {
        addPoint(clause.loc, [clause.loc, ...(clause.value ? termLocations(clause.value) : [])]);
        addLiterals(clause.body);
      }
    }
  }
  return instrumentation;
}

/** The value terms of a rule's head (its name and arguments are not evaluated code). */
function headTerms(rule: Rule): Term[] {
  return [rule.head.value, rule.head.contains].filter((t): t is Term => t !== undefined);
}

/** A literal's terms and its nested bodies (`every`). */
function literalParts(literal: Literal): { terms: Term[]; bodies: Literal[][] } {
  switch (literal.kind) {
    case "expr":
      return { terms: [literal.expr, ...literal.with.map((w) => w.value)], bodies: [] };
    case "unify":
      return { terms: [literal.left, literal.right, ...literal.with.map((w) => w.value)], bodies: [] };
    case "some":
      return { terms: [], bodies: [] };
    case "somein":
      return { terms: [literal.key, literal.value, literal.collection].filter((t) => t !== undefined), bodies: [] };
    case "every":
      return { terms: [literal.domain], bodies: [literal.body] };
  }
}

/** The positions of a term and its sub-terms, not those inside comprehension bodies (literals of their own). */
function termLocations(term: Term): Location[] {
  return [term.loc, ...subterms(term).flatMap(termLocations)];
}

function comprehensionBodies(term: Term): Literal[][] {
  const own = term.kind === "arraycomp" || term.kind === "setcomp" || term.kind === "objectcomp" ? [term.body] : [];
  return [...own, ...subterms(term).flatMap(comprehensionBodies)];
}
