// The audit events Mandate records, one builder per event type: the one place an event's payload is
// shaped. The type name carries the payload's version (`token.issued.v1`); a payload change that a
// reader could misread gets a new version, never an edit in place. Who an event is about travels as
// parties beside the payload, never in it: the log stores humans among them only as salted
// references (services/audit/entry.ts). Events reach the log through the tenant's outbox
// (TenantStore.recordEvent / commitEvent), in the transaction of the action they record.
import { createHash } from "node:crypto";
import { uuidV7 } from "./uuid-v7.ts";

export interface Party {
  id: string;
  kind: string;
}

/** Who an event is about, as audit parties. */
export interface OutboxParties {
  subject?: Party;
  client?: Party;
  actors?: Party[];
}

/** The event's own AuditEvent fields beside its parties (a decision: what was asked and the answer). */
export interface OutboxEnvelope {
  action?: string;
  resource?: { type: string; id?: string; attributes?: Record<string, unknown> };
  outcome?: "OUTCOME_SUCCESS" | "OUTCOME_DENIED" | "OUTCOME_ERROR";
  reason?: string;
  mandateId?: string;
}

export interface OutboxEvent {
  eventId: string;
  type: string;
  payload: unknown;
  /** Parties go here, never in the payload: the log redacts humans in these fields only. */
  parties?: OutboxParties;
  envelope?: OutboxEnvelope;
}

/** Who performed an administrative action: named in the payload (`by`) and as its parties. */
export interface Actor {
  by: Record<string, string>;
  parties?: OutboxParties;
}

function event(type: string, payload: unknown, parties?: OutboxParties): OutboxEvent {
  return { eventId: uuidV7(), type, payload, ...(parties ? { parties } : {}) };
}

// --- Parties ---------------------------------------------------------------------------------------

/** A user's grant: the human (stored only as a salted reference) and the client. */
export function humanAndClient(subject: string, clientId: string): OutboxParties {
  return { subject: { id: subject, kind: "PARTY_KIND_HUMAN" }, client: { id: clientId, kind: "PARTY_KIND_SERVICE" } };
}

/** A client acting for itself (client credentials). */
export function clientOnly(clientId: string): OutboxParties {
  return {
    subject: { id: clientId, kind: "PARTY_KIND_SERVICE" },
    client: { id: clientId, kind: "PARTY_KIND_SERVICE" },
  };
}

/** The client an action concerns, with no user. */
export function clientParty(clientId: string): OutboxParties {
  return { client: { id: clientId, kind: "PARTY_KIND_SERVICE" } };
}

// --- Tenants ---------------------------------------------------------------------------------------

export interface CreatedTenant {
  id: string;
  displayName: string;
  tokenSigningAlg: string | null;
  /** Omitted from the payload when undefined (the platform tenant has none to report). */
  defaultResources?: string[] | undefined;
}

export function tenantCreated(tenant: CreatedTenant, actor: Actor): OutboxEvent {
  const payload = {
    tenant: tenant.id,
    display_name: tenant.displayName,
    token_signing_alg: tenant.tokenSigningAlg,
    ...(tenant.defaultResources !== undefined ? { default_resources: tenant.defaultResources } : {}),
    by: actor.by,
  };
  return event("tenant.created.v1", payload, actor.parties);
}

// --- OAuth clients ---------------------------------------------------------------------------------

export interface CreatedClient {
  clientId: string;
  clientName: string | undefined;
  tokenEndpointAuthMethod: string;
  grantTypes: string[];
  redirectUris: string[];
  /** Registered by the client itself (RFC 7591), not by an administrator. */
  dynamic: boolean;
}

/** `actor`: the administrator or bootstrap that registered it; absent for dynamic registration. */
export function clientCreated(client: CreatedClient, actor?: Partial<Actor>): OutboxEvent {
  const payload = {
    client_id: client.clientId,
    client_name: client.clientName,
    token_endpoint_auth_method: client.tokenEndpointAuthMethod,
    grant_types: client.grantTypes,
    redirect_uris: client.redirectUris,
    dynamic: client.dynamic,
    ...(actor?.by ? { by: actor.by } : {}),
  };
  return event("client.created.v1", payload, actor?.parties);
}

/** RFC 7592 §2.2: the client replaced its own metadata. */
export function clientUpdated(client: { clientId: string; grantTypes: string[]; redirectUris: string[] }): OutboxEvent {
  return event("client.updated.v1", {
    client_id: client.clientId,
    grant_types: client.grantTypes,
    redirect_uris: client.redirectUris,
  });
}

