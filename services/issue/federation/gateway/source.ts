// The agent federation gateway's plug-in point (issue 18 item 2): one FederationSource per external
// credential protocol (a JWT from a trusted issuer, an ID-JAG, a SAML bearer assertion, a certificate
// from an external CA, a Mandate API key, another tenant's token). A source only VERIFIES and MAPS:
// it answers which agent client the presented credential stands for and within which bounds (its
// trust's allowed scopes/resources); the gateway (gateway.ts) intersects with the request, checks
// policy, binds the token (DPoP or certificate), mints it and writes the audit entry.
import type { ReplayCache } from "../../../shared/oauth/replay.ts";
import type { PresentedCertificate } from "../../../shared/x509/types.ts";

/** What a source may consult while verifying; everything is per request. */
export interface FederationVerifyContext {
  /** Current time, ms. */
  now: number;
  /** This tenant's issuer identifier (RFC 8414 `issuer`), an acceptable `aud` (RFC 7523 §3 item 3). */
  issuer: string;
  /** This tenant's token endpoint URL, the other acceptable `aud` (RFC 7523 §3 item 3). */
  tokenEndpoint: string;
  /** Single-use memory for assertion identifiers (`jti`, SAML assertion ID); Redis when configured. */
  replay: ReplayCache;
  /** The client certificate the request presented over mTLS (or via the configured proxy), if any. */
  certificate?: PresentedCertificate | undefined;
  /** The subject_token_type (token exchange) or the grant_type (RFC 7521 assertion grants) used. */
  tokenType: string;
  /** The client_id the request names or authenticated as, if any (ID-JAG `client_id` must match it). */
  requestingClientId?: string | undefined;
}

/** An external identity a source verified, mapped to one of this tenant's agent clients. */
export interface FederatedIdentity {
  /** The Mandate agent client it maps to: the internal token's client_id and sub. */
  clientId: string;
  /**
   * RFC 8693 §4.1 actor claims naming the external identity: `sub`, `iss` and
   * `mandate_federation: {protocol, trust}`; may itself carry a nested `act` (a chain kept).
   */
  act: Record<string, unknown>;
  /** The source's protocol name (`jwt`, `id_jag`, `saml`, `x509_ca`, `api_key`, `tenant`). */
  protocol: string;
  /** The external issuer (JWT `iss`, SAML Issuer, CA subject, foreign tenant issuer). */
  issuer: string;
  /** The external subject as the issuer names it (for the audit entry). */
  subject: string;
  /** The trust (federation_trusts / api key / tenant trust row id) that admitted it. */
  trustId: string;
  /** The most the identity may get; the gateway intersects with the request. Empty: nothing. */
  allowedScopes: readonly string[];
  allowedResources: readonly string[];
  /** RFC 9396 authorization details the trust grants (cross-tenant trusts). */
  authorizationDetails?: unknown[] | undefined;
  /** The other tenant, when the identity crosses from one (F6: Authorize input, both audit logs). */
  foreignTenant?: string | undefined;
  /** The source's own ceiling on the token's expiry (e.g. the assertion's or the API key's), ms epoch. */
  notAfter?: number | undefined;
  /**
   * When the credential itself is a certificate (x509_ca): its `x5t#S256`. The token is bound to it
   * (RFC 8705 §3.1) unless a DPoP proof binds it instead.
   */
  certificateThumbprint?: string | undefined;
  /** Scopes/resources the credential itself asks for (ID-JAG `scope`/`resource`): a further bound. */
  assertedScopes?: readonly string[] | undefined;
  assertedResources?: readonly string[] | undefined;
}

/**
 * Refusal by a source. `error` is the OAuth error the token endpoint answers with: `invalid_grant`
 * (RFC 6749 §5.2, RFC 7521 §4.1.1 / RFC 8693 §2.2.2: the assertion or subject token is invalid,
 * untrusted, expired, replayed or unmapped), `invalid_request` (malformed), or `temporarily_unavailable`.
 */
export class FederationRefused extends Error {
  readonly error: "invalid_grant" | "invalid_request" | "temporarily_unavailable";
  constructor(
    message: string,
    error: "invalid_grant" | "invalid_request" | "temporarily_unavailable" = "invalid_grant",
  ) {
    super(message);
    this.name = "FederationRefused";
    this.error = error;
  }
}

export interface FederationSource {
  /** The protocol name recorded in `act.mandate_federation.protocol` and the audit entry. */
  readonly protocol: string;
  /**
   * The RFC 8693 subject_token_type URIs and RFC 7521 assertion grant_type URIs this source verifies
   * (e.g. `urn:ietf:params:oauth:token-type:jwt`, `urn:ietf:params:oauth:grant-type:jwt-bearer`).
   */
  readonly subjectTokenTypes: readonly string[];
  /**
   * Verifies `token` for `tenant` and maps it to an agent, or throws FederationRefused.
   * A source that cannot tell whether `token` is its own (several share the jwt types) throws
   * FederationNotMine so the gateway tries the next.
   */
  verify(tenant: string, token: string, context: FederationVerifyContext): Promise<FederatedIdentity>;
  /**
   * Optional: called after the gateway minted the token for `identity` and before it leaves (and
   * before the gateway's audit entry commits); throwing withholds the token. A source that must
   * remember what it admitted (a cross-tenant crossing, for revocation) records it here.
   */
  issued?(tenant: string, identity: FederatedIdentity, token: IssuedFederatedToken): Promise<void>;
}

/** What the gateway minted for a federated identity (the `issued` hook's argument). */
export interface IssuedFederatedToken {
  jti: string;
  /** ms epoch */
  expiresAt: number;
  clientId: string;
  scope: readonly string[];
  audience: readonly string[];
  /** RFC 9449: the DPoP key the token is bound to, when one is. */
  jkt?: string | undefined;
  /** RFC 8705: the certificate the token is bound to, when one is. */
  x5tS256?: string | undefined;
}

/** Thrown by a source sharing a token type with others when the token is not for it (the next one is tried). */
export class FederationNotMine extends Error {
  constructor(message = "not a credential of this source") {
    super(message);
    this.name = "FederationNotMine";
  }
}

/** RFC 8693 §3 and the ID-JAG draft: the token types and RFC 7521 grant types the gateway knows. */
export const TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt";
export const TOKEN_TYPE_ID_JAG = "urn:ietf:params:oauth:token-type:id-jag";
export const TOKEN_TYPE_SAML2 = "urn:ietf:params:oauth:token-type:saml2";
export const JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer";
export const SAML2_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:saml2-bearer";
/** The RFC 7521 assertion grants the token endpoint accepts for the gateway (discovery lists them). */
export const FEDERATION_ASSERTION_GRANTS = [JWT_BEARER_GRANT, SAML2_BEARER_GRANT] as const;
/** draft-ietf-oauth-identity-assertion-authz-grant: the profile named in authorization_grant_profiles_supported. */
export const ID_JAG_GRANT_PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag";
