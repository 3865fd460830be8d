// Token exchange of mandates (RFC 8693), shared by the token endpoint (grant_type
// urn:ietf:params:oauth:grant-type:token-exchange, oauth/grants/token-exchange.ts) and
// Issue.ExchangeToken: one implementation, the transports only translate.
//
// The subject (RFC 8693 §2.1 subject_token / subject_token_type) names a mandate the authenticated
// client is the agent of:
//   · urn:mandate:params:oauth:token-type:mandate — subject_token is the mandate id;
//   · urn:ietf:params:oauth:token-type:access_token, a token exchanged from a mandate (it carries
//     mandate_id) — re-exchanged, narrowed again (another audience...), or, with an actor_token,
//     sub-delegated;
//   · urn:ietf:params:oauth:token-type:access_token, the human's own token (its sub is the mandate's
//     principal), with the mandate_id parameter naming the mandate.
// Access tokens are verified (signature by the tenant's keys, issuer, lifetime, revocation) by the
// shared TokenInspector.
//
// Refusals (RFC 8693 §2.2.2, refusal.ts): a subject or actor token that is invalid for any reason
// (not this tenant's, expired, revoked) or unacceptable by policy, and a mandate that cannot issue
// (revoked, expired, not yet valid, exhausted, another agent's, may_act, depth) are invalid_request
// with the condition named; a widening is invalid_scope, invalid_target or
// invalid_authorization_details, naming the dimension. The checks shared with the refresh_token
// grant of a mandate's family (refreshUnderMandate) refuse there with invalid_grant (RFC 6749 §5.2).
//
// The issued access token: sub = the human, act = the agents of the mandate chain, newest outermost
// (RFC 8693 §4.1), client_id = the agent, mandate_id, aud from resource/audience (⊆ the mandate's
// resources, default all of them), scope ⊆ the mandate's (default all), authorization_details ⊆
// the mandate's (RFC 9396; default all), exp ≤ the mandate's expiry, its max_token_ttl and the
// agent's access-token lifetime, cnf.jkt of the agent's DPoP key (a proof by the registered key is
// required of an agent registered with dpop_jkt, checked by the transports).
//
// Sub-delegation (an actor_token: the sub-agent B's own access token): a sub-mandate of the
// subject's mandate for B (checkedMandate/recordMandate of grant.ts: depth one less, B named by
// may_act, every dimension from the request narrowed from the parent) and a token for B: act =
// {sub: B, act: {sub: A}}, client_id = B, mandate_id = the sub-mandate, cnf.jkt = B's key (its
// token's cnf, else its registered dpop_jkt). The response names the new mandate (`mandate_id`).
//
// Counting: a usage limit on the meter `tokens` (TOKENS_METER) of the mandate or any mandate above
// it counts one per issued token (idempotency key: its jti). Issuance is one transaction: the
// mandate chain locked (as grant.ts locks it) and checked active — a revocation committing
// concurrently is either seen here or waits for this to commit —, the sub-mandate, the `tokens`
// consumption, a refresh-token family, and one token.exchanged.v1 audit event with the whole
// actor chain. An agent registered for refresh_token whose token is DPoP-bound also gets a refresh
// token, bound to the key and to the mandate (oauth/grants/refresh-token.ts refuses it once the
// mandate or a parent is revoked, expired or exhausted).
import { randomUUID } from "node:crypto";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { PartyKind } from "../../../gen/mandate/v1/common_pb.js";
import { MandateSchema } from "../../../gen/mandate/v1/issue_pb.js";
import { type Actor, tokenExchanged } from "../../shared/audit-events.ts";
import {
  currentState,
  type MandateRecord,
  MandateStore,
  type StoredState,
} from "../../shared/mandates/mandate-store.ts";
import { type Counter, limitsMeter, UsageCounters } from "../../shared/mandates/usage.ts";
import type { AccessTokenClaims } from "../../shared/oauth/access-token.ts";
import { type GrantRow, GrantStore } from "../../shared/oauth/grant-store.ts";
import { handleHash, opaqueHandle } from "../../shared/oauth/handles.ts";
import type { TenantTransaction } from "../../shared/store/store.ts";
import type { RegisteredClient } from "../clients/metadata.ts";
import {
  InvalidAuthorizationDetails,
  InvalidDpopProof,
  InvalidGrant,
  InvalidRequest,
  InvalidScope,
  InvalidTarget,
  type OAuthError,
} from "../oauth/errors.ts";
import { boundCertificate, identityProof } from "../oauth/grants/grant.ts";
import { mintAccessToken } from "../oauth/minting.ts";
import { parseResources, requirePermittedResources } from "../oauth/rfc8707.ts";
import { grantableScopes } from "../oauth/scopes.ts";
import {
  ACCESS_TOKEN_TYPE,
  type ExchangeContext,
  type ExchangeRequest,
  type ExchangeResponse,
  MANDATE_TOKEN_TYPE,
  requireWellFormed,
} from "./exchange-request.ts";
import { checkedMandate, type MandateDeps, recordMandate } from "./grant.ts";
import { countToken, IssuanceBatcher, TOKENS_METER } from "./issuance-batch.ts";
import { type AuthorizationDetail, type Dimension, grantWidening, oauthErrorOf } from "./narrowing.ts";
import { PrincipalAccounts } from "./principal-account.ts";
import { type Condition, exchangeRefusal, isCondition, type Refuse, refreshRefusal } from "./refusal.ts";

