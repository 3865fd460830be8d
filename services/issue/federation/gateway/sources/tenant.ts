// The cross-tenant source of the federation gateway (issue 18 item 3): an identity of tenant B
// (an agent, or a human where the trust allows) exchanges an access token B issued at tenant A's
// token endpoint (RFC 8693 token exchange) and gets an A token, within a trust A placed in B
// (federation/tenant-trust/trusts.ts).
//
// The subject token type is a dedicated one, TENANT_ACCESS_TOKEN_TYPE, so the ordinary same-tenant
// exchange of `urn:ietf:params:oauth:token-type:access_token` (mandates/exchange.ts) is untouched and
// no token is ever tried against two tenants' rules. The token must be:
//   · an access token of another tenant B of this deployment: its `iss` is B's issuer
//     ({publicBaseUrl}/t/{B}) and it verifies with B's keys, `typ: at+jwt`, within its lifetime, and
//     is not in B's revocation log (the shared TokenInspector, exactly as B's introspection);
//   · meant for A (RFC 8693 §2.1, RFC 8707): its `aud` names A's issuer or A's token endpoint;
//   · of a kind the trust admits: an agent (its `sub` is its client, or an `act` names the acting
//     agent) or a human (anything else);
//   · bound as presented: a DPoP-bound token only into an A token bound to the same key (RFC 9449
//     §7.1; checked in `issued`, once the gateway verified the request's proof), a certificate-bound
//     one only over mTLS with its certificate (RFC 8705 §3);
//   · carrying authorization details (RFC 9396) only within the trust's (mandates' subset rules).
// The A token's client_id and sub are the trust's agent client in A; `act` keeps B's identities:
// {sub: B's sub, iss: B's issuer, client_id: B's client, mandate_federation: {...}, act: B's own
// `act` chain, each member given B's `iss`} (RFC 8693 §4.1, the newest actor outermost), so no
// identity of B can be mistaken for one of A. Its scopes/resources/authorization details stay
// within the trust's; it expires no later than the trust and B's token.
import { decodeJwt } from "jose";
import {
  type AccessTokenClaims,
  actorChain,
  MAX_ACTOR_CHAIN,
  tokenAudiences,
} from "../../../../shared/oauth/access-token.ts";
import type { TokenInspector } from "../../../../shared/oauth/inspector.ts";
import { issuerUrl } from "../../../../shared/oauth/issuer.ts";
import type { Store } from "../../../../shared/store/store.ts";
import { x5tS256 } from "../../../../shared/x509/thumbprint.ts";
import { grantWidening } from "../../../mandates/narrowing.ts";
import type { OAuthServices } from "../../../oauth/context.ts";
import { type SubjectKind, type TenantTrust, TenantTrusts } from "../../tenant-trust/trusts.ts";
import {
  type FederatedIdentity,
  FederationRefused,
  type FederationSource,
  type FederationVerifyContext,
  type IssuedFederatedToken,
} from "../source.ts";

/** RFC 8693 §3 allows other token type URIs: an access token issued by another tenant of this deployment. */
export const TENANT_ACCESS_TOKEN_TYPE = "urn:mandate:params:oauth:token-type:tenant-access-token";

/** The claim of a crossing token naming the tenant its identity comes from (Authorize input: token.foreign_tenant). */
export const FOREIGN_TENANT_CLAIM = "mandate_foreign_tenant";

export interface TenantSourceDeps {
  trusts: TenantTrusts;
  /** Verifies B's tokens with B's keys and B's revocation state. */
  inspector: Pick<TokenInspector, "checkAccessToken">;
  /** Opens the transaction that records a crossing in both tenants' logs. */
  store: Pick<Store, "transaction">;
}

/** What the gateway needs beyond the identity to record a crossing (tenant-trust/trusts.ts recordCrossing). */
export interface VerifiedCrossing {
  trust: TenantTrust;
  claims: AccessTokenClaims;
}

export class TenantTrustSource implements FederationSource {
  readonly protocol = "tenant";
  readonly subjectTokenTypes = [TENANT_ACCESS_TOKEN_TYPE] as const;
  readonly #deps: TenantSourceDeps;
  /** Verified crossings between verify() and issued(), keyed by the identity the gateway hands back. */
  readonly #pending = new WeakMap<FederatedIdentity, VerifiedCrossing>();