export function clientDeleted(clientId: string, actor?: Partial<Actor>): OutboxEvent {
  return event("client.deleted.v1", { client_id: clientId, ...(actor?.by ? { by: actor.by } : {}) }, actor?.parties);
}

// --- Signing keys ----------------------------------------------------------------------------------

function keyEvent(type: string, details: Record<string, unknown>, by: Record<string, string> | undefined) {
  return event(type, by ? { ...details, by } : details);
}

/** A key joined the schedule. `by`: the administrator who asked, absent for scheduled rotation. */
export function keyCreated(details: Record<string, unknown>, by?: Record<string, string>): OutboxEvent {
  return keyEvent("key.created.v1", details, by);
}

/** A tenant's agent CA certified one of its keys: its root (self-signed) or an intermediate (by a root). */
export function agentCaCertificateCreated(certificate: {
  role: "root" | "intermediate";
  kid: string;
  serial: string;
  issuerKid: string;
  notBefore: number;
  notAfter: number;
}): OutboxEvent {
  return event("agent_ca.certificate.created.v1", {
    role: certificate.role,
    kid: certificate.kid,
    serial: certificate.serial,
    issuer_kid: certificate.issuerKid,
    not_before: certificate.notBefore,
    not_after: certificate.notAfter,
  });
}

/** A key's schedule moved (rotation brought forward, or a revocation shortened it). */
export function keyRescheduled(details: Record<string, unknown>, by?: Record<string, string>): OutboxEvent {
  return keyEvent("key.rescheduled.v1", details, by);
}

export function keyRevoked(
  key: { id: string; kid: string | undefined; purpose: string; reason: string },
  by?: Record<string, string>,
): OutboxEvent {
  return keyEvent("key.revoked.v1", { id: key.id, kid: key.kid, purpose: key.purpose, reason: key.reason }, by);
}

/** The private key left the backend for good (after it left the JWKS). */
export function keyDestroyed(key: { id: string; purpose: string; backend: string }): OutboxEvent {
  return keyEvent("key.destroyed.v1", { id: key.id, purpose: key.purpose, backend: key.backend }, undefined);
}

// --- Authorization (RFC 6749 §4.1) -----------------------------------------------------------------

export interface ApprovedRequest {
  subject: string;
  clientId: string;
  scope: string[];
  resources: string[];
}

export function consentGranted(request: ApprovedRequest): OutboxEvent {
  return event(
    "consent.granted.v1",
    { scope: request.scope, resources: request.resources },
    humanAndClient(request.subject, request.clientId),
  );
}

export function consentDenied(request: Omit<ApprovedRequest, "resources">): OutboxEvent {
  return event("consent.denied.v1", { scope: request.scope }, humanAndClient(request.subject, request.clientId));
}

export function authorizationCodeIssued(request: ApprovedRequest): OutboxEvent {
  return event(
    "authorization_code.issued.v1",
    { scope: request.scope, resources: request.resources },
    humanAndClient(request.subject, request.clientId),
  );
}

// --- Tokens ----------------------------------------------------------------------------------------

/**
 * How the client proved who it is when a token was issued: its authentication method and, with a
 * certificate (RFC 8705), the certificate's serial, SPIFFE ID (an agent's) and the token's
 * `cnf.x5t#S256`.
 */
export interface IdentityProof {
  method: string;
  certificate?: { serial: string; spiffeId?: string | undefined; x5tS256: string } | undefined;
}

/** The audit form of an identity proof. */
function identityProofPayload(proof: IdentityProof | undefined): Record<string, unknown> {
  if (!proof) return {};
  const { method, certificate } = proof;
  return {
    client_auth_method: method,
    ...(certificate
      ? {
          cnf_x5t_s256: certificate.x5tS256,
          certificate_serial: certificate.serial,
          ...(certificate.spiffeId ? { spiffe_id: certificate.spiffeId } : {}),
        }
      : {}),
  };
}

export interface IssuedToken {
  grantType: string;
  clientId: string;
  /** The user's grant the token comes from; absent for a client acting for itself. */
  grant?: { id: string; subject: string; refreshTokenIssued: boolean } | undefined;
  jti: string;
  audience: string[];
  scope: string[];
  /** RFC 9449 §6: the DPoP key thumbprint the token is bound to. */
  jkt?: string | undefined;
  expiresAt: number;
  /** A refreshed token of a mandate's token exchange: the mandate and its agents, root first. */
  mandate?: { id: string; actors: readonly string[] } | undefined;
  /** How the client authenticated (and the certificate the token is bound to). */
  proof?: IdentityProof | undefined;
}