/** The mandate an exchange acts under, and what the subject token said about it. */
interface Subject {
  mandate: MandateRecord;
  /** The verified subject access token; absent for a mandate-id subject. */
  claims?: AccessTokenClaims;
}

/** The sub-agent of a sub-delegation: its client, and the key its token is bound to. */
interface SubAgent {
  client: RegisteredClient;
  jkt: string | undefined;
  /** The certificate its own token is bound to (RFC 8705), when no key binds it. */
  x5tS256: string | undefined;
}

/** Everything decided before the issuing transaction. */
interface Plan {
  /** The chain of the token's mandate, root first, as read before the transaction. */
  chain: MandateRecord[];
  /** A sub-mandate to record with the token (sub-delegation). */
  subMandate: MandateRecord | undefined;
  /** Who holds the token: the client, or the sub-agent. */
  holder: RegisteredClient;
  jkt: string | undefined;
  /** RFC 8705 §3.1: the certificate the token is bound to when no DPoP key binds it. */
  x5tS256: string | undefined;
  scope: string[];
  audience: string[];
  details: AuthorizationDetail[];
  ttlMs: number;
}

export async function exchangeToken(context: ExchangeContext, request: ExchangeRequest): Promise<ExchangeResponse> {
  requireWellFormed(request);
  const subject = await subjectOf(context, request);
  const parentChain = await usableChain(context, subject.mandate, exchangeRefusal);
  const subAgent = request.actorToken ? await subAgentOf(context, request, subject) : undefined;
  const plan = subAgent
    ? await subDelegationPlan(context, request, subject, parentChain, subAgent)
    : await exchangePlan(context, request, subject, parentChain);
  return issue(context, request, plan);
}

/** The mandate the subject token names, once the client is shown to be its agent. */
async function subjectOf(context: ExchangeContext, request: ExchangeRequest): Promise<Subject> {
  if (request.subjectTokenType === MANDATE_TOKEN_TYPE) {
    requireSameMandate(request, request.subjectToken);
    const mandate = await mandateOf(context, request.subjectToken, exchangeRefusal);
    requireAgent(mandate, context.client);
    return { mandate };
  }
  if (request.subjectTokenType !== ACCESS_TOKEN_TYPE) {
    throw new InvalidRequest(
      `subject_token_type "${request.subjectTokenType}" is not supported: use ${MANDATE_TOKEN_TYPE} (a mandate id) or ${ACCESS_TOKEN_TYPE}`,
    );
  }
  const claims = await verifiedToken(context, request.subjectToken, "subject token");
  return claims.mandate_id !== undefined
    ? mandateTokenSubject(context, request, claims)
    : humanTokenSubject(context, request, claims);
}

function requireSameMandate(request: ExchangeRequest, mandateId: string): void {
  if (request.mandateId && request.mandateId !== mandateId) {
    throw new InvalidRequest("mandate_id differs from the mandate of the subject token");
  }
}

/** A token exchanged from a mandate: re-exchanged or sub-delegated by the agent it was issued to. */
async function mandateTokenSubject(
  context: ExchangeContext,
  request: ExchangeRequest,
  claims: AccessTokenClaims,
): Promise<Subject> {
  const mandateId = String(claims.mandate_id);
  requireSameMandate(request, mandateId);
  if (claims.client_id !== context.client.clientId) {
    throw exchangeRefusal(
      "other_client",
      "the subject token was issued to another client: only its agent may exchange it",
      "subject_token",
    );
  }
  // RFC 9449: a token bound to a key is used only with a proof of that key.
  const bound = claims.cnf?.jkt;
  if (bound && context.dpop?.jkt !== bound) {
    throw new InvalidDpopProof(
      `the subject token is bound to a DPoP key (thumbprint ${bound}): send a DPoP proof signed by that key`,
    );
  }
  // RFC 8705 §3: a certificate-bound token is used only over mutual TLS with that certificate.
  const boundTo = certificateOf(claims);
  if (boundTo && context.certificate?.x5tS256 !== boundTo) {
    throw exchangeRefusal(
      "key_mismatch",
      "the subject token is bound to a client certificate (cnf.x5t#S256): present that certificate",
      "subject_token",
    );
  }
  const mandate = await mandateOf(context, mandateId, exchangeRefusal);
  requireAgent(mandate, context.client);
  if (claims.sub !== mandate.principal) {
    throw exchangeRefusal(
      "other_principal",
      "the subject token does not act for the mandate's principal",
      "subject_token",
    );
  }
  return { mandate, claims };
}

