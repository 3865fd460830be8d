// Token revocation (RFC 7009). Revoking a refresh token revokes its grant and every access token
// minted from it (§2.1 SHOULD); revoking an access token lists its jti until it would expire.
// Introspection sees either at once. Unknown or invalid tokens get 200 (§2.2).
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { GrantStore } from "../../shared/oauth/grant-store.ts";
import type { TokenInspector } from "../../shared/oauth/inspector.ts";
import type { ClientAuthenticator } from "./client-auth.ts";
import type { OAuthServices, TenantUrls } from "./context.ts";
import { UnauthorizedClient } from "./errors.ts";
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
  if (!state.active) return sendJson(res, 200, {});
  // §2.1: the server verifies the token was issued to the client making the request.
  if (state.claims.client_id !== client.clientId) {
    throw new UnauthorizedClient("the token was not issued to this client");
  }
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