export function tokenIssued(token: IssuedToken): OutboxEvent {
  const { grant, mandate } = token;
  const payload = {
    grant_type: token.grantType,
    ...(grant ? { grant_id: grant.id } : {}),
    jti: token.jti,
    aud: token.audience,
    scope: token.scope,
    ...(grant ? { refresh_token_issued: grant.refreshTokenIssued } : {}),
    ...(token.jkt ? { cnf_jkt: token.jkt } : {}),
    exp: token.expiresAt,
    ...(mandate ? { mandate_id: mandate.id, actors: mandate.actors } : {}),
    ...identityProofPayload(token.proof),
  };
  const parties = grant ? humanAndClient(grant.subject, token.clientId) : clientOnly(token.clientId);
  if (!mandate) return event("token.issued.v1", payload, parties);
  return {
    ...event("token.issued.v1", payload, { ...parties, actors: agentParties(mandate.actors) }),
    envelope: { outcome: "OUTCOME_SUCCESS", mandateId: mandate.id },
  };
}

/** RFC 8693 token exchange of a mandate: the token, whom it is for, and who acts. */
export interface ExchangedToken {
  /** The authenticated client: the agent of the mandate, or of its parent when it sub-delegated. */
  clientId: string;
  /** The human the token acts for (its `sub`): a party, never in the payload. */
  principal: string;
  /** The mandate the token was issued under (a sub-mandate made by this exchange, when sub-delegating). */
  mandateId: string;
  /** The mandate's chain, root first: a sub-delegation's parent mandate, and the one above... */
  chain: readonly string[];
  /** The agents of the chain, root first (the token's `act`, innermost first): agent → sub-agent. */
  actors: readonly string[];
  subjectTokenType: string;
  actorTokenType?: string | undefined;
  /** A sub-mandate this exchange granted (sub-delegation to the last actor). */
  subMandateGranted: boolean;
  jti: string;
  audience: string[];
  scope: string[];
  authorizationDetails: readonly unknown[];
  jkt?: string | undefined;
  expiresAt: number;
  /** The refresh-token family issued with it. */
  refreshGrantId?: string | undefined;
  /** The `tokens` counters charged (usage limits of the chain), root first. */
  counters: ReadonlyArray<{ mandateId: string; periodMs: number; periodStart: number; used: number }>;
  /** How the exchanging agent authenticated (and the certificate the token is bound to). */
  proof?: IdentityProof | undefined;
}

/**
 * A token exchanged for a mandate (RFC 8693): the whole actor chain — the human as the subject party,
 * every agent from the mandate's root to the token's holder as actors — found by mandate id.
 */
export function tokenExchanged(token: ExchangedToken): OutboxEvent {
  const payload = {
    grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
    subject_token_type: token.subjectTokenType,
    ...(token.actorTokenType ? { actor_token_type: token.actorTokenType } : {}),
    mandate_id: token.mandateId,
    mandate_chain: token.chain,
    sub_mandate_granted: token.subMandateGranted,
    client_id: token.clientId,
    actors: token.actors,
    jti: token.jti,
    aud: token.audience,
    scope: token.scope,
    ...(token.authorizationDetails.length ? { authorization_details: token.authorizationDetails } : {}),
    ...(token.jkt ? { cnf_jkt: token.jkt } : {}),
    exp: token.expiresAt,
    ...(token.refreshGrantId ? { grant_id: token.refreshGrantId, refresh_token_issued: true } : {}),
    ...identityProofPayload(token.proof),
    ...(token.counters.length
      ? {
          tokens_counters: token.counters.map((c) => ({
            mandate_id: c.mandateId,
            period_ms: c.periodMs,
            period_start: c.periodStart,
            used: c.used,
          })),
        }
      : {}),
  };
  const parties: OutboxParties = {
    subject: { id: token.principal, kind: "PARTY_KIND_HUMAN" },
    client: { id: token.clientId, kind: "PARTY_KIND_AGENT" },
    actors: agentParties(token.actors),
  };
  return {
    ...event("token.exchanged.v1", payload, parties),
    envelope: { outcome: "OUTCOME_SUCCESS", mandateId: token.mandateId },
  };
}

function agentParties(agents: readonly string[]): Party[] {
  return agents.map((id) => ({ id, kind: "PARTY_KIND_AGENT" }));
}

/** RFC 7009: a client revoked one of its tokens (a refresh token takes its grant along). */
export function tokenRevoked(
  clientId: string,
  token: { kind: "refresh_token"; grantId: string } | { kind: "access_token"; jti: string },
): OutboxEvent {
  const payload =
    token.kind === "refresh_token"
      ? { kind: token.kind, grant_id: token.grantId, client_id: clientId }
      : { kind: token.kind, jti: token.jti, client_id: clientId };
  return event("token.revoked.v1", payload, clientParty(clientId));
}