/** The human's own token, with the mandate named alongside (the mandate_id parameter). */
async function humanTokenSubject(
  context: ExchangeContext,
  request: ExchangeRequest,
  claims: AccessTokenClaims,
): Promise<Subject> {
  if (!request.mandateId) {
    throw new InvalidRequest(
      "an access token without mandate_id is exchanged under a mandate: send the mandate_id parameter naming it",
    );
  }
  if (claims.act !== undefined) {
    throw exchangeRefusal(
      "delegated_token",
      "the subject token is itself delegated (act): only the human's own token or a mandate's",
      "subject_token",
    );
  }
  const mandate = await mandateOf(context, request.mandateId, exchangeRefusal);
  requireAgent(mandate, context.client);
  if (claims.sub !== mandate.principal) {
    throw exchangeRefusal(
      "other_principal",
      `the subject token's sub is not the principal of mandate ${mandate.id}`,
      "subject_token",
    );
  }
  return { mandate, claims };
}

async function mandateOf(context: ExchangeContext, id: string, refuse: Refuse): Promise<MandateRecord> {
  const mandate = id.length <= 128 ? await runtimeOf(context).mandates.find(context, id) : undefined;
  if (!mandate) throw refuse("unknown_mandate", `no mandate "${id.slice(0, 128)}" in this tenant`);
  return mandate;
}

/** How long a mandate read stays in the cache (its state is re-checked when the token is recorded). */
const MANDATE_CACHE_MS = 30_000;
const MANDATE_CACHE_MAX = 10_000;

/**
 * Mandates as last read, briefly: a granted mandate never changes but for its state (revocation),
 * and every issuance re-reads the states of its chain in the transaction that records it. A stale
 * "active" costs a signature that is then refused; it never lets a token out.
 */
class MandateCache {
  readonly #entries = new Map<string, { mandate: MandateRecord; until: number }>();
  /** Mandates whose lifetime `tokens` limit was found used up: for good, as usage only grows. */
  readonly #spent = new Set<string>();

  spent(context: ExchangeContext, id: string): boolean {
    return this.#spent.has(`${context.urls.tenant}\n${id}`);
  }

