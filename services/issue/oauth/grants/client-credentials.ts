// RFC 6749 §4.4: the client acts on its own behalf; `sub` is the client (RFC 9068 §2.2).
import { randomUUID } from "node:crypto";
import { parseResources, requirePermittedResources } from "../rfc8707.ts";
import { grantableScopes, parseScope } from "../scopes.ts";
import { clientOnly, mintAccessToken } from "../tokens.ts";
import { accessTokenTtl, type GrantContext, type TokenResponse, tokenType } from "./grant.ts";

export async function clientCredentialsGrant(context: GrantContext): Promise<TokenResponse> {
  const { services, params, client, urls, dpop, now } = context;
  const requested = parseScope(params.get("scope"));
  // RFC 6749 §3.3: with no scope requested, the client's registered scope is the default.
  const scope = requested.length
    ? grantableScopes(requested, client.metadata.scope, false)
    : parseScope(client.metadata.scope);
  const audience = parseResources(params.all("resource"));
  // RFC 8707 §2: only resources this client may target (its own list, else the tenant default).
  requirePermittedResources(audience, await services.resources.allowedFor(client));
  const token = await mintAccessToken(services.signing, {
    tenant: urls.tenant,
    issuer: urls.issuer,
    clientId: client.clientId,
    subject: client.clientId,
    audience,
    scope,
    ttlMs: accessTokenTtl(context),
    now,
    jkt: dpop?.jkt,
  });
  await services.events.record(
    urls.tenant,
    {
      eventId: randomUUID(),
      type: "token.issued.v1",
      payload: {
        grant_type: "client_credentials",
        jti: token.jti,
        aud: audience,
        scope,
        ...(dpop ? { cnf_jkt: dpop.jkt } : {}),
        exp: token.expiresAt,
      },
      parties: clientOnly(client.clientId),
    },
    now,
  );
  return {
    access_token: token.token,
    token_type: tokenType(dpop),
    expires_in: token.expiresIn,
    ...(scope.length ? { scope: scope.join(" ") } : {}),
  };
}
