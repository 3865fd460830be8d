// Whether a requested grant stays within a mandate, and whether a sub-mandate only narrows its
// parent: pure functions, dimension by dimension, returning the first widening with the dimension
// (and the field inside it) named, so callers answer `invalid_scope` (scopes), `invalid_target`
// (resources, RFC 8707 §2), `invalid_authorization_details` (RFC 9396 §5) or `invalid_request`
// (everything else) with the dimension in the description, or INVALID_ARGUMENT naming the field.
//
// The rules ("bound" is the mandate or parent, "requested" the grant or sub-mandate):
// - scopes: requested ⊆ bound.
// - resources (RFC 8707 audiences): requested ⊆ bound.
// - authorization_details (RFC 9396): every requested detail is covered by one bound detail of the
//   same `type`. A detail covers another when, field by field:
//   · numbers named `max_*` (e.g. `max_amount`) and `instructedAmount.amount` (payment_initiation):
//     requested ≤ bound; `min_*`: requested ≥ bound; numeric strings ("123.50") count as numbers;
//   · sets `actions`, `datatypes`, `privileges`, `datasets`, `identifiers`: requested ⊆ bound;
//   · `locations`: every requested location (itself possibly a glob) is contained in a bound glob;
//     `*` matches any run of characters, "/" included (`https://api.example.com/orders/*` contains
//     `https://api.example.com/orders/42` and `https://api.example.com/orders/42/*`), and is always
//     a wildcard;
//   · time windows (`time_window`, any `*_window`): `{start, end}` as RFC 3339 times, epoch numbers or
//     "HH:MM[:SS]" times of day, both of one kind; requested inside bound; other window keys equal;
//   · `currency`: equal strings;
//   · a known field the bound does not set is unconstrained; one it sets must be present in the
//     requested detail (a constraint cannot be dropped);
//   · every other field (either side) must be present on both and equal (canonical JSON).
//   Two requested details may each fit one bound detail; sums over details are a usage limit's job.
// - validity: requested not_before ≥ bound's, expires_at ≤ bound's; a grant must fall inside it.
// - max_token_ttl: requested ≤ bound (an unset bound is unbounded; an unset request under a set
//   bound is a widening); a grant's token lifetime ≤ bound.
// - usage_limits: every bound limit is matched by a requested limit of the same meter whose maximum
//   is ≤ and whose period is the same or the whole life (a lifetime cap ≤ a per-period cap is
//   narrower); the requested side may add limits. (A sub-mandate's consumption charges its parents'
//   counters anyway, see usage.ts: this rule is about what the sub-mandate declares.)
// - max_delegation_depth: requested ≤ bound for `narrowerOrEqual` (the preorder: reflexive,
//   transitive); a sub-mandate needs ≤ bound − 1 (`subMandateWidening`), so depth 0 ends the chain.
// - may_act: requested ⊆ bound, where an empty list means "any agent of the tenant" (RFC 8693 §4.4:
//   no may_act, no restriction beyond depth); so a non-empty bound admits only a non-empty subset.
import canonicalize from "canonicalize";
import type { AuthorizationDetail, MandateBounds, UsageLimitBound } from "../../shared/mandates/mandate-store.ts";

// The shapes of a mandate's bounds live with the store (shared: Authorize reads mandates too).
export type { AuthorizationDetail, MandateBounds, UsageLimitBound };

export type Dimension =
  | "scopes"
  | "resources"
  | "authorization_details"
  | "not_before"
  | "expires_at"
  | "max_token_ttl"
  | "usage_limits"
  | "max_delegation_depth"
  | "may_act";

/** What a token request under a mandate asks for. */
export interface GrantRequest {
  scopes: readonly string[];
  resources: readonly string[];
  authorizationDetails: readonly AuthorizationDetail[];
  /** When the grant is made. */
  at: number;
  /** Lifetime of the token to mint, when known. */
  tokenTtlMs?: number | undefined;
}

/** The first way a request goes beyond its bound. */
export interface Widening {
  dimension: Dimension;
  /** The field in the request's terms, e.g. `authorization_details[1].max_amount`. */
  field: string;
  message: string;
}

/** The OAuth error code for a widening in `dimension`. */
export function oauthErrorOf(
  dimension: Dimension,
): "invalid_scope" | "invalid_target" | "invalid_authorization_details" | "invalid_request" {
  if (dimension === "scopes") return "invalid_scope";
  if (dimension === "resources") return "invalid_target";
  if (dimension === "authorization_details") return "invalid_authorization_details";
  return "invalid_request";
}

