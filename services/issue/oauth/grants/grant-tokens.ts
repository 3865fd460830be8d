// Tokens for a user grant (code redemption and refresh): an access token recorded against the grant
// so revoking the grant reaches it, a rotated refresh token, and an ID token for OpenID requests.
// The caller's transaction also carries the audit event, so either all of it commits or none.
import { grantRevoked, tokenIssued } from "../../../shared/audit-events.ts";
import { type GrantRow, GrantStore } from "../../../shared/oauth/grant-store.ts";
import { handleHash, opaqueHandle } from "../../../shared/oauth/handles.ts";
import type { TenantTransaction } from "../../../shared/store/store.ts";
import { mintAccessToken, mintIdToken } from "../minting.ts";
import {
  accessTokenTtl,
  boundCertificate,
  type GrantContext,
  identityProof,
  type TokenResponse,
  tokenType,
} from "./grant.ts";
import type { CIBA_GRANT_TYPE } from "./mandate-grant.ts";

export interface GrantTokenOptions {
  grant: GrantRow;
  scope: string[];
  audience: string[];
  grantType: "authorization_code" | "refresh_token" | typeof CIBA_GRANT_TYPE;
  nonce?: string | undefined;
  /** Whether to mint an ID token (OpenID request at code redemption; RFC: optional on refresh). */
  idToken: boolean;
  /** No refresh token (a mandate's code or CIBA grant: the agent exchanges the mandate for more tokens). */
  noRefreshToken?: boolean | undefined;
  /** An upper bound on the access token's lifetime (a mandate's max_token_ttl and end). */
  maxTtlMs?: number | undefined;
  /** RFC 8693 §4.1: the actors of a token exchange's family (its refreshed tokens keep them). */
  act?: Record<string, unknown> | undefined;
  /** The mandate of a token exchange's family and its agents, root first, for the audit event. */
  mandate?: { id: string; actors: readonly string[] } | undefined;
}

/** Tokens signed and ready, not yet recorded. */
export interface MintedGrantTokens {
  response: TokenResponse;
  accessJti: string;
  accessExpiresAt: number;
  refreshToken: string | undefined;
  options: GrantTokenOptions;
}

/**
 * Signs the tokens. Runs before the transaction that records them: signing may need the store (to
 * load a key), and on SQLite's single connection a query from inside a transaction's callback that
 * does not use the transaction would wait for it forever. Unrecorded tokens are never returned.
 */
export async function mintGrantTokens(context: GrantContext, options: GrantTokenOptions): Promise<MintedGrantTokens> {
  const { services, client, urls, dpop, now } = context;
  const { grant } = options;
  const access = await mintAccessToken(services.signing, {
    tenant: urls.tenant,
    issuer: urls.issuer,
    clientId: client.clientId,
    subject: grant.subject,
    audience: options.audience,
    scope: options.scope,
    ttlMs: Math.min(accessTokenTtl(context), grant.expiresAt - now, options.maxTtlMs ?? Number.POSITIVE_INFINITY),
    now,
    jkt: dpop?.jkt,
    x5tS256: boundCertificate(context),
    authTime: grant.authTime ?? undefined,
    acr: grant.acr ?? undefined,
    amr: grant.amr,
    // Tokens of a grant under a mandate name it (revoking the mandate revokes them) and carry its details.
    mandateId: grant.mandateId ?? undefined,
    authorizationDetails: grant.authorizationDetails,
    roles: grantRoles(grant.claims),
    act: options.act,
  });
  const refreshToken =
    client.metadata.grant_types.includes("refresh_token") && !options.noRefreshToken ? opaqueHandle("mrt") : undefined;
  const idToken =
    options.idToken && options.scope.includes("openid")
      ? await mintIdToken(services.signing, {
          tenant: urls.tenant,
          issuer: urls.issuer,
          clientId: client.clientId,
          subject: grant.subject,
          now,
          ttlMs: services.config.oauth.idTokenTtl,
          authTime: grant.authTime ?? undefined,
          nonce: options.nonce,
          acr: grant.acr ?? undefined,
          amr: grant.amr,
          claims: identityClaims(grant.claims, options.scope),
        })
      : undefined;
  return {
    response: {
      access_token: access.token,
      token_type: tokenType(dpop),
      expires_in: access.expiresIn,
      scope: options.scope.join(" "),
      ...(refreshToken ? { refresh_token: refreshToken } : {}),
      ...(idToken ? { id_token: idToken } : {}),
      ...(grant.mandateId ? { mandate_id: grant.mandateId } : {}),
      ...(grant.authorizationDetails?.length ? { authorization_details: grant.authorizationDetails } : {}),
    },
    accessJti: access.jti,
    accessExpiresAt: access.expiresAt,
    refreshToken,
    options,
  };
}

