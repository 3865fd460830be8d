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

export interface Decision {
  allow: boolean;
  reasons: string[];
  obligations: string[];
}

export function referenceDecision(input: Json, data: Json = { limits: { max_chain: 3 } }): Decision {
  const actionInScope = inScope(input);
  const actors = list(get(input, "actors"));
  const deny = new Set<string>();
  if (!actionInScope) deny.add("the action is outside the token's scopes");
  if (chainTooLong(actors, data)) deny.add("the delegation chain is too long");
  if (actorOfAnotherTenant(input, actors)) deny.add("an actor belongs to another tenant");
  if (member(get(input, "resource", "attributes", "audience"), get(input, "token", "aud")) !== true) {
    deny.add("the token is not for this resource server");
  }
  if (!detailsCover(input)) deny.add("no authorization detail covers the request");
  for (const reason of mandateLimits(input)) deny.add(reason);
  const classification = get(input, "resource", "attributes", "classification");
  const clearance = get(input, "subject", "attributes", "clearance") ?? 0;
  if (typeof classification === "number" && typeof clearance === "number" && classification > clearance) {
    deny.add("the resource is classified above the subject's clearance");
  }
  const obligations = new Set<string>();
  const amr = get(input, "subject", "attributes", "amr") ?? [];
  if (typeof classification === "number" && classification >= 3 && member("mfa", amr) !== true) {
    obligations.add("step_up");
  }
  if (actors && actors.length > 1) obligations.add("audit_chain");
  return {
    allow: deny.size === 0 && actionInScope,
    reasons: [...deny].sort(),
    obligations: [...obligations].sort(),
  };
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
function mandateLimits(input: Json): string[] {
  const reasons: string[] = [];
  const expires = get(input, "mandate", "expires_at");
  const now = get(input, "context", "time");
  if (typeof expires === "number" && typeof now === "number" && expires <= now) reasons.push("the mandate has expired");
  const uses = get(input, "mandate", "uses_remaining");
  if (typeof uses === "number" && uses <= 0) reasons.push("the mandate's uses are exhausted");
  return reasons;
}
