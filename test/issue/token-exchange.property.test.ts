// Properties of token exchange of mandates, against a running `mandate dev` (SQLite; PostgreSQL
// under test:postgres): random mandates, then random sequences of exchanges, re-exchanges and
// sub-delegations with random narrowing requests, some of them widening. For every answer:
//   · a widening (scope, audience, authorization details — in that order, the order the server
//     checks) is refused with the error of its dimension; a sub-delegation past the depth or to an
//     agent may_act does not name is invalid_request (RFC 8693 §2.2.2); everything else is granted
//     (nothing valid refused);
//   · every token is within its mandate in every dimension — scope, aud, authorization_details
//     (RFC 9396 per-type rules), exp (≤ the expiry and the max_token_ttl of every mandate of the
//     chain), depth (a sub-mandate allows one hop less) — and within what was asked;
//   · every token's act chain (RFC 8693 §4.1, newest outermost) is the mandate chain's agents.
// Runs are kept few (CI has two cores): 40 runs, about 150 exchanges in all, seconds.
import type { MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, durationMs, timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import * as oauth from "oauth4webapi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClientKind } from "../../gen/mandate/v1/clients_pb.js";
import { PartyKind } from "../../gen/mandate/v1/common_pb.js";
import type { Mandate, MandateSchema } from "../../gen/mandate/v1/issue_pb.js";
import {
  type AuthorizationDetail,
  grantWidening,
  type MandateBounds,
} from "../../services/issue/mandates/narrowing.ts";
import {
  ACCESS_TOKEN_TYPE as ACCESS_TYPE,
  discover,
  MANDATE_TOKEN_TYPE as MANDATE_TYPE,
  newAgentKey,
  TOKEN_EXCHANGE,
  tokenRequest,
} from "../helpers/agents.ts";
import { type OAuthServer, startOAuthServer } from "../helpers/oauth-server.ts";

type MandateInit = Exclude<MessageInitShape<typeof MandateSchema>, Mandate>;

const SCOPES = ["a.read", "a.write", "b.read", "b.write"];
const RESOURCES = ["https://r1.example/", "https://r2.example/", "https://r3.example/"];
/** A resource no agent may target: requesting it always widens. */
const OTHER = "https://other.example/";
const ACTIONS = ["read", "write", "delete"];
const PRINCIPAL = "prop-human";

interface Agent {
  name: "A" | "B" | "C";
  clientId: string;
  secret: string;
  jkt: string;
  dpop: oauth.DPoPHandle;
}

/** What the test knows of a mandate (from GetMandate; immutable but for its state). */
interface Bound {
  id: string;
  parentId: string;
  agent: string;
  scopes: string[];
  resources: string[];
  details: AuthorizationDetail[];
  expiresAt: number;
  maxTtlMs: number | null;
  depth: number;
  mayAct: string[];
}

interface Held {
  token: string;
  holder: Agent;
  mandateId: string;
}

let server: OAuthServer;
let as: oauth.AuthorizationServer;
let agents: Record<"A" | "B" | "C", Agent>;
const ownTokens = new Map<string, string>();
const bounds = new Map<string, Bound>();

async function newAgent(name: Agent["name"]): Promise<Agent> {
  const { keys, jkt } = await newAgentKey();
  const { clientId, clientSecret } = await server.register({
    kind: ClientKind.AGENT,
    clientName: `Property agent ${name}`,
    owner: PRINCIPAL,
    dpopJkt: jkt,
    scope: SCOPES.join(" "),
    resources: RESOURCES,
    grantTypes: ["client_credentials", TOKEN_EXCHANGE],
  });
  return { name, clientId, secret: clientSecret, jkt, dpop: oauth.DPoP({}, keys) };
}

function post(agent: Agent, grantType: string, body: URLSearchParams): Promise<Response> {
  return tokenRequest({ as }, agent, grantType, body);
}

async function ownToken(agent: Agent): Promise<string> {
  const cached = ownTokens.get(agent.clientId);
  if (cached) return cached;
  const response = await post(agent, "client_credentials", new URLSearchParams({ scope: "a.read" }));
  const token = ((await response.json()) as { access_token: string }).access_token;
  ownTokens.set(agent.clientId, token);
  return token;
}

async function boundOf(id: string): Promise<Bound> {
  const known = bounds.get(id);
  if (known) return known;
  const { mandate } = await server.issue.getMandate({ tenant: "demo", mandateId: id });
  if (!mandate) throw new Error(`no mandate ${id}`);
  const bound: Bound = {
    id,
    parentId: mandate.parentMandateId,
    agent: mandate.agent?.id as string,
    scopes: mandate.scopes,
    resources: mandate.resources,
    details: mandate.authorizationDetails as unknown as AuthorizationDetail[],
    expiresAt: timestampMs(mandate.expireTime as NonNullable<typeof mandate.expireTime>),
    maxTtlMs: mandate.maxTokenLifetime ? durationMs(mandate.maxTokenLifetime) : null,
    depth: mandate.maxDelegationDepth,
    mayAct: mandate.mayAct,
  };
  bounds.set(id, bound);
  return bound;
}

/** The mandate and its parents, root first. */
async function chainOf(id: string): Promise<Bound[]> {
  const chain: Bound[] = [];
  for (let next = id; next; ) {
    const bound = await boundOf(next);
    chain.unshift(bound);
    next = bound.parentId;
  }
  return chain;
}

function claimsOf(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split(".")[1] as string, "base64url").toString());
}