  markSpent(context: ExchangeContext, id: string): void {
    if (this.#spent.size >= MANDATE_CACHE_MAX) this.#spent.clear();
    this.#spent.add(`${context.urls.tenant}\n${id}`);
  }

  async find(context: ExchangeContext, id: string): Promise<MandateRecord | undefined> {
    const key = `${context.urls.tenant}\n${id}`;
    const now = context.services.clock.now();
    const hit = this.#entries.get(key);
    if (hit && hit.until > now) return hit.mandate;
    const mandate = await store(context).use(MandateStore).find(id);
    if (!mandate) return undefined;
    if (this.#entries.size >= MANDATE_CACHE_MAX) this.#entries.clear();
    this.#entries.set(key, { mandate, until: now + MANDATE_CACHE_MS });
    return mandate;
  }
}

/** Per store (one per process): the issuance batcher, the mandate cache, the principals' account answers. */
interface Runtime {
  batcher: IssuanceBatcher;
  mandates: MandateCache;
  accounts: PrincipalAccounts;
}
const runtimes = new WeakMap<object, Runtime>();

function runtimeOf(context: ExchangeContext): Runtime {
  const { store: db } = context.services;
  let runtime = runtimes.get(db);
  if (!runtime) {
    runtime = { batcher: new IssuanceBatcher(db), mandates: new MandateCache(), accounts: new PrincipalAccounts() };
    runtimes.set(db, runtime);
  }
  return runtime;
}

function requireAgent(mandate: MandateRecord, client: RegisteredClient): void {
  if (mandate.agent !== client.clientId) {
    throw exchangeRefusal(
      "other_agent",
      `mandate ${mandate.id} was granted to another agent, not to this client`,
      `mandate:${mandate.id}`,
    );
  }
}

/** An access token of this tenant, verified (signature, issuer, lifetime, revocation). */
async function verifiedToken(
  context: ExchangeContext,
  token: string,
  what: "subject token" | "actor token",
): Promise<AccessTokenClaims> {
  const checked = await context.services.inspector.checkAccessToken(context.urls.tenant, token);
  if (checked.valid) return checked.claims;
  const why: Record<typeof checked.problem, [Condition, string]> = {
    wrong_issuer: ["wrong_issuer", `the ${what} was not issued by this tenant's issuer`],
    expired: ["expired", `the ${what} has expired`],
    revoked: ["revoked", `the ${what} has been revoked`],
    invalid: ["invalid_token", `the ${what} is not a valid access token of this issuer: ${checked.message}`],
  };
  const [condition, description] = why[checked.problem];
  throw exchangeRefusal(condition, description, what.replace(" ", "_"));
}

/**
 * The mandate's chain, root first, when every mandate of it can issue a token now: active (not
 * revoked), valid (not before its not_before, before its expiry) and not exhausted.
 */
async function usableChain(context: ExchangeContext, mandate: MandateRecord, refuse: Refuse): Promise<MandateRecord[]> {
  const mandates = store(context).use(MandateStore);
  // A root mandate is its own chain: no query (the common case, and the hot path).
  const chain = mandate.parentId === null ? [mandate] : ((await mandates.chain(mandate.id)) ?? [mandate]);
  // Exhaustion is computed from lifetime limits: read only when the chain has some on a meter other
  // than `tokens`. A `tokens` limit needs no read: the issuing transaction counts the token and
  // refuses it past the limit, atomically (countToken); a mandate found used up so is remembered
  // (spentTokens) and refused here from then on, before anything is signed.
  const limited = chain.some((link) =>
    link.usageLimits.some((limit) => limit.periodMs === 0 && limit.meter !== TOKENS_METER),
  );
  const usage = limited ? await mandates.lifetimeUsage(chain.map((m) => m.id)) : spentTokens(context, chain);
  for (const link of [...chain].reverse()) requireUsable(link, mandate, context.now, usage.get(link.id), refuse);
  const { services } = context;
  await runtimeOf(context).accounts.requireAccount(
    { store: services.store, clock: services.clock, identity: services.identity, revocations: services.inspector },
    context.urls.tenant,
    chain,
    refuse,
  );
  return chain;
}

/** The lifetime `tokens` usage of the chain's mandates known to be used up (past any maximum). */
function spentTokens(context: ExchangeContext, chain: readonly MandateRecord[]): Map<string, Map<string, number>> {
  const { mandates } = runtimeOf(context);
  const usage = new Map<string, Map<string, number>>();
  for (const link of chain) {
    if (mandates.spent(context, link.id)) usage.set(link.id, new Map([[TOKENS_METER, Number.POSITIVE_INFINITY]]));
  }
  return usage;
}

/** Remembers a mandate whose lifetime `tokens` limit a count found used up (countToken's `spent`). */
function spentCallback(context: ExchangeContext): (mandateId: string) => void {
  const { mandates } = runtimeOf(context);
  return (mandateId) => mandates.markSpent(context, mandateId);
}

/**
 * The chain's stored states read again in the issuing transaction, in one query, root first —
 * locked FOR SHARE on PostgreSQL in that order (ORDER BY applies before the lock), as
 * MandateStore.chain locks them: a revocation committed since the first read is seen; one starting
 * now waits for the issuance to commit. SQLite runs one writer at a time.
 */
async function lockedChain(
  context: ExchangeContext,
  tx: TenantTransaction,
  chain: readonly MandateRecord[],
): Promise<MandateRecord[]> {
  let query = tx
    .selectFrom("mandates")
    .select(["id", "state"])
    .where("tenant_id", "=", context.urls.tenant)
    .where(
      "id",
      "in",
      chain.map((link) => link.id),
    )
    .orderBy("depth");
  if (context.services.store.engine === "postgres") query = query.forShare();
  const states = new Map((await query.execute()).map((row) => [row.id, row.state as StoredState]));
  return chain.flatMap((link) => {
    const state = states.get(link.id);
    return state === undefined ? [] : [{ ...link, state }];
  });
}

function requireUsable(
  link: MandateRecord,
  mandate: MandateRecord,
  now: number,
  used: ReadonlyMap<string, number> | undefined,
  refuse: Refuse,
): void {
  const which = link.id === mandate.id ? `mandate ${link.id}` : `mandate ${mandate.id}'s parent mandate ${link.id}`;
  const subject = `mandate:${link.id}`;
  const state = currentState(link, now, used);
  if (state === "revoked") throw refuse("revoked", `${which} has been revoked`, subject);
  if (state === "expired") throw refuse("expired", `${which} expired at ${iso(link.expiresAt)}`, subject);
  if (state === "exhausted") {
    const limit = link.usageLimits.find((l) => l.periodMs === 0 && (used?.get(l.meter) ?? 0) >= l.maximum);
    throw refuse(
      "exhausted",
      `${which} is exhausted: usage limit reached (${limit?.maximum} ${limit?.meter} in all)`,
      subject,
    );
  }
  if (state !== "active") throw refuse(state, `${which} is ${state}`, subject);
  if (now < link.notBefore) {
    throw refuse("not_yet_valid", `${which} is not valid before ${iso(link.notBefore)}`, subject);
  }
  if (link.expiresAt - now < 1000) throw refuse("expired", `${which} expires within a second`, subject);
}

/** A plain exchange: the client's token under the subject's mandate, narrowed as requested. */
async function exchangePlan(
  context: ExchangeContext,
  request: ExchangeRequest,
  subject: Subject,
  chain: MandateRecord[],
): Promise<Plan> {
  const { mandate } = subject;
  requireMayAct(subject, context.client.clientId);
  const narrowed = narrowedRequest(request, mandate, context.now, "mandate");
  await requireHolderMay(context, context.client, narrowed.scope, narrowed.audience);
  return {
    chain,
    subMandate: undefined,
    holder: context.client,
    jkt: context.dpop?.jkt,
    x5tS256: boundCertificate(context),
    ...narrowed,
    ttlMs: tokenTtl(context, context.client, chain),
  };
}

/** RFC 8693 §4.4: a subject token that names who may act accepts no one else. */
function requireMayAct(subject: Subject, actor: string): void {
  const mayAct = subject.claims?.may_act;
  if (mayAct === undefined) return;
  const named = typeof mayAct === "object" && mayAct !== null ? (mayAct as Record<string, unknown>).sub : undefined;
  if (named !== actor) {
    throw exchangeRefusal(
      "may_act",
      `may_act: the subject token's may_act does not name "${actor}" (RFC 8693 §4.4)`,
      "subject_token",
    );
  }
}

/** The scope, audience and authorization details requested, each within `bound` (the mandate). */
function narrowedRequest(
  request: ExchangeRequest,
  bound: MandateRecord,
  now: number,
  boundName: string,
): { scope: string[]; audience: string[]; details: AuthorizationDetail[] } {
  const requested = [...request.resources, ...request.audiences];
  const audience = requested.length > 0 ? parseResources(requested) : [...bound.resources];
  const scope = request.scope ?? [...bound.scopes];
  const details = request.authorizationDetails ?? [...bound.authorizationDetails];
  const widening = grantWidening({ scopes: scope, resources: audience, authorizationDetails: details, at: now }, bound);
  if (widening) throw narrowingError(widening.dimension, widening.field, widening.message, boundName);
  return { scope, audience, details };
}

/** An OAuth error naming the widened dimension (narrowing.ts `oauthErrorOf`). */
function narrowingError(dimension: Dimension, field: string, message: string, boundName: string): OAuthError {
  const description = `${dimension}: ${message.replace("the bound's", `the ${boundName}'s`).replace("by the bound", `by the ${boundName}`)} (${field})`;
  switch (oauthErrorOf(dimension)) {
    case "invalid_scope":
      return new InvalidScope(description);
    case "invalid_target":
      return new InvalidTarget(description);
    case "invalid_authorization_details":
      return new InvalidAuthorizationDetails(description);
    default:
      // Validity: the mandate cannot issue now (RFC 8693 §2.2.2, an unacceptable subject).
      if (dimension === "not_before") return exchangeRefusal("not_yet_valid", description);
      if (dimension === "expires_at") return exchangeRefusal("expired", description);
      return new InvalidRequest(description);
  }
}

/** The token's holder may still hold these (an administrator may have narrowed its client since). */
async function requireHolderMay(
  context: ExchangeContext,
  holder: RegisteredClient,
  scope: string[],
  audience: string[],
): Promise<void> {
  try {
    grantableScopes(scope, holder.metadata.scope, false);
  } catch (error) {
    if (error instanceof InvalidScope) throw new InvalidScope(`scopes: ${error.message} (the agent's registration)`);
    throw error;
  }
  try {
    requirePermittedResources(audience, await context.services.resources.allowedFor(holder));
  } catch (error) {
    if (error instanceof InvalidTarget)
      throw new InvalidTarget(`resources: ${error.message} (the agent's registration)`);
    throw error;
  }
}

/** exp ≤ every mandate's expiry and max_token_ttl along the chain, and the holder's token lifetime. */
function tokenTtl(context: ExchangeContext, holder: RegisteredClient, chain: readonly MandateRecord[]): number {
  const own = holder.metadata.access_token_lifetime;
  let ttl = own !== undefined ? own * 1000 : context.services.config.oauth.accessTokenTtl;
  for (const mandate of chain) {
    ttl = Math.min(ttl, mandate.expiresAt - context.now);
    if (mandate.maxTokenTtlMs !== null) ttl = Math.min(ttl, mandate.maxTokenTtlMs);
  }
  return ttl;
}

/** The sub-agent of a sub-delegation, from its own access token (client credentials, this tenant). */
async function subAgentOf(context: ExchangeContext, request: ExchangeRequest, subject: Subject): Promise<SubAgent> {
  const claims = await verifiedToken(context, request.actorToken as string, "actor token");
  if (claims.sub !== claims.client_id || claims.mandate_id !== undefined || claims.act !== undefined) {
    throw exchangeRefusal(
      "not_client_credentials",
      "the actor token must be the sub-agent's own access token (client credentials)",
      "actor_token",
    );
  }
  const client = await context.services.clients.get(context.urls.tenant, claims.client_id);
  if (client?.metadata.kind !== "agent") {
    throw exchangeRefusal(
      "not_an_agent",
      `the actor token's client "${claims.client_id}" is not an agent of this tenant`,
      "actor_token",
    );
  }
  if (client.clientId === context.client.clientId) {
    throw exchangeRefusal(
      "own_token",
      "the actor token is the client's own: sub-delegation is to another agent",
      "actor_token",
    );
  }
  requireMayAct(subject, client.clientId);
  const registered = client.metadata.dpop_jkt;
  const presented = claims.cnf?.jkt;
  if (registered && presented && registered !== presented) {
    throw exchangeRefusal(
      "key_mismatch",
      "the actor token is bound to a key other than the sub-agent's registered one",
      "actor_token",
    );
  }
  const jkt = registered ?? presented;
  // Bound to the sub-agent's certificate as its own token is, when no key binds it.
  return { client, jkt, x5tS256: jkt ? undefined : certificateOf(claims) };
}

/** A sub-mandate of the subject's mandate for the sub-agent, narrowed as requested, and its token. */
async function subDelegationPlan(
  context: ExchangeContext,
  request: ExchangeRequest,
  subject: Subject,
  parentChain: MandateRecord[],
  subAgent: SubAgent,
): Promise<Plan> {
  const parent = subject.mandate;
  const agent = subAgent.client.clientId;
  if (parent.maxDelegationDepth < 1) {
    throw exchangeRefusal(
      "max_delegation_depth",
      `max_delegation_depth: mandate ${parent.id} allows no further delegation`,
      `mandate:${parent.id}`,
    );
  }
  if (parent.mayAct.length > 0 && !parent.mayAct.includes(agent)) {
    throw exchangeRefusal(
      "may_act",
      `may_act: mandate ${parent.id}'s may_act does not name the sub-agent "${agent}"`,
      `mandate:${parent.id}`,
    );
  }
  const narrowed = narrowedRequest(request, parent, context.now, "parent mandate");
  await requireHolderMay(context, subAgent.client, narrowed.scope, narrowed.audience);
  const input = create(MandateSchema, {
    principal: { id: parent.principal, kind: PartyKind.HUMAN },
    agent: { id: agent, kind: PartyKind.AGENT },
    parentMandateId: parent.id,
    scopes: narrowed.scope,
    resources: narrowed.audience,
    authorizationDetails: narrowed.details as unknown as JsonObject[],
    maxDelegationDepth: parent.maxDelegationDepth - 1,
  });
  const subMandate = await asOAuthError(() =>
    checkedMandate(mandateDeps(context), context.urls.tenant, input, delegatingActor(context, parent), {
      approvedBy: { client_id: context.client.clientId, parent_mandate_id: parent.id },
      method: "administrative",
      text: `sub-delegated by agent ${context.client.clientId} under mandate ${parent.id}`,
    }),
  );
  const chain = [...parentChain, subMandate];
  return {
    chain,
    subMandate,
    holder: subAgent.client,
    jkt: subAgent.jkt,
    x5tS256: subAgent.x5tS256,
    ...narrowed,
    ttlMs: tokenTtl(context, subAgent.client, chain),
  };
}

function mandateDeps(context: ExchangeContext): MandateDeps {
  const { store, clock, clients, resources, signing, config } = context.services;
  const deps = { store, clock, clients, resources, signing, config };
  return deps;
}

/** The agent that sub-delegates, as the recorded actor of the sub-mandate's grant. */
function delegatingActor(context: ExchangeContext, parent: MandateRecord): Actor {
  return {
    by: { client_id: context.client.clientId, parent_mandate_id: parent.id },
    parties: { client: { id: context.client.clientId, kind: "PARTY_KIND_AGENT" } },
  };
}

/** grant.ts speaks RPC (INVALID_ARGUMENT naming the field, FAILED_PRECONDITION...): the OAuth error for each. */
async function asOAuthError<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (!(error instanceof ConnectError)) throw error;
    if (error.code === Code.NotFound) throw exchangeRefusal("unknown_mandate", error.rawMessage);
    if (error.code !== Code.InvalidArgument) {
      // FAILED_PRECONDITION PARENT_MANDATE_<STATE>: the parent cannot issue (RFC 8693 §2.2.2).
      const state = (error.findDetails(ErrorInfoSchema)[0]?.reason ?? "").replace(/^PARENT_MANDATE_/, "").toLowerCase();
      throw exchangeRefusal(isCondition(state) ? state : "inactive", error.rawMessage);
    }
    const violation = error.findDetails(BadRequestSchema)[0]?.fieldViolations[0];
    const field = (violation?.field ?? "").replace(/^mandate\./, "");
    throw fieldError(field, `${field}: ${violation?.description ?? error.rawMessage}`, violation?.reason ?? "");
  }
}