/** A grant revoked because it was compromised (OAuth 2.1 §4.1.3 code replay, §4.3.1 refresh reuse). */
export function grantRevoked(
  grantId: string,
  clientId: string,
  reason: "authorization_code_replay" | "refresh_token_reuse",
): OutboxEvent {
  return event("grant.revoked.v1", { grant_id: grantId, client_id: clientId, reason }, clientParty(clientId));
}

// --- Administration --------------------------------------------------------------------------------

/** An administrator read a tenant's data through the API (`method`: service/Method). */
export function adminRead(method: string, actor: Actor): OutboxEvent {
  return event("admin.read.v1", { method, by: actor.by }, actor.parties);
}

// --- Policy decisions and policies ----------------------------------------------------------------

export interface LoggedDecision {
  decisionId: string;
  parties: OutboxParties;
  action: string;
  resource: { type: string; id?: string };
  allow: boolean;
  reasons: Array<{ code: string; message: string }>;
  obligations: Array<{ type: string; parameters?: Record<string, unknown> }>;
  policyRevision: string;
  /** SHA-256 (base64url) of the whole decision input as evaluated, before masking. */
  inputSha256: string;
  /** The input without its parties and without the masked paths (decision-log mask). */
  input: Record<string, unknown>;
  mandateId?: string;
  /** The caller's request id, when it sent one. */
  requestId?: string;
}

/** A decision log entry: its event id is the decision id, so Audit.Query finds it by `request_id`. */
export function decisionMade(decision: LoggedDecision): OutboxEvent {
  return {
    eventId: decision.decisionId,
    type: "authz.decision.v1",
    payload: {
      decision_id: decision.decisionId,
      allow: decision.allow,
      reasons: decision.reasons,
      obligations: decision.obligations,
      policy_revision: decision.policyRevision,
      input_sha256: decision.inputSha256,
      input: decision.input,
      ...(decision.requestId ? { request_id: decision.requestId } : {}),
    },
    parties: decision.parties,
    envelope: {
      action: decision.action,
      resource: decision.resource,
      outcome: decision.allow ? "OUTCOME_SUCCESS" : "OUTCOME_DENIED",
      ...(decision.reasons[0] ? { reason: decision.reasons[0].message.slice(0, 1024) } : {}),
      ...(decision.mandateId ? { mandateId: decision.mandateId } : {}),
    },
  };
}

/** Policy administration: a bundle pushed, a revision activated or rolled back, data or signing keys set. */
export function policyChanged(
  type: "pushed" | "activated" | "rolled_back" | "data_set" | "signing_set",
  details: Record<string, unknown>,
  actor: Actor,
): OutboxEvent {
  return event(`policy.${type}.v1`, { ...details, by: actor.by }, actor.parties);
}

// --- Mandates --------------------------------------------------------------------------------------

/** A mandate's parties: the principal (a human, stored only as a salted reference) and the agent. */
function mandateParties(principal: string, agent: string): OutboxParties {
  return { subject: { id: principal, kind: "PARTY_KIND_HUMAN" }, client: { id: agent, kind: "PARTY_KIND_AGENT" } };
}

function mandateEvent(type: string, mandateId: string, payload: unknown, parties: OutboxParties): OutboxEvent {
  return { ...event(type, payload, parties), envelope: { outcome: "OUTCOME_SUCCESS", mandateId } };
}

export interface GrantedMandate {
  id: string;
  version: number;
  parentId: string | null;
  principal: string;
  agent: string;
  scopes: readonly string[];
  resources: readonly string[];
  authorizationDetails: readonly unknown[];
  notBefore: number;
  expiresAt: number;
  maxTokenTtlMs: number | null;
  usageLimits: ReadonlyArray<{ meter: string; maximum: number; periodMs: number }>;
  maxDelegationDepth: number;
  mayAct: readonly string[];
  consent: { method: string; at: number; text: string };
  /** The version this amendment supersedes. */
  supersedes?: string | null;
  /** The signed consent receipt (compact JWS): the entry records its SHA-256, binding it into the log. */
  receipt?: string | null;
}