/** The act chain's subjects, innermost (oldest) first. */
function actAgents(act: unknown): string[] {
  const agentsOut: string[] = [];
  for (let current = act as Record<string, unknown> | undefined; current; ) {
    agentsOut.unshift(current.sub as string);
    current = current.act as Record<string, unknown> | undefined;
  }
  return agentsOut;
}

// --- Arbitraries ------------------------------------------------------------------------------------

const subsetOf = <T>(values: readonly T[], minLength = 1) =>
  fc.subarray([...values], { minLength }).map((picked) => values.filter((v) => picked.includes(v)));

const payment = (max: number) => ({ type: "payment_initiation", max_amount: max, currency: "EUR" });
const dataAccess = (actions: string[]) => ({ type: "data_access", actions });

const rootArb = fc.record({
  scopes: subsetOf(SCOPES),
  resources: subsetOf(RESOURCES),
  paymentMax: fc.option(fc.integer({ min: 10, max: 1000 }), { nil: undefined }),
  actions: fc.option(subsetOf(ACTIONS), { nil: undefined }),
  depth: fc.integer({ min: 0, max: 2 }),
  mayAct: fc.constantFrom<Array<"B" | "C">>([], ["B"], ["B", "C"]),
  ttlSeconds: fc.option(fc.integer({ min: 30, max: 600 }), { nil: undefined }),
});

/**
 * A request relative to the bound it is made under: which of the bound's scopes, resources and
 * authorization details to keep (and how much lower a max_ amount, which actions), and at times one
 * dimension widened on purpose — so most requests are valid and reach deep chains, and every
 * widening is known by construction.
 */
const requestArb = fc.record({
  scopeMask: fc.option(fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), { nil: undefined }),
  resourceMask: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
  details: fc.constantFrom("default", "narrow", "none"),
  amountFactor: fc.double({ min: 0.01, max: 1, noNaN: true }),
  actionMask: fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }),
  widen: fc.oneof(
    { arbitrary: fc.constant(undefined), weight: 4 },
    { arbitrary: fc.constantFrom("scopes", "resources", "authorization_details"), weight: 1 },
  ),
});
type RequestPlan = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

const opArb = fc.record({
  kind: fc.constantFrom("exchange", "reexchange", "subdelegate", "subdelegate"),
  pick: fc.nat(),
  /** Which of the two other agents receives a sub-delegation. */
  to: fc.nat(),
  request: requestArb,
});

/** Keeps the values whose mask bit is set (the mask read cyclically); at least the first. */
function masked<T>(values: readonly T[], mask: readonly boolean[]): T[] {
  const kept = values.filter((_, i) => mask[i % mask.length]);
  return kept.length > 0 || values.length === 0 ? kept : [values[0] as T];
}

/** The concrete request under `bound`, and the dimension it widens (if it could). */
function concrete(plan: RequestPlan, bound: Bound): { request: Request; widens: string | undefined } {
  const scope = plan.scopeMask ? masked(bound.scopes, plan.scopeMask) : undefined;
  const resources = masked(bound.resources, plan.resourceMask);
  let details: AuthorizationDetail[] | undefined;
  if (plan.details === "none") details = [];
  if (plan.details === "narrow") {
    details = bound.details.map((d) =>
      d.type === "payment_initiation"
        ? payment(Math.max(1, Math.floor((d.max_amount as number) * plan.amountFactor)))
        : dataAccess(masked(d.actions as string[], plan.actionMask)),
    );
  }
  const request: Request = { scope, resources, details };
  let widens: string | undefined;
  if (plan.widen === "scopes") {
    const outside = SCOPES.find((s) => !bound.scopes.includes(s));
    if (outside) {
      request.scope = [...(scope ?? bound.scopes), outside];
      widens = "scopes";
    }
  } else if (plan.widen === "resources") {
    request.resources = [...resources, OTHER];
    widens = "resources";
  } else if (plan.widen === "authorization_details") {
    const paid = bound.details.find((d) => d.type === "payment_initiation");
    const wider = paid ? payment((paid.max_amount as number) + 1) : { type: "account_information" };
    request.details = [...(details ?? bound.details), wider];
    widens = "authorization_details";
  }
  return { request, widens };
}

