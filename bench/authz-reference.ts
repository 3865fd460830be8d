// policies/default/authz.rego's decision written by hand in TypeScript: the baseline of the
// policy benchmark and the reference the property tests compare compiled results with. It follows
// Rego's semantics for missing values (an undefined operand makes a condition fail; `not` of an
// undefined expression holds).

type Json = unknown;
type Obj = Record<string, Json>;

const get = (v: Json, ...path: string[]): Json => {
  let at = v;
  for (const key of path) {
    if (typeof at !== "object" || at === null || Array.isArray(at)) return undefined;
    at = (at as Obj)[key];
  }
  return at;
};

const list = (v: Json): Json[] | undefined => (Array.isArray(v) ? v : undefined);

const equal = (a: Json, b: Json): boolean => JSON.stringify(a) === JSON.stringify(b);

const member = (x: Json, coll: Json): boolean | undefined => {
  if (x === undefined || coll === undefined) return undefined;
  if (Array.isArray(coll)) return coll.some((c) => equal(c, x));
  if (typeof coll === "object" && coll !== null) return Object.values(coll).some((c) => equal(c, x));
  return false;
};

export interface Reason {
  code: string;
  message: string;
}

export type Obligation = { type: "step_up"; acr_values: Json } | { type: "audit_chain" };

export interface Decision {
  allow: boolean;
  reasons: Reason[];
  obligations: Obligation[];
}

/** The policy's reason codes and their messages (policies/default/authz.rego's header). */
const REASONS = {
  scope_missing: "the action is outside the token's scopes",
  chain_too_long: "the delegation chain is too long",
  actor_wrong_tenant: "an actor belongs to another tenant",
  audience_mismatch: "the token is not for this resource server",
  authorization_details_mismatch: "no authorization detail covers the request",
  mandate_expired: "the mandate has expired",
  mandate_exhausted: "the mandate's uses are exhausted",
  clearance_insufficient: "the resource is classified above the subject's clearance",
} as const;

type Code = keyof typeof REASONS;

const DEFAULT_ACR = "urn:mandate:acr:mfa";

export function referenceDecision(input: Json, data: Json = { limits: { max_chain: 3 } }): Decision {
  const actionInScope = inScope(input);
  const actors = list(get(input, "actors"));
  const deny = new Set<Code>();
  if (!actionInScope) deny.add("scope_missing");
  if (chainTooLong(actors, data)) deny.add("chain_too_long");
  if (actorOfAnotherTenant(input, actors)) deny.add("actor_wrong_tenant");
  if (member(get(input, "resource", "attributes", "audience"), get(input, "token", "aud")) !== true) {
    deny.add("audience_mismatch");
  }
  if (!detailsCover(input)) deny.add("authorization_details_mismatch");
  for (const code of mandateLimits(input)) deny.add(code);
  if (aboveClearance(input)) deny.add("clearance_insufficient");
  return {
    allow: deny.size === 0 && actionInScope,
    // Rego sorts the {code, message} objects by code (their first key); codes are distinct.
    reasons: [...deny].sort().map((code) => ({ code, message: REASONS[code] })),
    obligations: obligationsOf(input, actors, data),
  };
}

function aboveClearance(input: Json): boolean {
  const classification = get(input, "resource", "attributes", "classification");
  const clearance = get(input, "subject", "attributes", "clearance") ?? 0;
  return typeof classification === "number" && typeof clearance === "number" && classification > clearance;
}

/** In the policy's fixed order: step_up (classification 3 or more without "mfa" in amr), then audit_chain. */
function obligationsOf(input: Json, actors: Json[] | undefined, data: Json): Obligation[] {
  const obligations: Obligation[] = [];
  const classification = get(input, "resource", "attributes", "classification");
  const amr = get(input, "subject", "attributes", "amr") ?? [];
  if (typeof classification === "number" && classification >= 3 && member("mfa", amr) !== true) {
    const acr = get(data, "step_up", "acr_values");
    obligations.push({ type: "step_up", acr_values: acr === undefined ? DEFAULT_ACR : acr });
  }
  if (actors && actors.length > 1) obligations.push({ type: "audit_chain" });
  return obligations;
}

/** The action is one of the token's scopes, or under one of its wildcard scopes ("orders.*"). */
function inScope(input: Json): boolean {
  const scopes = get(input, "token", "scopes");
  const action = get(input, "action");
  return (
    member(action, scopes) === true ||
    (list(scopes) ?? []).some(
      (s) =>
        typeof s === "string" && s.endsWith(".*") && typeof action === "string" && action.startsWith(s.slice(0, -1)),
    )
  );
}

function chainTooLong(actors: Json[] | undefined, data: Json): boolean {
  const maxChainData = get(data, "limits", "max_chain");
  const maxChain = maxChainData === undefined ? 3 : maxChainData;
  return actors !== undefined && typeof maxChain === "number" && actors.length > maxChain;
}

function actorOfAnotherTenant(input: Json, actors: Json[] | undefined): boolean {
  const tenant = get(input, "tenant");
  if (tenant === undefined) return false;
  return (actors ?? []).some((a) => {
    const t = get(a, "attributes", "tenant");
    return t !== undefined && !equal(t, tenant);
  });
}

/** With authorization details, one must cover the resource type, the action and (if it names any) the location. */
function detailsCover(input: Json): boolean {
  const details = list(get(input, "token", "authorization_details"));
  if (!details || details.length === 0) return true;
  return details.some((d) => {
    const type = get(d, "type");
    if (type === undefined || !equal(type, get(input, "resource", "type"))) return false;
    if (member(get(input, "action"), get(d, "actions")) !== true) return false;
    const locations = get(d, "locations");
    if (locations === undefined || locations === false) return true;
    return member(get(input, "resource", "attributes", "location"), locations) === true;
  });
}

/** Why the mandate no longer allows anything: expired, or its uses exhausted. */
function mandateLimits(input: Json): Code[] {
  const reasons: Code[] = [];
  const expires = get(input, "mandate", "expires_at");
  const now = get(input, "context", "time");
  if (typeof expires === "number" && typeof now === "number" && expires <= now) reasons.push("mandate_expired");
  const uses = get(input, "mandate", "uses_remaining");
  if (typeof uses === "number" && uses <= 0) reasons.push("mandate_exhausted");
  return reasons;
}