/** A mandate granted (its whole content: immutable from now on). `actor`: who recorded the grant. */
export function mandateGranted(mandate: GrantedMandate, actor: Partial<Actor>): OutboxEvent {
  const payload = {
    mandate_id: mandate.id,
    version: mandate.version,
    ...(mandate.parentId ? { parent_mandate_id: mandate.parentId } : {}),
    scopes: mandate.scopes,
    resources: mandate.resources,
    authorization_details: mandate.authorizationDetails,
    not_before: mandate.notBefore,
    expires_at: mandate.expiresAt,
    max_token_ttl_ms: mandate.maxTokenTtlMs,
    usage_limits: mandate.usageLimits.map((l) => ({ meter: l.meter, maximum: l.maximum, period_ms: l.periodMs })),
    max_delegation_depth: mandate.maxDelegationDepth,
    may_act: mandate.mayAct,
    consent: { method: mandate.consent.method, at: mandate.consent.at, text: mandate.consent.text },
    ...(mandate.supersedes ? { supersedes: mandate.supersedes } : {}),
    ...(mandate.receipt ? { receipt_sha256: createHash("sha256").update(mandate.receipt).digest("base64url") } : {}),
    ...(actor.by ? { by: actor.by } : {}),
  };
  return mandateEvent("mandate.granted.v1", mandate.id, payload, mandateParties(mandate.principal, mandate.agent));
}

/** An agent's backchannel request for a mandate (OpenID CIBA Core §7.1), waiting for its human. */
export interface RequestedMandate {
  /** The request's public id (never the auth_req_id, the agent's bearer handle). */
  requestId: string;
  principal: string;
  agent: string;
  scopes: readonly string[];
  resources: readonly string[];
  authorizationDetails: readonly unknown[];
  /** When the mandate asked for would end. */
  expiresAt: number;
  bindingMessage?: string | null | undefined;
  /** When the request itself expires unanswered. */
  requestExpiresAt: number;
}

/** A mandate asked for over the backchannel (asynchronous grant); approval is mandate.granted.v1. */
export function mandateRequested(request: RequestedMandate): OutboxEvent {
  const payload = {
    request_id: request.requestId,
    scopes: request.scopes,
    resources: request.resources,
    authorization_details: request.authorizationDetails,
    expires_at: request.expiresAt,
    ...(request.bindingMessage ? { binding_message: request.bindingMessage } : {}),
    request_expires_at: request.requestExpiresAt,
  };
  return event("mandate.requested.v1", payload, mandateParties(request.principal, request.agent));
}

/** A backchannel request for a mandate denied by the human it was addressed to. */
export function mandateRequestDenied(request: { requestId: string; principal: string; agent: string }): OutboxEvent {
  return event(
    "mandate.request_denied.v1",
    // The principal is the event's subject (a salted reference in the log): named by role, not id.
    { request_id: request.requestId, by: { role: "principal" } },
    mandateParties(request.principal, request.agent),
  );
}

/** A mandate revoked: by `actor`, or with the mandate above it (`cascadeFrom`). */
export function mandateRevoked(
  mandate: { id: string; principal: string; agent: string },
  revocation: { reason: string; cascadeFrom?: string | undefined },
  actor: Partial<Actor>,
): OutboxEvent {
  const payload = {
    mandate_id: mandate.id,
    reason: revocation.reason,
    ...(revocation.cascadeFrom ? { cascade_from: revocation.cascadeFrom } : {}),
    ...(actor.by ? { by: actor.by } : {}),
  };
  return mandateEvent("mandate.revoked.v1", mandate.id, payload, mandateParties(mandate.principal, mandate.agent));
}

export interface ConsumedUsage {
  mandateId: string;
  principal: string;
  agent: string;
  meter: string;
  amount: number;
  idempotencyKey: string;
  counters: ReadonlyArray<{ mandateId: string; meter: string; periodMs: number; periodStart: number; used: number }>;
}

/** Usage counted against a mandate (and the mandates above it). */
export function mandateConsumed(usage: ConsumedUsage, actor?: Partial<Actor>): OutboxEvent {
  const payload = {
    mandate_id: usage.mandateId,
    meter: usage.meter,
    amount: usage.amount,
    idempotency_key: usage.idempotencyKey,
    counters: usage.counters.map((c) => ({
      mandate_id: c.mandateId,
      period_ms: c.periodMs,
      period_start: c.periodStart,
      used: c.used,
    })),
    ...(actor?.by ? { by: actor.by } : {}),
  };
  return mandateEvent("mandate.consumed.v1", usage.mandateId, payload, mandateParties(usage.principal, usage.agent));
}

// --- Agent identity (issue 17) ---------------------------------------------------------------------

/** An administrator created a one-time enrollment token for an agent (the token itself is never recorded). */
export function agentEnrollmentTokenCreated(
  token: { id: string; clientId: string; expiresAt: number },
  actor: Partial<Actor>,
): OutboxEvent {
  const payload = {
    token_id: token.id,
    client_id: token.clientId,
    expires_at: token.expiresAt,
    ...(actor.by ? { by: actor.by } : {}),
  };
  return event("agent.enrollment_token.created.v1", payload, { ...actor.parties, ...clientParty(token.clientId) });
}