type Request = { scope: string[] | undefined; resources: string[]; details: AuthorizationDetail[] | undefined };

function asBounds(bound: Bound): MandateBounds {
  return {
    scopes: bound.scopes,
    resources: bound.resources,
    authorizationDetails: bound.details,
    notBefore: 0,
    expiresAt: bound.expiresAt,
    maxTokenTtlMs: bound.maxTtlMs,
    usageLimits: [],
    maxDelegationDepth: bound.depth,
    mayAct: bound.mayAct,
  };
}

const ERRORS: Record<string, string> = {
  scopes: "invalid_scope",
  resources: "invalid_target",
  authorization_details: "invalid_authorization_details",
};

/** The error the server must answer for a request widening `widens` (known by construction), or undefined. */
function expectedWidening(request: Request, bound: Bound, widens: string | undefined): string | undefined {
  // The construction agrees with the narrowing rules (narrowing.ts) on what widens.
  const widening = grantWidening(
    {
      scopes: request.scope ?? bound.scopes,
      resources: request.resources.length ? request.resources : bound.resources,
      authorizationDetails: request.details ?? bound.details,
      at: Date.now(),
    },
    asBounds(bound),
  );
  expect(widening?.dimension, JSON.stringify({ request, bound })).toBe(widens);
  return widens ? ERRORS[widens] : undefined;
}

function requestBody(request: Request, base: Record<string, string>): URLSearchParams {
  const body = new URLSearchParams(base);
  if (request.scope) body.set("scope", request.scope.join(" "));
  for (const resource of request.resources) body.append("resource", resource);
  if (request.details) body.set("authorization_details", JSON.stringify(request.details));
  return body;
}

/** Every dimension of the issued token within its mandate chain and within the request. */
async function checkToken(token: string, holder: Agent, request: Request): Promise<string> {
  const claims = claimsOf(token);
  const mandateId = claims.mandate_id as string;
  const chain = await chainOf(mandateId);
  const mandate = chain.at(-1) as Bound;
  const scope = ((claims.scope as string | undefined) ?? "").split(" ").filter(Boolean);
  const aud = typeof claims.aud === "string" ? [claims.aud] : (claims.aud as string[]);
  const details = (claims.authorization_details as AuthorizationDetail[] | undefined) ?? [];
  expect(claims.sub).toBe(PRINCIPAL);
  expect(claims.client_id).toBe(holder.clientId);
  expect(mandate.agent).toBe(holder.clientId);
  expect((claims.cnf as { jkt: string }).jkt).toBe(holder.jkt);
  // Within the mandate, every dimension (narrowing.ts' rules for details), and within the request.
  const iat = claims.iat as number;
  expect(
    grantWidening({ scopes: scope, resources: aud, authorizationDetails: details, at: iat * 1000 }, asBounds(mandate)),
  ).toBe(undefined);
  if (request.scope) expect(request.scope).toEqual(expect.arrayContaining(scope));
  if (request.resources.length) expect(request.resources).toEqual(expect.arrayContaining(aud));
  const exp = claims.exp as number;
  for (const link of chain) {
    expect(exp * 1000).toBeLessThanOrEqual(link.expiresAt);
    if (link.maxTtlMs !== null) expect((exp - iat) * 1000).toBeLessThanOrEqual(link.maxTtlMs);
  }
  expect(exp - iat).toBeLessThanOrEqual(300);
  // Depth: each sub-mandate allows at least one hop less than its parent.
  for (let i = 1; i < chain.length; i++) {
    expect((chain[i] as Bound).depth).toBeLessThanOrEqual((chain[i - 1] as Bound).depth - 1);
  }
  // act: the mandate chain's agents, root first = innermost first.
  expect(actAgents(claims.act)).toEqual(chain.map((link) => link.agent));
  return mandateId;
}

