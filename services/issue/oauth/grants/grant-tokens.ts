// Tokens for a user grant (code redemption and refresh): an access token recorded against the grant
// so revoking the grant reaches it, a rotated refresh token, and an ID token for OpenID requests.
// The caller's transaction also carries the audit event, so either all of it commits or none.
import { randomUUID } from "node:crypto";
import type { GrantRow, GrantStore } from "../../../shared/oauth/grant-store.ts";
import type { Transaction } from "../../../shared/store/store.ts";
import { handleHash, mintAccessToken, mintIdToken, opaqueHandle } from "../tokens.ts";
import { accessTokenTtl, type GrantContext, type TokenResponse, tokenType } from "./grant.ts";

export interface GrantTokenOptions {
  grant: GrantRow;
  scope: string[];
  audience: string[];
  grantType: "authorization_code" | "refresh_token";
  nonce?: string | undefined;
  /** Whether to mint an ID token (OpenID request at code redemption; RFC: optional on refresh). */
  idToken: boolean;
}

export async function issueGrantTokens(
  context: GrantContext,
  tx: Transaction,
  grants: GrantStore,
  options: GrantTokenOptions,
): Promise<TokenResponse> {
  const { services, client, urls, dpop, now } = context;
  const { grant } = options;
  const access = await mintAccessToken(services.signing, {
    tenant: urls.tenant,
    issuer: urls.issuer,
    clientId: client.clientId,
    subject: grant.subject,
    audience: options.audience,
    scope: options.scope,
    ttlMs: Math.min(accessTokenTtl(context), grant.expiresAt - now),
    now,
    jkt: dpop?.jkt,
    authTime: grant.authTime ?? undefined,
    acr: grant.acr ?? undefined,
    amr: grant.amr,
  });
  await grants.recordAccessToken(tx, access.jti, grant.id, access.expiresAt);

  let refreshToken: string | undefined;
  if (client.metadata.grant_types.includes("refresh_token")) {
    refreshToken = opaqueHandle("mrt");
    // The family's absolute lifetime bounds every refresh token in it.
    await grants.insertRefreshToken(tx, handleHash(refreshToken), grant.id, now, grant.expiresAt);
  }
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

  await services.store.forTenant(urls.tenant).recordEvent(
    tx as never,
    {
      eventId: randomUUID(),
      type: "token.issued.v1",
      payload: {
        grant_type: options.grantType,
        grant_id: grant.id,
        client_id: client.clientId,
        subject: grant.subject,
        jti: access.jti,
        aud: options.audience,
        scope: options.scope,
        refresh_token_issued: refreshToken !== undefined,
        ...(dpop ? { cnf_jkt: dpop.jkt } : {}),
        exp: access.expiresAt,
      },
    },
    now,
  );
  return {
    access_token: access.token,
    token_type: tokenType(dpop),
    expires_in: access.expiresIn,
    scope: options.scope.join(" "),
    ...(refreshToken ? { refresh_token: refreshToken } : {}),
    ...(idToken ? { id_token: idToken } : {}),
  };
}

/** OIDC Core §5.4: `profile` releases name claims, `email` the email claims. */
export function identityClaims(claims: Record<string, unknown>, scope: string[]): Record<string, unknown> {
  const released: Record<string, unknown> = {};
  const take = (names: string[]) => {
    for (const name of names) if (claims[name] !== undefined) released[name] = claims[name];
  };
  if (scope.includes("profile")) take(["name", "given_name", "family_name", "preferred_username", "updated_at"]);
  if (scope.includes("email")) take(["email", "email_verified"]);
  return released;
}