/** Whether a grant is within a mandate at `request.at`; the first widening, or undefined. */
export function grantWidening(request: GrantRequest, mandate: MandateBounds): Widening | undefined {
  return (
    subsetWidening("scopes", request.scopes, mandate.scopes) ??
    subsetWidening("resources", request.resources, mandate.resources) ??
    detailsWidening(request.authorizationDetails, mandate.authorizationDetails) ??
    (request.at < mandate.notBefore
      ? widening("not_before", "not_before", `the mandate is not valid before ${iso(mandate.notBefore)}`)
      : undefined) ??
    (request.at >= mandate.expiresAt
      ? widening("expires_at", "expires_at", `the mandate expired at ${iso(mandate.expiresAt)}`)
      : undefined) ??
    (request.tokenTtlMs === undefined ? undefined : ttlWidening(request.tokenTtlMs, mandate.maxTokenTtlMs))
  );
}

/**
 * Whether `requested` is within `bound` in every dimension, depth included (≤): the preorder of
 * mandates, reflexive and transitive. The first widening, or undefined.
 */
export function narrowerOrEqual(requested: MandateBounds, bound: MandateBounds): Widening | undefined {
  return (
    boundsWidening(requested, bound) ??
    (requested.maxDelegationDepth > bound.maxDelegationDepth
      ? widening(
          "max_delegation_depth",
          "max_delegation_depth",
          `${requested.maxDelegationDepth} is more than the bound's ${bound.maxDelegationDepth}`,
        )
      : undefined)
  );
}

/** Whether `child` may be a sub-mandate of `parent`: within it, with at least one hop less depth. */
export function subMandateWidening(child: MandateBounds, parent: MandateBounds): Widening | undefined {
  return (
    boundsWidening(child, parent) ??
    (child.maxDelegationDepth > parent.maxDelegationDepth - 1
      ? widening(
          "max_delegation_depth",
          "max_delegation_depth",
          parent.maxDelegationDepth === 0
            ? "the parent mandate allows no further delegation"
            : `${child.maxDelegationDepth} is more than the parent's ${parent.maxDelegationDepth} minus one`,
        )
      : undefined)
  );
}

/** Whether `agent` may receive a sub-mandate of `parent` (its may_act). */
export function mayReceive(parent: MandateBounds, agent: string): boolean {
  return parent.mayAct.length === 0 || parent.mayAct.includes(agent);
}

function boundsWidening(requested: MandateBounds, bound: MandateBounds): Widening | undefined {
  return (
    subsetWidening("scopes", requested.scopes, bound.scopes) ??
    subsetWidening("resources", requested.resources, bound.resources) ??
    detailsWidening(requested.authorizationDetails, bound.authorizationDetails) ??
    (requested.notBefore < bound.notBefore
      ? widening("not_before", "not_before", `${iso(requested.notBefore)} is before ${iso(bound.notBefore)}`)
      : undefined) ??
    (requested.expiresAt > bound.expiresAt
      ? widening("expires_at", "expires_at", `${iso(requested.expiresAt)} is after ${iso(bound.expiresAt)}`)
      : undefined) ??
    ttlWidening(requested.maxTokenTtlMs, bound.maxTokenTtlMs) ??
    limitsWidening(requested.usageLimits, bound.usageLimits) ??
    mayActWidening(requested.mayAct, bound.mayAct)
  );
}

function widening(dimension: Dimension, field: string, message: string): Widening {
  return { dimension, field, message };
}

function iso(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms);
}

function subsetWidening(
  dimension: "scopes" | "resources",
  requested: readonly string[],
  bound: readonly string[],
): Widening | undefined {
  const allowed = new Set(bound);
  const index = requested.findIndex((value) => !allowed.has(value));
  if (index < 0) return undefined;
  return widening(dimension, `${dimension}[${index}]`, `"${requested[index]}" is not among the bound's ${dimension}`);
}

function ttlWidening(requested: number | null, bound: number | null): Widening | undefined {
  if (bound === null || (requested !== null && requested <= bound)) return undefined;
  return widening(
    "max_token_ttl",
    "max_token_ttl",
    requested === null
      ? `unbounded, but the bound allows at most ${bound} ms`
      : `${requested} ms is more than the bound's ${bound} ms`,
  );
}

