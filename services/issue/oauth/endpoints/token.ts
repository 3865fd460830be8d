// The token endpoint (RFC 6749 §3.2): authenticate the client, validate DPoP, dispatch on
// grant_type to one handler per grant (grants/).
import { CIBA_GRANT_TYPE, TOKEN_EXCHANGE } from "../../clients/metadata.ts";
import { tokenRequestProof } from "../authorization-server-dpop.ts";
import type { Visit } from "../browser.ts";
import type { ClientAuthenticator } from "../client-auth.ts";
import { UnauthorizedClient, UnsupportedGrantType } from "../errors.ts";
import { authorizationCodeGrant } from "../grants/authorization-code.ts";
import { cibaGrant } from "../grants/ciba.ts";
import { clientCredentialsGrant } from "../grants/client-credentials.ts";
import type { GrantHandler } from "../grants/grant.ts";
import { federatedTokenEndpoint, isFederatedRequest } from "../grants/jwt-bearer.ts";
import { refreshTokenGrant } from "../grants/refresh-token.ts";
import { tokenExchangeGrant } from "../grants/token-exchange.ts";
import { readForm, sendJson } from "../http.ts";
import { requireBoundCertificate } from "../rfc8705.ts";

const GRANTS: Record<string, GrantHandler> = {
  authorization_code: authorizationCodeGrant,
  refresh_token: refreshTokenGrant,
  client_credentials: clientCredentialsGrant,
  [TOKEN_EXCHANGE]: tokenExchangeGrant,
  // OpenID CIBA Core §10.1: an agent polling for the tokens of its backchannel mandate request.
  [CIBA_GRANT_TYPE]: cibaGrant,
};

export async function tokenEndpoint(visit: Visit, auth: ClientAuthenticator): Promise<void> {
  const { services, req, res, urls } = visit;
  const params = await readForm(req);
  // Issue 18: external credentials go to the agent federation gateway, where client authentication is optional.
  if (isFederatedRequest(services, params)) return federatedTokenEndpoint(visit, auth, params);
  const { client, method, certificate } = await auth.authenticate(req, params, urls, urls.token);
  const grantType = params.require("grant_type");
  const grant = GRANTS[grantType];
  if (!grant) throw new UnsupportedGrantType(`grant_type "${grantType}" is not supported`);
  if (!client.metadata.grant_types.includes(grantType)) {
    throw new UnauthorizedClient(`the client is not registered for the ${grantType} grant`);
  }
  const dpop = await tokenRequestProof(services, req, urls, client);
  requireBoundCertificate(client, certificate);
  const now = services.clock.now();
  const body = await grant({ services, params, client, urls, dpop, certificate, authMethod: method, now });
  // RFC 9449 §8.2: hand out the next nonce with every response so clients roll forward.
  sendJson(res, 200, body, dpop ? { "dpop-nonce": services.nonces.current(urls.tenant) } : {});
}