/** Records minted tokens against their grant, with the audit event, in the caller's transaction. */
export async function recordGrantTokens(
  context: GrantContext,
  tx: TenantTransaction,
  minted: MintedGrantTokens,
): Promise<TokenResponse> {
  const { services, client, urls, dpop, now } = context;
  const { grant, grantType, audience, scope } = minted.options;
  const scoped = services.store.forTenant(urls.tenant);
  const grants = scoped.use(GrantStore, tx);
  await grants.recordAccessToken(minted.accessJti, grant.id, minted.accessExpiresAt);
  // The family's absolute lifetime bounds every refresh token in it.
  if (minted.refreshToken) {
    await grants.insertRefreshToken(handleHash(minted.refreshToken), grant.id, now, grant.expiresAt);
  }
  const event = tokenIssued({
    grantType,
    clientId: client.clientId,
    grant: { id: grant.id, subject: grant.subject, refreshTokenIssued: minted.refreshToken !== undefined },
    jti: minted.accessJti,
    audience,
    scope,
    jkt: dpop?.jkt,
    expiresAt: minted.accessExpiresAt,
    mandate: minted.options.mandate,
    proof: identityProof(context),
  });
  await scoped.recordEvent(tx, event, now);
  return minted.response;
}

/** The login's roles (a federated login's mapped roles, linking.ts), for the access token. */
function grantRoles(claims: Record<string, unknown>): string[] | undefined {
  const roles = claims.roles;
  return Array.isArray(roles) ? roles.filter((role): role is string => typeof role === "string") : undefined;
}

/** OIDC Core §5.4: `profile` releases name claims (and the login's roles), `email` the email claims. */
export function identityClaims(claims: Record<string, unknown>, scope: string[]): Record<string, unknown> {
  const released: Record<string, unknown> = {};
  const take = (names: string[]) => {
    for (const name of names) if (claims[name] !== undefined) released[name] = claims[name];
  };
  if (scope.includes("profile"))
    take(["name", "given_name", "family_name", "preferred_username", "updated_at", "roles"]);
  if (scope.includes("email")) take(["email", "email_verified"]);
  return released;
}

/**
 * Revokes a grant after a replayed code or a reused refresh token, with its audit event, in a
 * transaction of its own: the revocation must survive the error that reports the replay.
 */
export async function revokeCompromisedGrant(
  context: GrantContext,
  grantId: (grants: GrantStore) => Promise<string | null | undefined>,
  reason: "authorization_code_replay" | "refresh_token_reuse",
): Promise<void> {
  const { services, client, urls, now } = context;
  const scoped = services.store.forTenant(urls.tenant);
  const revoked = await scoped.transaction(async (tx) => {
    const grants = scoped.use(GrantStore, tx);
    const id = await grantId(grants);
    if (!id || !(await grants.revokeGrant(id, now))) return false;
    await scoped.recordEvent(tx, grantRevoked(id, client.clientId, reason), now);
    return true;
  });
  // Its access tokens are in the revocation log: this replica refuses them now, the others are told.
  if (revoked) await services.inspector.published(urls.tenant);
}
