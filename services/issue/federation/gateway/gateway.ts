// The agent federation gateway (issue 18 item 2): an external identity, verified and mapped to an
// agent by one of its sources (source.ts), becomes a short-lived internal token:
// · client_id and sub: the mapped agent, which must exist and be an agent;
// · scope ⊆ requested ∩ the trust's allowed scopes (∩ what the credential itself asserts), else
//   invalid_scope (RFC 6749 §5.2); aud ⊆ requested ∩ allowed resources, else invalid_target (RFC 8707 §2);
// · act: the external identity (RFC 8693 §4.1), nesting any act it carried;
// · cnf: the DPoP proof's key (RFC 9449 §6.1) or the client certificate (RFC 8705 §3.1) — one is
//   REQUIRED: a federated token is always sender-constrained;
// · lifetime: config.federation.tokenTtl, never beyond the credential's own expiry;
// · a token.federated.v1 audit entry naming the protocol, issuer, trust and external subject,
//   committed before the token leaves (after the source's optional `issued` hook, which may
//   record what it admitted — a cross-tenant crossing — or withhold the token).
// · policy: the tenant's policy is asked per granted scope before minting (issuance-policy.ts); a
//   denied scope is left out, nothing left is access_denied.
import { tokenFederated } from "../../../shared/audit-events.ts";
import type { DpopProof } from "../../../shared/oauth/dpop.ts";
import { x5tS256 } from "../../../shared/x509/thumbprint.ts";
import type { PresentedCertificate } from "../../../shared/x509/types.ts";
import { requireRegisteredKey } from "../../oauth/authorization-server-dpop.ts";
import type { OAuthServices, TenantUrls } from "../../oauth/context.ts";
import {
  InvalidDpopProof,
  InvalidGrant,
  InvalidRequest,
  InvalidScope,
  InvalidTarget,
  type OAuthError,
  TemporarilyUnavailable,
} from "../../oauth/errors.ts";
import { mintAccessToken } from "../../oauth/minting.ts";
import { scopesPolicyAllows } from "./issuance-policy.ts";
import { type FederatedIdentity, FederationNotMine, FederationRefused, type FederationSource } from "./source.ts";
import { federationSources } from "./sources/index.ts";

export const ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token";

export interface FederatedTokenRequest {
  services: OAuthServices;
  urls: TenantUrls;
  now: number;
  /** grant_type of the request (jwt-bearer, saml2-bearer or token-exchange). */
  grantType: string;
  /** subject_token_type, or the assertion grant's grant_type. */
  tokenType: string;
  token: string;
  scope: string[];
  /** RFC 8707 resource (and RFC 8693 audience) values requested. */
  resources: string[];
  /** The client that authenticated, when the request carried client credentials. */
  authenticatedClientId?: string | undefined;
  /** The client_id the request names without authenticating, if any. */
  namedClientId?: string | undefined;
  /**
   * The request's DPoP proof, verified before the credential is (a proof refused for want of the
   * server's nonce must not burn the single-use assertion).
   */
  dpop: DpopProof | undefined;
  certificate?: PresentedCertificate | undefined;
}

export interface FederatedTokenResponse {
  access_token: string;
  token_type: "DPoP" | "Bearer";
  expires_in: number;
  scope?: string;
  issued_token_type?: string;
}

const gateways = new WeakMap<OAuthServices, FederationSource[]>();

function sourcesOf(services: OAuthServices): FederationSource[] {
  let sources = gateways.get(services);
  if (!sources) {
    sources = federationSources(services);
    gateways.set(services, sources);
  }
  return sources;
}

/** Whether some source verifies credentials of this subject_token_type / assertion grant type. */
export function isFederatedTokenType(services: OAuthServices, type: string): boolean {
  return sourcesOf(services).some((source) => source.subjectTokenTypes.includes(type));
}