beforeAll(async () => {
  server = await startOAuthServer();
  ({ as } = await discover(server.issuer));
  agents = { A: await newAgent("A"), B: await newAgent("B"), C: await newAgent("C") };
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

type Root = typeof rootArb extends fc.Arbitrary<infer T> ? T : never;
type Op = typeof opArb extends fc.Arbitrary<infer T> ? T : never;

/** A root mandate from the human to agent A. */
async function grantRoot(root: Root): Promise<string> {
  const details = [
    ...(root.paymentMax !== undefined ? [payment(root.paymentMax)] : []),
    ...(root.actions ? [dataAccess(root.actions)] : []),
  ];
  const init: MandateInit = {
    principal: { id: PRINCIPAL, kind: PartyKind.HUMAN },
    agent: { id: agents.A.clientId, kind: PartyKind.AGENT },
    scopes: root.scopes,
    resources: root.resources,
    authorizationDetails: details,
    expireTime: timestampFromMs(Date.now() + 86_400_000),
    ...(root.ttlSeconds ? { maxTokenLifetime: durationFromMs(root.ttlSeconds * 1000) } : {}),
    maxDelegationDepth: root.depth,
    mayAct: root.mayAct.map((name) => agents[name].clientId),
  };
  return (await server.issue.createMandate({ tenant: "demo", mandate: init })).mandate?.id as string;
}

interface Answer {
  access_token: string;
  mandate_id: string;
  error?: string;
}

/** The answer, refused with `expected` when given, else granted: its body, or undefined when refused. */
async function answered(response: Response, expected: string | undefined, why: unknown): Promise<Answer | undefined> {
  const body = (await response.json()) as Answer;
  if (expected) {
    expect(body.error, JSON.stringify(why)).toBe(expected);
    return undefined;
  }
  expect(response.status, JSON.stringify({ why, body })).toBe(200);
  return body;
}

/** One random operation on the tokens held so far (each granted token joins them). */
async function step(op: Op, held: Held[], rootId: string): Promise<void> {
  if (op.kind === "exchange" || held.length === 0) {
    const bound = await boundOf(rootId);
    const { request, widens } = concrete(op.request, bound);
    const body = requestBody(request, { subject_token: rootId, subject_token_type: MANDATE_TYPE });
    const expected = expectedWidening(request, bound, widens);
    const answer = await answered(await post(agents.A, TOKEN_EXCHANGE, body), expected, {
      request,
      bound,
    });
    if (answer) {
      const mandateId = await checkToken(answer.access_token, agents.A, request);
      held.push({ token: answer.access_token, holder: agents.A, mandateId });
    }
    return;
  }
  const subject = held[op.pick % held.length] as Held;
  const bound = await boundOf(subject.mandateId);
  const { request, widens } = concrete(op.request, bound);
  const base = { subject_token: subject.token, subject_token_type: ACCESS_TYPE };
  if (op.kind === "reexchange") {
    const body = requestBody(request, base);
    const expected = expectedWidening(request, bound, widens);
    const answer = await answered(await post(subject.holder, TOKEN_EXCHANGE, body), expected, { request, bound });
    if (answer) {
      const mandateId = await checkToken(answer.access_token, subject.holder, request);
      expect(mandateId).toBe(subject.mandateId);
      held.push({ token: answer.access_token, holder: subject.holder, mandateId });
    }
    return;
  }
  const others = Object.values(agents).filter((agent) => agent.clientId !== subject.holder.clientId);
  await subDelegation(subject, bound, others[op.to % others.length] as Agent, { request, widens }, held);
}

/** The holder of `subject` sub-delegates to `to`: refused past the depth or outside may_act, or widening. */
async function subDelegation(
  subject: Held,
  bound: Bound,
  to: Agent,
  { request, widens }: { request: Request; widens: string | undefined },
  held: Held[],
): Promise<void> {
  const body = requestBody(request, {
    subject_token: subject.token,
    subject_token_type: ACCESS_TYPE,
    actor_token: await ownToken(to),
    actor_token_type: ACCESS_TYPE,
  });
  const notForThem = bound.depth < 1 || (bound.mayAct.length > 0 && !bound.mayAct.includes(to.clientId));
  const widening = expectedWidening(request, bound, widens);
  const expected = notForThem ? "invalid_request" : widening;
  const answer = await answered(await post(subject.holder, TOKEN_EXCHANGE, body), expected, {
    request,
    bound,
    to: to.name,
  });
  if (!answer) return;
  const mandateId = await checkToken(answer.access_token, to, request);
  expect(mandateId).toBe(answer.mandate_id);
  expect((await boundOf(mandateId)).parentId).toBe(subject.mandateId);
  held.push({ token: answer.access_token, holder: to, mandateId });
}

describe("token exchange never widens a mandate, and its act chain is the mandate chain", () => {
  it("random mandates, exchanges, re-exchanges and sub-delegations", async () => {
    await fc.assert(
      fc.asyncProperty(rootArb, fc.array(opArb, { minLength: 1, maxLength: 6 }), async (root, ops) => {
        const rootId = await grantRoot(root);
        const held: Held[] = [];
        for (const op of ops) await step(op, held, rootId);
      }),
      { numRuns: Number(process.env.PROP_RUNS ?? 40), endOnFailure: true },
    );
  }, 60_000);
});
