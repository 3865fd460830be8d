// Minting JWT access tokens (RFC 9068) and ID tokens (OIDC Core §2), signed by the tenant's current
// key through the Signer. (Opaque handles — codes, refresh tokens — are shared/oauth/handles.ts.)
import type { SigningClient } from "../../shared/signing.ts";
import { uuidV7 } from "../../shared/uuid-v7.ts";

export interface AccessTokenRequest {
  tenant: string;
  issuer: string;
  clientId: string;
  subject: string;
  /** Resource indicators (RFC 8707); empty: the token is for the issuer itself (userinfo). */
  audience: string[];
  scope: string[];
  ttlMs: number;
  now: number;
  jkt?: string | undefined;
  /** RFC 8705 §3.1: the SHA-256 thumbprint of the client certificate the token is bound to. */
  x5tS256?: string | undefined;
  authTime?: number | undefined;
  acr?: string | undefined;
  amr?: string[] | undefined;
  /** RFC 8693 §4.1: the acting party, nested once per further hop (token exchange of a mandate). */
  act?: Record<string, unknown> | undefined;
  /** The mandate the token was exchanged from: revoking it (or an ancestor) revokes the token. */
  mandateId?: string | undefined;
  /** RFC 9396 §9: the authorization details the token carries (within its mandate's). */
  authorizationDetails?: unknown[] | undefined;
  /** RFC 9068 §2.2.3.1: the user's roles (federated logins' mapped roles), which Authorize reads. */
  roles?: string[] | undefined;
}

export interface MintedAccessToken {
  token: string;
  jti: string;
  expiresAt: number;
  expiresIn: number;
  claims: Record<string, unknown>;
}

export async function mintAccessToken(signing: SigningClient, r: AccessTokenRequest): Promise<MintedAccessToken> {
  const iat = Math.floor(r.now / 1000);
  const exp = iat + Math.max(1, Math.floor(r.ttlMs / 1000));
  // A UUIDv7 (time first, 74 random bits): the rows keyed by jti — the `tokens` counted per token
  // (mandate_consumptions), access tokens of refresh families, revocations — land at the end of
  // their indexes, not on a random page each.
  const jti = uuidV7(r.now);
  // RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti; scope (§2.2.3); cnf (RFC 9449 §6.1).
  const claims: Record<string, unknown> = {
    iss: r.issuer,
    sub: r.subject,
    aud: audienceClaim(r.audience, r.issuer),
    exp,
    iat,
    jti,
    client_id: r.clientId,
    ...(r.scope.length ? { scope: r.scope.join(" ") } : {}),
    ...(r.authTime !== undefined ? { auth_time: Math.floor(r.authTime / 1000) } : {}),
    ...(r.acr ? { acr: r.acr } : {}),
    ...(r.amr?.length ? { amr: r.amr } : {}),
    ...confirmation(r),
    ...(r.act ? { act: r.act } : {}),
    ...(r.mandateId ? { mandate_id: r.mandateId } : {}),
    ...(r.authorizationDetails?.length ? { authorization_details: r.authorizationDetails } : {}),
    ...(r.roles?.length ? { roles: r.roles } : {}),
  };
  const { jwt } = await signing.signJwt(r.tenant, claims, "at+jwt");
  return { token: jwt, jti, expiresAt: exp * 1000, expiresIn: exp - iat, claims };
}

/** RFC 7800 cnf: the DPoP key (RFC 9449 §6.1) or the client certificate (RFC 8705 §3.1), never both. */
function confirmation(r: AccessTokenRequest): { cnf?: Record<string, string> } {
  if (r.jkt) return { cnf: { jkt: r.jkt } };
  if (r.x5tS256) return { cnf: { "x5t#S256": r.x5tS256 } };
  return {};
}

function audienceClaim(audience: string[], issuer: string): string | string[] {
  if (audience.length === 0) return issuer;
  return audience.length === 1 ? (audience[0] as string) : audience;
}

export interface IdTokenRequest {
  tenant: string;
  issuer: string;
  clientId: string;
  subject: string;
  now: number;
  ttlMs: number;
  authTime?: number | undefined;
  nonce?: string | undefined;
  acr?: string | undefined;
  amr?: string[] | undefined;
  claims?: Record<string, unknown> | undefined;
}

/** OIDC Core §2 ID token. */
export async function mintIdToken(signing: SigningClient, r: IdTokenRequest): Promise<string> {
  const iat = Math.floor(r.now / 1000);
  const claims = {
    ...(r.claims ?? {}),
    iss: r.issuer,
    sub: r.subject,
    aud: r.clientId,
    azp: r.clientId,
    exp: iat + Math.floor(r.ttlMs / 1000),
    iat,
    ...(r.authTime !== undefined ? { auth_time: Math.floor(r.authTime / 1000) } : {}),
    ...(r.nonce ? { nonce: r.nonce } : {}),
    ...(r.acr ? { acr: r.acr } : {}),
    ...(r.amr?.length ? { amr: r.amr } : {}),
  };
  return (await signing.signJwt(r.tenant, claims, "JWT")).jwt;
}