  constructor(deps: TenantSourceDeps) {
    this.#deps = deps;
  }

  /** The source of a server: its store, clock and token inspector (which verifies any tenant's tokens). */
  static of(services: Pick<OAuthServices, "store" | "clock" | "inspector">): TenantTrustSource {
    const trusts = new TenantTrusts(services.store, () => services.clock.now());
    return new TenantTrustSource({ trusts, inspector: services.inspector, store: services.store });
  }

  async verify(tenant: string, token: string, context: FederationVerifyContext): Promise<FederatedIdentity> {
    const { identity, trust, claims } = await this.verifyCrossing(tenant, token, context);
    this.#pending.set(identity, { trust, claims });
    return identity;
  }

  /**
   * After the gateway minted A's token and before it leaves: B's DPoP-bound token crosses only into a
   * token bound to the same key (RFC 9449 §7.1: only its key's holder may use it); then, in one
   * transaction, the trust is checked still active under a lock, the token remembered (revoking the
   * trust revokes it) and the crossing recorded in A's log and B's. Throws to withhold the token.
   */
  async issued(tenant: string, identity: FederatedIdentity, token: IssuedFederatedToken): Promise<void> {
    const crossing = this.#pending.get(identity);
    if (!crossing) throw new FederationRefused("the crossing was not verified by this source");
    this.#pending.delete(identity);
    const { trust, claims } = crossing;
    const boundJkt = claims.cnf?.jkt;
    if (boundJkt && token.jkt !== boundJkt) {
      throw new FederationRefused("the subject token is DPoP-bound: send a DPoP proof by its key");
    }
    const recorded = await this.#deps.store.transaction((tx) =>
      this.#deps.trusts.recordCrossing(tx, {
        trustId: trust.id,
        tenant,
        foreignTenant: trust.foreignTenant,
        foreignIssuer: identity.issuer,
        foreignSubject: claims.sub,
        foreignClientId: claims.client_id,
        foreignActors: actorChain(claims.act).map((actor) => actor.sub),
        foreignJti: claims.jti,
        clientId: token.clientId,
        jti: token.jti,
        scope: token.scope,
        audience: token.audience,
        expiresAt: token.expiresAt,
      }),
    );
    if (!recorded) throw new FederationRefused(`the trust ${trust.id} was revoked or expired meanwhile`);
  }

  /** verify(), with the trust and B's verified claims (for the crossing's audit records). */
  async verifyCrossing(
    tenant: string,
    token: string,
    context: FederationVerifyContext,
  ): Promise<VerifiedCrossing & { identity: FederatedIdentity }> {
    const publicBaseUrl = baseOf(context.issuer, tenant);
    const foreignTenant = foreignTenantOf(token, tenant, publicBaseUrl);
    const foreignIssuer = issuerUrl(publicBaseUrl, foreignTenant);
    const checked = await this.#deps.inspector.checkAccessToken(foreignTenant, token);
    if (!checked.valid)
      throw new FederationRefused(`the subject token is not usable in ${foreignTenant}: ${checked.message}`);
    const claims = checked.claims;
    requireAudience(claims, context);
    requireBinding(claims, context);
    const kind = subjectKindOf(claims);
    const trust = await this.#trustFor(tenant, foreignTenant, kind);
    const details = detailsWithin(claims, trust, context.now);
    const identity: FederatedIdentity = {
      clientId: trust.clientId,
      act: foreignActor(claims, foreignIssuer, foreignTenant, trust),
      protocol: this.protocol,
      issuer: foreignIssuer,
      subject: claims.sub,
      trustId: trust.id,
      allowedScopes: trust.scopes,
      allowedResources: trust.resources,
      authorizationDetails: details,
      foreignTenant,
      notAfter: Math.min(trust.expiresAt, claims.exp * 1000),
    };
    return { identity, trust, claims };
  }

  async #trustFor(tenant: string, foreignTenant: string, kind: SubjectKind): Promise<TenantTrust> {
    const trusts = await this.#deps.trusts.activeFor(tenant, foreignTenant);
    if (trusts.length === 0) throw new FederationRefused(`${tenant} has no active trust in ${foreignTenant}`);
    const trust = trusts.find((t) => t.subjectKinds.includes(kind));
    if (!trust)
      throw new FederationRefused(
        `${tenant} trusts ${foreignTenant}'s ${trusts[0]?.subjectKinds.join(", ")}, not its ${kind}s`,
      );
    return trust;
  }
}