export interface IssuedAgentCertificateEvent {
  clientId: string;
  serial: string;
  spiffeId: string;
  x5tS256: string;
  issuerKid: string;
  notAfter: number;
  /** enrollment_token, attestation:<attestor>, renewal. */
  proof: string;
  enrollmentTokenId?: string | undefined;
  renewedFrom?: string | undefined;
}

/** An agent certificate (X.509-SVID) was issued: at enrollment or renewal. */
export function agentCertificateIssued(certificate: IssuedAgentCertificateEvent): OutboxEvent {
  const payload = {
    client_id: certificate.clientId,
    serial: certificate.serial,
    spiffe_id: certificate.spiffeId,
    x5t_s256: certificate.x5tS256,
    issuer_kid: certificate.issuerKid,
    not_after: certificate.notAfter,
    proof: certificate.proof,
    ...(certificate.enrollmentTokenId ? { enrollment_token_id: certificate.enrollmentTokenId } : {}),
    ...(certificate.renewedFrom ? { renewed_from: certificate.renewedFrom } : {}),
  };
  return event("agent.certificate.issued.v1", payload, clientOnly(certificate.clientId));
}

/** An agent's certificates were revoked (by an administrator, or because the agent was deleted). */
export function agentCertificatesRevoked(
  revocation: { clientId: string; serials: string[]; reason: string; cause: "revoked" | "client_deleted" },
  actor: Partial<Actor>,
): OutboxEvent {
  const payload = {
    client_id: revocation.clientId,
    serials: revocation.serials,
    reason: revocation.reason,
    cause: revocation.cause,
    ...(actor.by ? { by: actor.by } : {}),
  };
  return event("agent.certificates.revoked.v1", payload, { ...actor.parties, ...clientParty(revocation.clientId) });
}

/** An administrator registered a workload platform whose signed JWTs attest agents. */
export function agentAttestorCreated(
  attestor: { name: string; issuer: string; audience: string; jwks_uri: string | null },
  actor: Partial<Actor>,
): OutboxEvent {
  const payload = {
    name: attestor.name,
    issuer: attestor.issuer,
    audience: attestor.audience,
    keys: attestor.jwks_uri ?? "inline JWK Set",
    ...(actor.by ? { by: actor.by } : {}),
  };
  return event("agent.attestor.created.v1", payload, actor.parties);
}

/** An attestor was deleted with its workload bindings. */
export function agentAttestorDeleted(name: string, removedBindings: number, actor: Partial<Actor>): OutboxEvent {
  const payload = { name, removed_bindings: removedBindings, ...(actor.by ? { by: actor.by } : {}) };
  return event("agent.attestor.deleted.v1", payload, actor.parties);
}

export interface WorkloadBinding {
  attestor: string;
  subject: string;
  client_id: string;
}

/** A workload subject of an attestor was bound to an agent: its attested JWTs enroll that agent. */
export function agentWorkloadBound(binding: WorkloadBinding, actor: Partial<Actor>): OutboxEvent {
  return workloadEvent("agent.workload.bound.v1", binding, actor);
}

export function agentWorkloadUnbound(binding: WorkloadBinding, actor: Partial<Actor>): OutboxEvent {
  return workloadEvent("agent.workload.unbound.v1", binding, actor);
}

function workloadEvent(type: string, binding: WorkloadBinding, actor: Partial<Actor>): OutboxEvent {
  const payload = {
    attestor: binding.attestor,
    subject: binding.subject,
    client_id: binding.client_id,
    ...(actor.by ? { by: actor.by } : {}),
  };
  return event(type, payload, { ...actor.parties, ...agentParty(binding.client_id) });
}

function agentParty(clientId: string): OutboxParties {
  return { client: { id: clientId, kind: "PARTY_KIND_AGENT" } };
}

// --- Cross-organization trust (issue 18 item 3) -------------------------------------------------------

export interface TenantTrustEvent {
  trustId: string;
  foreignTenant: string;
  clientId: string;
  subjectKinds: readonly string[];
  scopes: readonly string[];
  resources: readonly string[];
  authorizationDetails: readonly unknown[];
  expiresAt: number;
}

