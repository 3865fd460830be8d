// The agent federation gateway at the token endpoint: the RFC 7523 §2.1 JWT bearer grant
// (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`, `assertion`: a JWT of a trusted issuer
// or an ID-JAG), the RFC 7522 §2.1 SAML 2.0 bearer grant (`…:saml2-bearer`, `assertion`:
// base64url of the assertion), and RFC 8693 token exchange of an external subject token
// (subject_token_type jwt, id-jag, saml2, or a type a further source verifies).
// RFC 7521 §4.2: the assertion is the authorization grant; client authentication is optional. With
// no client credentials the mapped agent is the client; with credentials (Basic, client_secret_post,
// private_key_jwt) the client must authenticate and be the agent the credential maps to.
import type { IncomingMessage } from "node:http";
import { TOKEN_EXCHANGE } from "../../clients/metadata.ts";
import { isFederatedTokenType, issueFederatedToken } from "../../federation/gateway/gateway.ts";
import { FEDERATION_ASSERTION_GRANTS } from "../../federation/gateway/source.ts";
import { verifyAuthorizationServerProof } from "../authorization-server-dpop.ts";
import type { Visit } from "../browser.ts";
import type { ClientAuthenticator } from "../client-auth.ts";
import type { OAuthServices } from "../context.ts";
import { InvalidGrant, InvalidRequest } from "../errors.ts";
import { type Params, sendJson } from "../http.ts";
import { parseResources } from "../rfc8707.ts";
import { parseScope } from "../scopes.ts";

const ASSERTION_GRANTS: readonly string[] = FEDERATION_ASSERTION_GRANTS;

/** Whether the token request is for the federation gateway (and not a mandate's token exchange). */
export function isFederatedRequest(services: OAuthServices, params: Params): boolean {
  const grantType = params.get("grant_type");
  if (grantType !== undefined && ASSERTION_GRANTS.includes(grantType)) return true;
  if (grantType !== TOKEN_EXCHANGE) return false;
  const type = params.get("subject_token_type");
  return type !== undefined && isFederatedTokenType(services, type);
}

function presentsClientCredentials(req: IncomingMessage, params: Params): boolean {
  return req.headers.authorization !== undefined || params.has("client_secret") || params.has("client_assertion");
}

export async function federatedTokenEndpoint(
  { services, req, res, urls }: Visit,
  auth: ClientAuthenticator,
  params: Params,
): Promise<void> {
  const grantType = params.require("grant_type");
  const exchange = grantType === TOKEN_EXCHANGE;
  if (exchange && params.has("actor_token")) {
    throw new InvalidRequest("an actor_token is not accepted with an external subject token");
  }
  const certificate = auth.presented(req);
  // RFC 9449 §4.3 first: a use_dpop_nonce answer must come before the single-use assertion is spent.
  const dpop =
    req.headers.dpop === undefined ? undefined : await verifyAuthorizationServerProof(services, req, urls, urls.token);
  const authenticated = presentsClientCredentials(req, params)
    ? await auth.authenticate(req, params, urls, urls.token, certificate)
    : undefined;
  const request = {
    services,
    urls,
    now: services.clock.now(),
    grantType,
    tokenType: exchange ? params.require("subject_token_type") : grantType,
    token: exchange ? params.require("subject_token") : params.require("assertion"),
    scope: parseScope(params.get("scope")),
    resources: parseResources([...params.all("resource"), ...(exchange ? params.all("audience") : [])]),
    authenticatedClientId: authenticated?.client.clientId,
    namedClientId: params.get("client_id"),
    dpop,
    certificate,
  };
  // A refused credential counts like a failed client authentication, per IP (and is refused up front
  // while that bucket is empty): assertions cannot be sprayed at the gateway.
  await services.limits.beforeClientAuthentication(urls.tenant, undefined, req);
  const body = await issueFederatedToken(request).catch(async (error: unknown) => {
    if (error instanceof InvalidGrant) await services.limits.clientAuthenticationFailed(urls.tenant, undefined, req);
    throw error;
  });
  // RFC 9449 §8.2: the next nonce with every response.
  sendJson(res, 200, body, dpop ? { "dpop-nonce": services.nonces.current(urls.tenant) } : {});
}
