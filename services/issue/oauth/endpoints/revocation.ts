// Token revocation (RFC 7009). Revoking a refresh token revokes its grant and every access token
// minted from it (§2.1 SHOULD); revoking an access token lists its jti until it would expire, in the
// revocation log every replica and the revocation feed follow. Introspection sees either at once. Unknown or invalid tokens get 200 (§2.2), and so do tokens of
// another client (nothing revoked): the answer must not tell a valid token from an invalid one.
import { tokenRevoked } from "../../../shared/audit-events.ts";
import { GrantStore } from "../../../shared/oauth/grant-store.ts";
import { handleHash } from "../../../shared/oauth/handles.ts";
import type { TokenInspector } from "../../../shared/oauth/inspector.ts";
import type { Visit } from "../browser.ts";
import type { ClientAuthenticator } from "../client-auth.ts";
import { readForm, sendJson } from "../http.ts";

export async function revocationEndpoint(
  { services, req, res, urls }: Visit,
  auth: ClientAuthenticator,
  inspector: TokenInspector,
): Promise<void> {
  const params = await readForm(req);
  const { client } = await auth.authenticate(req, params, urls, urls.revocation);
  const token = params.require("token");
  const state = await inspector.inspect(urls.tenant, token, params.get("token_type_hint"));
  // §2.1: only the client the token was issued to may revoke it; §2.2: a token the server will not
  // revoke for this client gets the same 200 as an invalid one.
  if (!state.active || state.claims.client_id !== client.clientId) return sendJson(res, 200, {});
  const now = services.clock.now();
  const scoped = services.store.forTenant(urls.tenant);
  await scoped.transaction(async (tx) => {
    const grants = scoped.use(GrantStore, tx);
    if (state.kind === "refresh_token") {
      const row = await grants.findRefreshToken(handleHash(token));
      if (!row) return;
      await grants.revokeGrant(row.grant_id, now);
      await scoped.recordEvent(
        tx,
        tokenRevoked(client.clientId, { kind: "refresh_token", grantId: row.grant_id }),
        now,
      );
    } else {
      await grants.revokeAccessToken(state.claims.jti, state.claims.exp * 1000, now);
      await scoped.recordEvent(tx, tokenRevoked(client.clientId, { kind: "access_token", jti: state.claims.jti }), now);
    }
  });
  // The revoked tokens are in the revocation log: this replica refuses them before answering.
  await inspector.published(urls.tenant);
  sendJson(res, 200, {});
}