/** Tenant A (the log's tenant) trusts `foreignTenant`'s identities within the named bounds. */
export function tenantTrustCreated(trust: TenantTrustEvent, actor: Partial<Actor>): OutboxEvent {
  const payload = {
    trust_id: trust.trustId,
    foreign_tenant: trust.foreignTenant,
    client_id: trust.clientId,
    subject_kinds: trust.subjectKinds,
    scopes: trust.scopes,
    resources: trust.resources,
    ...(trust.authorizationDetails.length ? { authorization_details: trust.authorizationDetails } : {}),
    expires_at: trust.expiresAt,
    ...(actor.by ? { by: actor.by } : {}),
  };
  return event("tenant_trust.created.v1", payload, actor.parties);
}

/** The trust ended: `revokedTokens` crossing tokens still alive were revoked with it. */
export function tenantTrustRevoked(
  trust: { trustId: string; foreignTenant: string },
  revokedTokens: number,
  actor: Partial<Actor>,
): OutboxEvent {
  const payload = {
    trust_id: trust.trustId,
    foreign_tenant: trust.foreignTenant,
    revoked_tokens: revokedTokens,
    ...(actor.by ? { by: actor.by } : {}),
  };
  return event("tenant_trust.revoked.v1", payload, actor.parties);
}

export interface TenantCrossing {
  trustId: string;
  /** The trusting tenant (A), where the token was issued. */
  tenant: string;
  /** The tenant whose identity crossed (B). */
  foreignTenant: string;
  foreignIssuer: string;
  /** B's identity: the subject token's `sub`, client and actor chain (outermost first). */
  foreignSubject: string;
  foreignClientId: string;
  foreignActors: readonly string[];
  foreignJti: string;
  /** The token A issued. */
  clientId: string;
  jti: string;
  scope: readonly string[];
  audience: readonly string[];
  expiresAt: number;
}

/**
 * One crossing, recorded in both tenants' logs in one transaction: `direction` "inbound" is A's
 * entry (a token issued to a foreign identity), "outbound" is B's (its identity's token was exchanged
 * in A). Parties are the identity as the log's own tenant knows it.
 */
export function tenantCrossed(crossing: TenantCrossing, direction: "inbound" | "outbound"): OutboxEvent {
  const payload = {
    direction,
    trust_id: crossing.trustId,
    trusting_tenant: crossing.tenant,
    foreign_tenant: crossing.foreignTenant,
    foreign_issuer: crossing.foreignIssuer,
    foreign_client_id: crossing.foreignClientId,
    foreign_jti: crossing.foreignJti,
    client_id: crossing.clientId,
    jti: crossing.jti,
    scope: crossing.scope,
    aud: crossing.audience,
    exp: crossing.expiresAt,
  };
  const actors = crossing.foreignActors.map((id) => ({ id, kind: "PARTY_KIND_AGENT" }));
  const parties: OutboxParties =
    direction === "outbound"
      ? {
          // An agent acting for itself has its client id as `sub`; anyone else is a person (salted in the log).
          subject: {
            id: crossing.foreignSubject,
            kind: crossing.foreignSubject === crossing.foreignClientId ? "PARTY_KIND_AGENT" : "PARTY_KIND_HUMAN",
          },
          client: { id: crossing.foreignClientId, kind: "PARTY_KIND_AGENT" },
          ...(actors.length ? { actors } : {}),
        }
      : { client: { id: crossing.clientId, kind: "PARTY_KIND_SERVICE" }, ...(actors.length ? { actors } : {}) };
  return event("tenant_trust.crossed.v1", payload, parties);
}

/** What the audit keeps of an API key (issue 18): never the key or its hash. */
export interface AuditedApiKey {
  id: string;
  client_id: string;
  scopes: readonly string[];
  resources: readonly string[];
  expires_at: number;
}

/** An API key was created for an agent (by an admin, or by rotating `rotated_from`). */
export function apiKeyCreated(
  key: AuditedApiKey & { rotated_from: string | null },
  actor: Partial<Actor>,
): OutboxEvent {
  return apiKeyEvent("api_key.created.v1", key, { rotated_from: key.rotated_from }, actor);
}

/** An API key was rotated: it works until `expires_at` (the end of the overlap), `replaced_by` after it. */
export function apiKeyRotated(key: AuditedApiKey, replacedBy: string, actor: Partial<Actor>): OutboxEvent {
  return apiKeyEvent("api_key.rotated.v1", key, { replaced_by: replacedBy }, actor);
}

/** An API key was revoked: refused from now on. */
export function apiKeyRevoked(key: AuditedApiKey, actor: Partial<Actor>): OutboxEvent {
  return apiKeyEvent("api_key.revoked.v1", key, {}, actor);
}

function apiKeyEvent(type: string, key: AuditedApiKey, extra: object, actor: Partial<Actor>): OutboxEvent {
  const payload = {
    id: key.id,
    client_id: key.client_id,
    scopes: key.scopes,
    resources: key.resources,
    expires_at: new Date(key.expires_at).toISOString(),
    ...extra,
    ...(actor.by ? { by: actor.by } : {}),
  };
  return event(type, payload, { ...actor.parties, ...agentParty(key.client_id) });
}