/** The OAuth error for a refused field of a sub-mandate. */
function fieldError(field: string, description: string, reason: string): OAuthError {
  const dimension = field.replace(/[.[].*$/, "");
  if (dimension === "scopes") return new InvalidScope(description);
  if (dimension === "resources") return new InvalidTarget(description);
  if (dimension === "authorization_details") return new InvalidAuthorizationDetails(description);
  if (dimension === "may_act" || dimension === "max_delegation_depth") return exchangeRefusal(dimension, description);
  if (dimension === "agent")
    return exchangeRefusal(reason === "widening:may_act" ? "may_act" : "not_an_agent", description);
  return new InvalidRequest(description);
}

/** RFC 8693 §4.1: the newest actor outermost, each earlier one nested in its `act`. */
export function actClaim(agents: readonly string[]): Record<string, unknown> | undefined {
  let act: Record<string, unknown> | undefined;
  for (const agent of agents) act = act ? { sub: agent, act } : { sub: agent };
  return act;
}

/** Signs the token, then records it in one transaction with everything it depends on (see the header). */
async function issue(context: ExchangeContext, request: ExchangeRequest, plan: Plan): Promise<ExchangeResponse> {
  const { services, client, urls, now } = context;
  const mandate = plan.chain.at(-1) as MandateRecord;
  const agents = plan.chain.map((m) => m.agent);
  // Signed first (signing may need the store: on SQLite's one connection, not from inside the transaction).
  const token = await mintAccessToken(services.signing, {
    tenant: urls.tenant,
    issuer: urls.issuer,
    clientId: plan.holder.clientId,
    subject: mandate.principal,
    audience: plan.audience,
    scope: plan.scope,
    ttlMs: plan.ttlMs,
    now,
    jkt: plan.jkt,
    x5tS256: plan.x5tS256,
    act: actClaim(agents),
    mandateId: mandate.id,
    authorizationDetails: plan.details,
  });
  const refresh = refreshGrant(context, plan, mandate);
  const refreshToken = refresh ? opaqueHandle("mrt") : undefined;
  const exchanged = (counters: Counter[]) =>
    tokenExchanged({
      clientId: client.clientId,
      principal: mandate.principal,
      mandateId: mandate.id,
      chain: plan.chain.map((m) => m.id),
      actors: agents,
      subjectTokenType: request.subjectTokenType,
      actorTokenType: request.actorTokenType,
      subMandateGranted: plan.subMandate !== undefined,
      jti: token.jti,
      audience: plan.audience,
      scope: plan.scope,
      authorizationDetails: plan.details,
      jkt: plan.jkt,
      expiresAt: token.expiresAt,
      refreshGrantId: refresh?.id,
      counters,
      proof: identityProof(context),
    });
  if (!(plan.subMandate || refresh)) {
    // Nothing to write but the event and the count: committed in a batch that re-checks (and locks) the chain.
    const counted = limitsMeter(plan.chain, TOKENS_METER) ? token.jti : undefined;
    await runtimeOf(context).batcher.record(urls.tenant, {
      chain: plan.chain,
      event: exchanged,
      at: now,
      counted,
      refuse: exchangeRefusal,
      spent: spentCallback(context),
    });
  } else {
    const scoped = store(context);
    await scoped.transaction(async (tx) => {
      const chain = plan.subMandate
        ? await recordMandate(scoped, tx, plan.subMandate, delegatingActor(context, plan.chain.at(-2) as MandateRecord))
        : await lockedChain(context, tx, plan.chain);
      requireStillActive(chain, plan.chain, mandate, now, exchangeRefusal);
      const counters = await countToken(
        scoped.use(UsageCounters, tx),
        chain,
        token.jti,
        now,
        exchangeRefusal,
        spentCallback(context),
      );
      if (refresh && refreshToken) {
        const grants = scoped.use(GrantStore, tx);
        await grants.insertGrant(refresh, now);
        await grants.recordAccessToken(token.jti, refresh.id, token.expiresAt);
        await grants.insertRefreshToken(handleHash(refreshToken), refresh.id, now, refresh.expiresAt);
      }
      await scoped.recordEvent(tx, exchanged(counters), now);
    });
  }
  return {
    access_token: token.token,
    issued_token_type: ACCESS_TOKEN_TYPE,
    // RFC 9449 §5: DPoP when the token is bound to a key.
    token_type: plan.jkt ? "DPoP" : "Bearer",
    expires_in: token.expiresIn,
    ...(plan.scope.length ? { scope: plan.scope.join(" ") } : {}),
    ...(refreshToken ? { refresh_token: refreshToken } : {}),
    ...(plan.details.length ? { authorization_details: plan.details } : {}),
    mandate_id: mandate.id,
  };
}

/**
 * The chain as locked in the issuing transaction: still active and valid (a revocation that
 * committed after the first read is seen here; one that starts later waits for this to commit).
 */
export function requireStillActive(
  chain: readonly MandateRecord[],
  expected: readonly MandateRecord[],
  mandate: MandateRecord,
  now: number,
  refuse: Refuse,
): void {
  if (chain.length !== expected.length) {
    throw refuse("unknown_mandate", `mandate ${mandate.id} no longer exists`, `mandate:${mandate.id}`);
  }
  for (const link of [...chain].reverse()) {
    const which = link.id === mandate.id ? `mandate ${link.id}` : `mandate ${mandate.id}'s parent mandate ${link.id}`;
    const subject = `mandate:${link.id}`;
    if (link.state !== "active") throw refuse(link.state, `${which} has been ${link.state}`, subject);
    if (now >= link.expiresAt) throw refuse("expired", `${which} expired at ${iso(link.expiresAt)}`, subject);
  }
}

/** What a refresh of a token exchange's family needs of its mandate (oauth/grants/refresh-token.ts). */
export interface MandateRefresh {
  act: Record<string, unknown> | undefined;
  /** The chain's bound on the new access token's lifetime. */
  maxTtlMs: number;
  audit: { id: string; actors: readonly string[] };
  /** In the refresh's transaction: the chain locked and still active, one `tokens` counted. */
  recordWithin(tx: TenantTransaction, jti: string): Promise<void>;
}

/**
 * A family under mandate `mandateId` is refreshed only while the mandate and every mandate above it
 * can issue a token (invalid_grant otherwise: revoked, expired, not yet valid, exhausted), by the agent it was issued to.
 */
export async function refreshUnderMandate(
  context: ExchangeContext,
  grant: Pick<GrantRow, "clientId">,
  mandateId: string,
): Promise<MandateRefresh> {
  const mandate = await mandateOf(context, mandateId, refreshRefusal);
  if (mandate.agent !== grant.clientId) throw new InvalidGrant(`mandate ${mandate.id} was granted to another agent`);
  const chain = await usableChain(context, mandate, refreshRefusal);
  const agents = chain.map((m) => m.agent);
  const scoped = store(context);
  return {
    act: actClaim(agents),
    maxTtlMs: tokenTtl(context, context.client, chain),
    audit: { id: mandate.id, actors: agents },
    async recordWithin(tx, jti) {
      const locked = await lockedChain(context, tx, chain);
      requireStillActive(locked, chain, mandate, context.now, refreshRefusal);
      await countToken(scoped.use(UsageCounters, tx), locked, jti, context.now, refreshRefusal, spentCallback(context));
    },
  };
}

/**
 * The refresh-token family of a plain exchange by an agent registered for refresh_token whose
 * token is DPoP-bound: bound to the key and to the mandate, ending with the mandate at the latest.
 */
function refreshGrant(context: ExchangeContext, plan: Plan, mandate: MandateRecord): GrantRow | undefined {
  const { client, services, now } = context;
  // RFC 8705 §4: a certificate-bound family is bound to the client by its authentication at each refresh.
  const bound = plan.jkt || plan.x5tS256;
  if (plan.subMandate || !bound || !client.metadata.grant_types.includes("refresh_token")) return undefined;
  return {
    id: randomUUID(),
    clientId: client.clientId,
    subject: mandate.principal,
    scope: plan.scope,
    resources: plan.audience,
    dpopJkt: plan.jkt ?? null,
    authTime: null,
    acr: null,
    amr: [],
    claims: {},
    expiresAt: Math.min(now + services.config.oauth.refreshTokenTtl, ...plan.chain.map((m) => m.expiresAt)),
    revokedAt: null,
    mandateId: mandate.id,
    authorizationDetails: plan.details,
  };
}

/** The `cnf.x5t#S256` a verified token is bound to, if any. */
function certificateOf(claims: AccessTokenClaims): string | undefined {
  return claims.cnf?.["x5t#S256"];
}

function store(context: ExchangeContext) {
  return context.services.store.forTenant(context.urls.tenant);
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
