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
  const scopes = get(input, "token", "scopes");
  const action = get(input, "action");
  const actionInScope =
    member(action, scopes) === true ||
    (list(scopes) ?? []).some(
      (s) =>
        typeof s === "string" && s.endsWith(".*") && typeof action === "string" && action.startsWith(s.slice(0, -1)),
    );
  const maxChainData = get(data, "limits", "max_chain");
  const maxChain = maxChainData === undefined ? 3 : maxChainData;
  const actors = list(get(input, "actors"));
  const deny = new Set<string>();
  if (!actionInScope) deny.add("the action is outside the token's scopes");
  if (actors && typeof maxChain === "number" && actors.length > maxChain) deny.add("the delegation chain is too long");
  const tenant = get(input, "tenant");
  if (
    tenant !== undefined &&
    (actors ?? []).some((a) => {
      const t = get(a, "attributes", "tenant");
      return t !== undefined && !equal(t, tenant);
    })
  ) {
    deny.add("an actor belongs to another tenant");
  }
  if (member(get(input, "resource", "attributes", "audience"), get(input, "token", "aud")) !== true) {
    deny.add("the token is not for this resource server");
  }
  const details = list(get(input, "token", "authorization_details"));
  if (details && details.length > 0) {
    const covered = details.some((d) => {
      const type = get(d, "type");
      if (type === undefined || !equal(type, get(input, "resource", "type"))) return false;
      if (member(action, get(d, "actions")) !== true) return false;
      const locations = get(d, "locations");
      if (locations === undefined || locations === false) return true;
      return member(get(input, "resource", "attributes", "location"), locations) === true;
    });
    if (!covered) deny.add("no authorization detail covers the request");
  }
  const expires = get(input, "mandate", "expires_at");
  const now = get(input, "context", "time");
  if (typeof expires === "number" && typeof now === "number" && expires <= now) deny.add("the mandate has expired");
  const uses = get(input, "mandate", "uses_remaining");
  if (typeof uses === "number" && uses <= 0) deny.add("the mandate's uses are exhausted");
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
