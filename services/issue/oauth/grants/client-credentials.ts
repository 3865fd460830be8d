// RFC 6749 §4.4: the client acts on its own behalf; `sub` is the client (RFC 9068 §2.2).
import { tokenIssued } from "../../../shared/audit-events.ts";
import { mintAccessToken } from "../minting.ts";
import { parseResources, requirePermittedResources } from "../rfc8707.ts";
import { grantableScopes, parseScope } from "../scopes.ts";
import {
  accessTokenTtl,
  boundCertificate,
  type GrantContext,
  identityProof,
  type TokenResponse,
  tokenType,
} from "./grant.ts";

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
    x5tS256: boundCertificate(context),
  });
  const event = tokenIssued({
    grantType: "client_credentials",
    clientId: client.clientId,
    jti: token.jti,
    audience,
    scope,
    jkt: dpop?.jkt,
    expiresAt: token.expiresAt,
    proof: identityProof(context),
  });
  // Nothing else is written for this grant: the event commits alone (group-committed), before the token leaves.
  await services.store.forTenant(urls.tenant).commitEvent(event, now);
  return {
    access_token: token.token,
    token_type: tokenType(dpop),
    expires_in: token.expiresIn,
    ...(scope.length ? { scope: scope.join(" ") } : {}),
  };
}