// --- Agent federation gateway (issue 18) -------------------------------------------------------------

/** A token issued by the agent federation gateway for an external identity mapped to an agent. */
export interface FederatedToken {
  /** The RFC 7521 assertion grant or RFC 8693 token exchange used. */
  grantType: string;
  /** The subject_token_type / assertion type presented. */
  tokenType: string;
  /** The source protocol (jwt, id_jag, saml, x509_ca, api_key, tenant). */
  protocol: string;
  issuer: string;
  /** The external subject as its issuer names it. */
  externalSubject: string;
  trustId: string;
  /** The agent the identity maps to: the token's client_id and sub. */
  clientId: string;
  foreignTenant?: string | undefined;
  jti: string;
  audience: string[];
  scope: string[];
  jkt?: string | undefined;
  x5tS256?: string | undefined;
  expiresAt: number;
}

export function tokenFederated(token: FederatedToken): OutboxEvent {
  const payload = {
    grant_type: token.grantType,
    token_type: token.tokenType,
    protocol: token.protocol,
    issuer: token.issuer,
    external_subject: token.externalSubject,
    trust_id: token.trustId,
    client_id: token.clientId,
    ...(token.foreignTenant ? { foreign_tenant: token.foreignTenant } : {}),
    jti: token.jti,
    aud: token.audience,
    scope: token.scope,
    ...(token.jkt ? { cnf_jkt: token.jkt } : {}),
    ...(token.x5tS256 ? { cnf_x5t_s256: token.x5tS256 } : {}),
    exp: token.expiresAt,
  };
  return {
    ...event("token.federated.v1", payload, { client: { id: token.clientId, kind: "PARTY_KIND_AGENT" } }),
    envelope: { outcome: "OUTCOME_SUCCESS" },
  };
}

/** A federation trust created or revoked by an administrator. */
export function federationTrustChanged(
  change: "created" | "revoked",
  trust: {
    id: string;
    kind: string;
    issuer: string;
    allowedScopes: string[];
    allowedResources: string[];
    expiresAt: number | null;
  },
  by: Record<string, string>,
): OutboxEvent {
  return event(`federation.trust.${change}.v1`, {
    trust_id: trust.id,
    kind: trust.kind,
    issuer: trust.issuer,
    allowed_scopes: trust.allowedScopes,
    allowed_resources: trust.allowedResources,
    ...(trust.expiresAt !== null ? { expires_at: trust.expiresAt } : {}),
    by,
  });
}

// --- Human federation (issue 18) -----------------------------------------------------------------

function humanParty(subject: string): OutboxParties {
  return { subject: { id: subject, kind: "PARTY_KIND_HUMAN" } };
}

/** An upstream identity was linked to a Mandate subject (its first login through that IdP). */
export function identityLinked(link: { provider: string; subject: string; kind: string }): OutboxEvent {
  return event("identity.linked.v1", { provider: link.provider, protocol: link.kind }, humanParty(link.subject));
}

/** A human signed in through an upstream IdP; `roles` as mapped from its claims. */
export function federatedLogin(login: { provider: string; subject: string; roles: string[] }): OutboxEvent {
  return event(
    "identity.federated_login.v1",
    { provider: login.provider, roles: login.roles },
    humanParty(login.subject),
  );
}

/** What an identity provider's audit events say of it: never a secret. */
export interface IdentityProviderSummary {
  id: string;
  kind: string;
  enabled: boolean;
  email_domains: string[];
}

export function identityProviderCreated(provider: IdentityProviderSummary, actor: Partial<Actor>): OutboxEvent {
  return event("identity.provider.created.v1", { ...provider, ...(actor.by ? { by: actor.by } : {}) }, actor.parties);
}

/** `changed`: the settings changed (e.g. "enabled", "claim_mapping", "client_secret" when rotated). */
export function identityProviderUpdated(
  provider: IdentityProviderSummary,
  changed: string[],
  actor: Partial<Actor>,
): OutboxEvent {
  const payload = { ...provider, changed, ...(actor.by ? { by: actor.by } : {}) };
  return event("identity.provider.updated.v1", payload, actor.parties);
}

export function identityProviderDeleted(id: string, unlinked: number, actor: Partial<Actor>): OutboxEvent {
  const payload = { id, unlinked_identities: unlinked, ...(actor.by ? { by: actor.by } : {}) };
  return event("identity.provider.deleted.v1", payload, actor.parties);
}