export async function issueFederatedToken(request: FederatedTokenRequest): Promise<FederatedTokenResponse> {
  const { services, urls, now } = request;
  const { identity, source } = await verifyWithSources(request);
  const client = await mappedAgent(services, urls.tenant, identity);
  // The agent's own quota (rate_limit in its metadata) holds for its federated tokens too.
  await services.limits.quota(client);
  // RFC 7521 §4.2 / RFC 7523 §3: client authentication is optional for assertion grants, but a
  // request that does authenticate (or names a client) must be that same agent.
  const claimed = request.authenticatedClientId ?? request.namedClientId;
  if (claimed !== undefined && claimed !== client.clientId) {
    throw new InvalidGrant("the credential maps to another client than the one making the request");
  }
  const audience = grantedAudience(request.resources, identity);
  const bounded = grantedScope(request.scope, identity);
  const dpop = request.dpop;
  // RFC 9449 §5 / §10: an agent registered with dpop_jkt gets tokens bound to that key only.
  requireRegisteredKey(client, dpop);
  if (!dpop && client.metadata.dpop_bound_access_tokens) {
    throw new InvalidDpopProof("this client must send a DPoP proof (dpop_bound_access_tokens)");
  }
  const certificate = dpop ? undefined : boundCertificate(identity, request.certificate);
  if (!dpop && !certificate) {
    throw new InvalidRequest(
      "a federated token is sender-constrained: send a DPoP proof (RFC 9449) or connect with a client certificate (RFC 8705)",
    );
  }
  const ttlMs = Math.min(services.config.federation.tokenTtl, (identity.notAfter ?? Number.POSITIVE_INFINITY) - now);
  if (ttlMs < 1000) throw new InvalidGrant("the credential expires too soon to issue a token");
  // Last, the one check that costs a round trip (Authorize), asked only of a request otherwise good.
  const scope = await scopesPolicyAllows(services, {
    tenant: urls.tenant,
    grantType: request.grantType,
    clientId: client.clientId,
    identity,
    scope: bounded,
    audience,
  });
  const token = await mintAccessToken(services.signing, {
    tenant: urls.tenant,
    issuer: urls.issuer,
    clientId: client.clientId,
    subject: client.clientId,
    audience,
    scope,
    ttlMs,
    now,
    jkt: dpop?.jkt,
    x5tS256: certificate,
    act: identity.act,
    authorizationDetails: identity.authorizationDetails,
  });
  await source.issued?.(urls.tenant, identity, {
    jti: token.jti,
    expiresAt: token.expiresAt,
    clientId: client.clientId,
    scope,
    audience,
    jkt: dpop?.jkt,
    x5tS256: certificate,
  });
  const event = tokenFederated({
    grantType: request.grantType,
    tokenType: request.tokenType,
    protocol: identity.protocol,
    issuer: identity.issuer,
    externalSubject: identity.subject,
    trustId: identity.trustId,
    clientId: client.clientId,
    foreignTenant: identity.foreignTenant,
    jti: token.jti,
    audience,
    scope,
    jkt: dpop?.jkt,
    x5tS256: certificate,
    expiresAt: token.expiresAt,
  });
  // The gateway writes nothing else: the event commits alone, before the token leaves.
  await services.store.forTenant(urls.tenant).commitEvent(event, now);
  return {
    access_token: token.token,
    token_type: dpop ? "DPoP" : "Bearer",
    expires_in: token.expiresIn,
    ...(scope.length ? { scope: scope.join(" ") } : {}),
    ...(request.grantType.endsWith(":token-exchange") ? { issued_token_type: ACCESS_TOKEN_TYPE } : {}),
  };
}

/** Tries each source of the token type in turn; a source that recognises the credential decides. */
async function verifyWithSources(
  request: FederatedTokenRequest,
): Promise<{ identity: FederatedIdentity; source: FederationSource }> {
  const { services, urls, now } = request;
  const context = {
    now,
    issuer: urls.issuer,
    tokenEndpoint: urls.token,
    replay: services.replay,
    certificate: request.certificate,
    tokenType: request.tokenType,
    requestingClientId: request.authenticatedClientId ?? request.namedClientId,
  };
  for (const source of sourcesOf(services)) {
    if (!source.subjectTokenTypes.includes(request.tokenType)) continue;
    try {
      return { identity: await source.verify(urls.tenant, request.token, context), source };
    } catch (error) {
      if (error instanceof FederationNotMine) continue;
      throw oauthError(error);
    }
  }
  // RFC 7521 §4.1.1 / RFC 8693 §2.2.2: an assertion no trust admits is invalid_grant.
  throw new InvalidGrant("no trust of this tenant admits the credential (unknown issuer)");
}

function oauthError(error: unknown): OAuthError | unknown {
  if (!(error instanceof FederationRefused)) return error;
  if (error.error === "invalid_request") return new InvalidRequest(error.message);
  if (error.error === "temporarily_unavailable") return new TemporarilyUnavailable(error.message);
  return new InvalidGrant(error.message);
}

async function mappedAgent(services: OAuthServices, tenant: string, identity: FederatedIdentity) {
  const client = await services.clients.get(tenant, identity.clientId);
  if (client?.metadata.kind !== "agent") {
    throw new InvalidGrant(
      `the credential maps to ${JSON.stringify(identity.clientId)}, which is not an agent of this tenant`,
    );
  }
  return client;
}

/** Requested ∩ allowed (∩ asserted); nothing requested: everything allowed (RFC 6749 §3.3 default). */
function grantedScope(requested: string[], identity: FederatedIdentity): string[] {
  const allowed = bounded(identity.allowedScopes, identity.assertedScopes);
  if (requested.length === 0) return allowed;
  const outside = requested.filter((scope) => !allowed.includes(scope));
  if (outside.length > 0) throw new InvalidScope(`the trust does not allow the scope ${outside.join(" ")}`);
  return [...new Set(requested)];
}

function grantedAudience(requested: string[], identity: FederatedIdentity): string[] {
  const allowed = bounded(identity.allowedResources, identity.assertedResources);
  if (requested.length === 0) return allowed;
  const outside = requested.filter((resource) => !allowed.includes(resource));
  if (outside.length > 0) throw new InvalidTarget(`the trust does not allow the resource ${outside.join(" ")}`);
  return [...new Set(requested)];
}

function bounded(allowed: readonly string[], asserted: readonly string[] | undefined): string[] {
  return asserted === undefined ? [...allowed] : allowed.filter((value) => asserted.includes(value));
}

/** RFC 8705 §3.1: the credential's own certificate (x509_ca), else the one presented on the connection. */
function boundCertificate(identity: FederatedIdentity, presented: PresentedCertificate | undefined) {
  return identity.certificateThumbprint ?? (presented ? x5tS256(presented.leaf) : undefined);
}
