// Token revocation (RFC 7009). Revoking a refresh token revokes its grant and every access token
// minted from it (§2.1 SHOULD); revoking an access token lists its jti until it would expire.
// Introspection sees either at once. Unknown or invalid tokens get 200 (§2.2), and so do tokens of
// another client (nothing revoked): the answer must not tell a valid token from an invalid one.
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { GrantStore } from "../../shared/oauth/grant-store.ts";
import type { TokenInspector } from "../../shared/oauth/inspector.ts";
import type { ClientAuthenticator } from "./client-auth.ts";
import type { OAuthServices, TenantUrls } from "./context.ts";
import { readForm, sendJson } from "./http.ts";
import { handleHash } from "./tokens.ts";

export async function revocationEndpoint(
  services: OAuthServices,
  auth: ClientAuthenticator,
  inspector: TokenInspector,
  req: IncomingMessage,
  res: ServerResponse,
  urls: TenantUrls,
): Promise<void> {
  const params = await readForm(req);
  const { client } = await auth.authenticate(req, params, urls, urls.revocation);
  const token = params.require("token");
  const state = await inspector.inspect(urls.tenant, token, params.get("token_type_hint"));
  // §2.1: only the client the token was issued to may revoke it; §2.2: a token the server will not
  // revoke for this client gets the same 200 as an invalid one.
  if (!state.active || state.claims.client_id !== client.clientId) return sendJson(res, 200, {});
  const now = services.clock.now();
  const grants = new GrantStore(urls.tenant);
  const scoped = services.store.forTenant(urls.tenant);
  await scoped.transaction(async (tx) => {
    let payload: Record<string, unknown>;
    if (state.kind === "refresh_token") {
      const row = await grants.findRefreshToken(tx, handleHash(token));
      if (!row) return;
      await grants.revokeGrant(tx, row.grant_id, now);
      payload = { kind: "refresh_token", grant_id: row.grant_id, client_id: client.clientId };
    } else {
      await grants.revokeAccessToken(tx, state.claims.jti, state.claims.exp * 1000);
      payload = { kind: "access_token", jti: state.claims.jti, client_id: client.clientId };
    }
    const parties = { client: { id: client.clientId, kind: "PARTY_KIND_SERVICE" } };
    await scoped.recordEvent(tx, { eventId: randomUUID(), type: "token.revoked.v1", payload, parties }, now);
  });
  sendJson(res, 200, {});
}