/** A's issuer is {publicBaseUrl}/t/{A}: the deployment's base, where B's issuer must live too. */
function baseOf(issuer: string, tenant: string): string {
  return issuer.slice(0, issuer.length - `/t/${tenant}`.length);
}

/** B, read from the unverified `iss` (it only chooses whose keys verify the token). */
function foreignTenantOf(token: string, tenant: string, publicBaseUrl: string): string {
  let iss: unknown;
  try {
    iss = decodeJwt(token).iss;
  } catch {
    throw new FederationRefused("the subject token is not a JWT access token", "invalid_request");
  }
  const prefix = issuerUrl(publicBaseUrl, "");
  const foreign = typeof iss === "string" && iss.startsWith(prefix) ? iss.slice(prefix.length) : "";
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(foreign)) {
    throw new FederationRefused("the subject token was not issued by a tenant of this deployment");
  }
  if (foreign === tenant) {
    throw new FederationRefused(
      "the subject token is this tenant's own: exchange it as urn:ietf:params:oauth:token-type:access_token",
    );
  }
  return foreign;
}

/** RFC 8693 §2.1 / RFC 8707: the token must be meant for A — its `aud` names A's issuer or token endpoint. */
function requireAudience(claims: AccessTokenClaims, context: FederationVerifyContext): void {
  const audiences = tokenAudiences(claims);
  if (!audiences.some((aud) => aud === context.issuer || aud === context.tokenEndpoint)) {
    throw new FederationRefused(`the subject token's audience does not name ${context.issuer}`);
  }
}

/** RFC 8705 §3: a certificate-bound token crosses only over mTLS with its certificate (DPoP: `issued`). */
function requireBinding(claims: AccessTokenClaims, context: FederationVerifyContext): void {
  const x5t = claims.cnf?.["x5t#S256"];
  if (x5t && (context.certificate ? x5tS256(context.certificate.leaf) : undefined) !== x5t) {
    throw new FederationRefused("the subject token is certificate-bound: present its certificate over mTLS");
  }
}

/** An agent acts for itself (`sub` = its client, RFC 9068 §2.2) or is named by `act`; anyone else is a human. */
function subjectKindOf(claims: AccessTokenClaims): SubjectKind {
  return claims.sub === claims.client_id || claims.act !== undefined ? "agent" : "human";
}

/** B's authorization details, each covered by one of the trust's (narrowing.ts); none: the trust's. */
function detailsWithin(claims: AccessTokenClaims, trust: TenantTrust, now: number): unknown[] {
  const requested = (claims.authorization_details ?? []) as TenantTrust["authorizationDetails"];
  if (requested.length === 0) return trust.authorizationDetails;
  const widening = grantWidening(
    { scopes: [], resources: [], authorizationDetails: requested, at: now },
    {
      scopes: [],
      resources: [],
      authorizationDetails: trust.authorizationDetails,
      notBefore: trust.createdAt,
      expiresAt: trust.expiresAt,
      maxTokenTtlMs: null,
      usageLimits: [],
      maxDelegationDepth: 0,
      mayAct: [],
    },
  );
  if (widening) throw new FederationRefused(`the subject token goes beyond the trust: ${widening.message}`);
  return requested;
}

/** B's identities as A's `act`: B's token itself as the actor, its own chain nested, each with B's `iss`. */
function foreignActor(
  claims: AccessTokenClaims,
  foreignIssuer: string,
  foreignTenant: string,
  trust: TenantTrust,
): Record<string, unknown> {
  return {
    sub: claims.sub,
    iss: foreignIssuer,
    client_id: claims.client_id,
    mandate_federation: { protocol: "tenant", trust: trust.id, tenant: foreignTenant },
    ...(claims.act ? { act: withIssuer(claims.act, foreignIssuer, 1) } : {}),
  };
}

function withIssuer(act: Record<string, unknown>, issuer: string, depth: number): Record<string, unknown> {
  const { act: inner, ...rest } = act;
  const nested = typeof inner === "object" && inner !== null && depth < MAX_ACTOR_CHAIN;
  return {
    ...rest,
    iss: typeof rest.iss === "string" ? rest.iss : issuer,
    ...(nested ? { act: withIssuer(inner as Record<string, unknown>, issuer, depth + 1) } : {}),
  };
}
