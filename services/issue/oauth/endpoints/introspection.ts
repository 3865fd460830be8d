// Token introspection (RFC 7662) for authenticated clients (resource servers), with signed JWT
// responses (RFC 9701) when the caller asks for application/token-introspection+jwt. RFC 7662 §4:
// a client learns about a token only if it is the token's own client, one of its audiences, or
// holds the `mandate:introspect` scope (resource servers); a refresh token only its own client may
// see. Everyone else gets {"active": false}, exactly as for an unknown token.
import type { TokenInspector, TokenState } from "../../../shared/oauth/inspector.ts";
import { API_SCOPES } from "../../../shared/oauth/mandate-api.ts";
import type { RegisteredClient } from "../../clients/metadata.ts";
import type { Visit } from "../browser.ts";
import type { ClientAuthenticator } from "../client-auth.ts";
import { InvalidClient } from "../errors.ts";
import { readForm, sendJson, sendText } from "../http.ts";

const JWT_MEDIA_TYPE = "application/token-introspection+jwt";

export async function introspectionEndpoint(
  { services, req, res, urls }: Visit,
  auth: ClientAuthenticator,
  inspector: TokenInspector,
): Promise<void> {
  const params = await readForm(req);
  const { client, method } = await auth.authenticate(req, params, urls, urls.introspection);
  // RFC 7662 §2.1: the endpoint requires authorisation; public clients cannot protect credentials.
  if (method === "none") throw new InvalidClient("introspection requires an authenticated client");
  const token = params.require("token");
  const inspected = await inspector.inspect(urls.tenant, token, params.get("token_type_hint"));
  const state: TokenState = mayIntrospect(client, inspected) ? inspected : { active: false };
  const body = introspectionResponse(state);
  if (wantsJwt(req.headers.accept)) {
    // RFC 9701 §5: iss, aud (the caller), iat, and the RFC 7662 object in token_introspection.
    const iat = Math.floor(services.clock.now() / 1000);
    // exp is not required by RFC 9701, but bounds how long a captured response could be replayed.
    const claims = { iss: urls.issuer, aud: client.clientId, iat, exp: iat + 60, token_introspection: body };
    const { jwt } = await services.signing.signJwt(urls.tenant, claims, "token-introspection+jwt");
    return sendText(res, 200, jwt, JWT_MEDIA_TYPE);
  }
  sendJson(res, 200, body);
}

/** RFC 7662 §4: whether `client` may learn about this token (default deny). */
export function mayIntrospect(client: RegisteredClient, state: TokenState): boolean {
  if (!state.active) return true;
  if (state.claims.client_id === client.clientId) return true;
  // Refresh tokens are credentials of their client alone.
  if (state.kind === "refresh_token") return false;
  const aud = state.claims.aud;
  if ((Array.isArray(aud) ? aud : [aud]).includes(client.clientId)) return true;
  // The scope that lets a resource server introspect access tokens it is not an audience of.
  return client.metadata.scope.split(" ").includes(API_SCOPES.introspect);
}

/** RFC 7662 §2.2 members; for a DPoP-bound token also `cnf` and token_type DPoP (RFC 9449 §6.2). */
export function introspectionResponse(state: TokenState): Record<string, unknown> {
  if (!state.active) return { active: false };
  if (state.kind === "refresh_token") {
    const { claims } = state;
    return {
      active: true,
      token_type: "refresh_token",
      ...claims,
      ...(state.cnfJkt ? { cnf: { jkt: state.cnfJkt } } : {}),
    };
  }
  const c = state.claims;
  return {
    active: true,
    iss: c.iss,
    sub: c.sub,
    aud: c.aud,
    client_id: c.client_id,
    scope: c.scope,
    exp: c.exp,
    iat: c.iat,
    ...(c.nbf !== undefined ? { nbf: c.nbf } : {}),
    jti: c.jti,
    token_type: c.cnf?.jkt ? "DPoP" : "Bearer",
    ...(c.cnf ? { cnf: c.cnf } : {}),
    ...(c.act ? { act: c.act } : {}),
    // RFC 9396 §9.2; the mandate the token derives from (its revocation ends the token).
    ...(c.authorization_details ? { authorization_details: c.authorization_details } : {}),
    ...(c.mandate_id ? { mandate_id: c.mandate_id } : {}),
    ...(c.auth_time !== undefined ? { auth_time: c.auth_time } : {}),
    ...(c.acr ? { acr: c.acr } : {}),
  };
}

function wantsJwt(accept: string | undefined): boolean {
  return (accept ?? "").split(",").some((part) => part.split(";")[0]?.trim().toLowerCase() === JWT_MEDIA_TYPE);
}
