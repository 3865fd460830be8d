// The authorization endpoint (RFC 6749 §3.1, OAuth 2.1 §4.1), GET or POST. Every response to the
// client carries `iss` (RFC 9207); errors go to the redirect URI only after client and redirect URI
// are verified, otherwise they are shown as a page (RFC 6749 §4.1.2.1).

import type { RegisteredClient } from "../../clients/metadata.ts";
import { MetadataDocumentError } from "../../clients/metadata-documents.ts";
import {
  matchRedirectUri,
  RedirectableError,
  validateAuthorizationRequest,
  withMandateAsk,
} from "../authorization-request.ts";
import { redirectError, sendErrorPage, sendTooManyPage, type Visit } from "../browser.ts";
import { InvalidRequest, InvalidRequestUri, OAuthError } from "../errors.ts";
import { type Params, queryParams, readForm } from "../http.ts";
import { startInteraction } from "../interaction.ts";
import { takePushedRequest } from "./par.ts";

export async function authorizationEndpoint(visit: Visit): Promise<void> {
  const { services, req, res } = visit;
  const limited = await services.limits.authorize(req);
  if (!limited.allowed) return sendTooManyPage(res, limited.retryAfterSeconds);
  const params = req.method === "POST" ? await readForm(req) : queryParams(req);
  const client = await clientOf(visit, params.get("client_id"));
  if (client instanceof OAuthError) return sendErrorPage(res, client);
  const effective = await effectiveParams(visit, client, params);
  if (effective instanceof OAuthError) return sendErrorPage(res, effective);
  const redirectUri = matchRedirectUri(client, effective.get("redirect_uri"));
  if (!redirectUri) return sendErrorPage(res, new InvalidRequest("redirect_uri is not registered for this client"));
  try {
    const allowed = await services.resources.allowedFor(client);
    const request = validateAuthorizationRequest(effective, client, redirectUri, allowed);
    await startInteraction(
      visit,
      await withMandateAsk(services, visit.urls.tenant, effective, client, request, allowed),
    );
  } catch (error) {
    if (!(error instanceof RedirectableError)) throw error;
    const to = { clientId: client.clientId, origin: client.origin, redirectUri: error.redirectUri, state: error.state };
    await redirectError(visit, to, error.cause);
  }
}

/** The client named by client_id, or the error to show (it cannot be redirected before this is known). */
async function clientOf(
  { services, urls }: Visit,
  clientId: string | undefined,
): Promise<RegisteredClient | OAuthError> {
  if (!clientId) return new InvalidRequest("client_id is required");
  try {
    return (await services.clients.resolve(urls.tenant, clientId)) ?? new InvalidRequest("unknown client_id");
  } catch (error) {
    if (error instanceof MetadataDocumentError) return new InvalidRequest(error.message);
    throw error;
  }
}

/** The request's parameters: the pushed request when request_uri names one (RFC 9126 §4), else the query or form. */
async function effectiveParams(visit: Visit, client: RegisteredClient, params: Params): Promise<Params | OAuthError> {
  const requestUri = params.get("request_uri");
  if (requestUri) {
    return (
      (await takePushedRequest(visit, client, requestUri)) ??
      new InvalidRequestUri("request_uri is unknown, expired or used")
    );
  }
  // RFC 9126 §6: this client must push its requests first.
  if (client.metadata.require_pushed_authorization_requests) {
    return new InvalidRequest("this client must use pushed authorization requests");
  }
  return params;
}