function limitsWidening(requested: readonly UsageLimitBound[], bound: readonly UsageLimitBound[]) {
  for (const limit of bound) {
    const matched = requested.some(
      (r) =>
        r.meter === limit.meter && (r.periodMs === limit.periodMs || r.periodMs === 0) && r.maximum <= limit.maximum,
    );
    if (!matched) {
      const per = limit.periodMs === 0 ? "in all" : `per ${limit.periodMs} ms`;
      return widening(
        "usage_limits",
        `usage_limits[${limit.meter}]`,
        `the bound allows at most ${limit.maximum} ${limit.meter} ${per}; no limit as tight is declared`,
      );
    }
  }
  return undefined;
}

function mayActWidening(requested: readonly string[], bound: readonly string[]): Widening | undefined {
  if (bound.length === 0) return undefined;
  if (requested.length === 0) {
    return widening("may_act", "may_act", "any agent, but the bound names the only agents that may act");
  }
  const allowed = new Set(bound);
  const index = requested.findIndex((agent) => !allowed.has(agent));
  if (index < 0) return undefined;
  return widening("may_act", `may_act[${index}]`, `"${requested[index]}" is not among the bound's may_act`);
}

// --- authorization_details (RFC 9396) --------------------------------------------------------------

type Rule = "max" | "min" | "subset" | "globs" | "window" | "equal" | { object: Record<string, Rule> };

/** Fields with a subset rule in every type (RFC 9396 §2.2 common fields and Mandate's own). */
const COMMON_RULES: Record<string, Rule> = {
  actions: "subset",
  datatypes: "subset",
  privileges: "subset",
  datasets: "subset",
  identifiers: "subset",
  locations: "globs",
  currency: "equal",
  time_window: "window",
};

/** Per-type rules, over the common ones. */
const TYPE_RULES: Record<string, Record<string, Rule>> = {
  payment_initiation: { instructedAmount: { object: { amount: "max", currency: "equal" } } },
};

function ruleOf(type: string, field: string, within?: Record<string, Rule>): Rule | undefined {
  const table = within ?? { ...COMMON_RULES, ...TYPE_RULES[type] };
  if (Object.hasOwn(table, field)) return table[field];
  if (within) return undefined;
  if (field.startsWith("max_")) return "max";
  if (field.startsWith("min_")) return "min";
  if (field.endsWith("_window")) return "window";
  return undefined;
}

function detailsWidening(
  requested: readonly AuthorizationDetail[],
  bound: readonly AuthorizationDetail[],
): Widening | undefined {
  for (const [index, detail] of requested.entries()) {
    const candidates = bound.filter((b) => b.type === detail.type);
    if (candidates.length === 0) {
      return widening(
        "authorization_details",
        `authorization_details[${index}].type`,
        `no authorization detail of type "${detail.type}" is allowed`,
      );
    }
    const problems = candidates.map((candidate) => objectProblem(detail.type, detail, candidate));
    if (problems.some((p) => p === undefined)) continue;
    const first = problems[0] as Problem;
    return widening("authorization_details", `authorization_details[${index}].${first.path}`, first.message);
  }
  return undefined;
}

interface Problem {
  path: string;
  message: string;
}

/** The first field of `requested` not covered by `bound`, by the type's rules (or `within`, nested). */
function objectProblem(
  type: string,
  requested: Record<string, unknown>,
  bound: Record<string, unknown>,
  within?: Record<string, Rule>,
): Problem | undefined {
  // `type` picked the bound detail; nested objects have no such key.
  const fields = [...new Set([...Object.keys(bound), ...Object.keys(requested)])].filter(
    (f) => within !== undefined || f !== "type",
  );
  for (const field of fields) {
    const problem = fieldProblem(ruleOf(type, field, within), requested[field], bound[field], field in bound);
    if (problem) return { path: problem.path ? `${field}.${problem.path}` : field, message: problem.message };
  }
  return undefined;
}

function fieldProblem(
  rule: Rule | undefined,
  requested: unknown,
  bound: unknown,
  bounded: boolean,
): Problem | undefined {
  if (rule === undefined) {
    return equalJson(requested, bound) ? undefined : { path: "", message: "must equal the bound's value" };
  }
  if (!bounded) return undefined;
  if (requested === undefined) return { path: "", message: "the bound constrains it, the request must too" };
  const message = ruleProblem(rule, requested, bound);
  if (typeof message === "string") return { path: "", message };
  return message;
}

function ruleProblem(rule: Rule, requested: unknown, bound: unknown): string | Problem | undefined {
  if (typeof rule === "object") {
    if (!isObject(requested) || !isObject(bound)) return "must be an object as in the bound";
    return objectProblem("", requested, bound, rule.object);
  }
  switch (rule) {
    case "max":
    case "min":
      return numberProblem(rule, requested, bound);
    case "subset":
      return subsetProblem(requested, bound);
    case "globs":
      return globsProblem(requested, bound);
    case "window":
      return windowProblem(requested, bound);
    default:
      return equalJson(requested, bound) ? undefined : "must equal the bound's value";
  }
}

function numberProblem(rule: "max" | "min", requested: unknown, bound: unknown): string | undefined {
  const r = numeric(requested);
  const b = numeric(bound);
  if (r === undefined || b === undefined) return "must be a number";
  if (rule === "max" && r > b) return `${r} is more than the bound's ${b}`;
  if (rule === "min" && r < b) return `${r} is less than the bound's ${b}`;
  return undefined;
}

function numeric(value: unknown): number | undefined {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string" && /^-?\d+(\.\d+)?$/.test(value)) return Number(value);
  return undefined;
}

function subsetProblem(requested: unknown, bound: unknown): string | undefined {
  if (!Array.isArray(requested) || !Array.isArray(bound)) return "must be a list";
  const allowed = new Set(bound.map((v) => canonicalize(v)));
  const outside = requested.find((v) => !allowed.has(canonicalize(v)));
  return outside === undefined ? undefined : `${JSON.stringify(outside)} is not allowed by the bound`;
}

function globsProblem(requested: unknown, bound: unknown): string | undefined {
  const r = Array.isArray(requested) ? requested : [requested];
  const b = Array.isArray(bound) ? bound : [bound];
  if (!r.every((v) => typeof v === "string") || !b.every((v) => typeof v === "string")) {
    return "must be a list of locations";
  }
  const outside = (r as string[]).find((location) => !(b as string[]).some((glob) => globContains(glob, location)));
  return outside === undefined ? undefined : `"${outside}" is outside the bound's locations`;
}

/**
 * Whether every string `inner` matches (a glob itself) also matches `outer`: `outer` matches `inner`
 * read as text in which each `*` can be absorbed only by a `*` of `outer` (exact for `*`-only globs).
 */
export function globContains(outer: string, inner: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let resume = 0;
  while (t < inner.length) {
    if (p < outer.length && outer[p] !== "*" && outer[p] === inner[t]) {
      p++;
      t++;
    } else if (p < outer.length && outer[p] === "*") {
      star = p++;
      resume = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (outer[p] === "*") p++;
  return p === outer.length;
}

function windowProblem(requested: unknown, bound: unknown): string | undefined {
  if (!isObject(requested) || !isObject(bound)) return "must be a window {start, end}";
  const times = [requested.start, requested.end, bound.start, bound.end].map(instant);
  const kinds = new Set(times.map((t) => t?.kind));
  if (kinds.size !== 1 || kinds.has(undefined)) return "start and end must be times of one kind";
  const [rs, re, bs, be] = times.map((t) => t?.value ?? 0) as [number, number, number, number];
  if (rs < bs || re > be) return "the window is not inside the bound's";
  const others = (o: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(o).filter(([k]) => k !== "start" && k !== "end"));
  return equalJson(others(requested), others(bound)) ? undefined : "the window's other fields must equal the bound's";
}

function instant(value: unknown): { kind: string; value: number } | undefined {
  if (typeof value === "number" && Number.isFinite(value)) return { kind: "epoch", value };
  if (typeof value !== "string") return undefined;
  const clock = /^(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value);
  if (clock) return { kind: "clock", value: Number(clock[1]) * 3600 + Number(clock[2]) * 60 + Number(clock[3] ?? 0) };
  const ms = Date.parse(value);
  return Number.isNaN(ms) || !/^\d{4}-\d{2}-\d{2}T/.test(value) ? undefined : { kind: "epoch", value: ms / 1000 };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function equalJson(a: unknown, b: unknown): boolean {
  if (a === undefined || b === undefined) return a === b;
  return canonicalize(a) === canonicalize(b);
}
