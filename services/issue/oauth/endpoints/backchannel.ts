// The backchannel authentication endpoint (OpenID CIBA Core 1.0 §7, poll mode only): how an agent
// with no browser asks a human for a mandate (issue 15 item 3, the asynchronous grant). The agent
// authenticates exactly as at the token endpoint, names the human with login_hint, and asks with
// RFC 9396 authorization_details and the `mandate` parameter (checked when asked, with the rules of
// the interactive grant: mandates/oauth-request.ts). The answer is an auth_req_id (a 256-bit opaque
// handle, stored hashed), its lifetime and the polling interval (§7.3); the human approves — possibly
// narrowed — or denies on the pending page (pending-mandates.ts) and the agent polls the token
// endpoint (grants/ciba.ts).
//
// Choices within CIBA, each refused with invalid_request rather than silently ignored:
// - `scope` need not contain `openid` (§7.1 requires it because CIBA authenticates a user to the
//   client; a mandate request asks for authority, and the human reaches the agent as the access
//   token's `sub`). When the agent may obtain `openid` and asks for it, an ID token comes with the
//   tokens (§10.1.1). Scopes are limited to the agent's registered ones.
// - login_hint only (no login_hint_token, id_token_hint), no user_code (§7.1, metadata
//   backchannel_user_code_parameter_supported=false), no signed request object (§7.1.1), no
//   acr_values (the approval happens in whatever session the human has), poll mode only
//   (no client_notification_token).
import { randomBytes } from "node:crypto";
import { mandateRequested } from "../../../shared/audit-events.ts";
import type { Config } from "../../../shared/config.ts";
import { opaqueHandle } from "../../../shared/oauth/handles.ts";
import { CIBA_GRANT_TYPE } from "../../clients/metadata.ts";
import { mandateAsk } from "../../mandates/oauth-request.ts";
import { type MandateRequest, MandateRequestStore } from "../../mandates/request-store.ts";
import type { Visit } from "../browser.ts";
import type { ClientAuthenticator } from "../client-auth.ts";
import type { TenantUrls } from "../context.ts";
import { InvalidBindingMessage, InvalidRequest, UnauthorizedClient, UnknownUserId } from "../errors.ts";
import { type Params, readForm, sendJson } from "../http.ts";
import { parseResources, requirePermittedResources } from "../rfc8707.ts";
import { grantableScopes, parseScope } from "../scopes.ts";

/** §7.3 interval: the default CIBA names (5 s). */
export const POLL_INTERVAL_S = 5;
/** How long an auth_req_id lives when requested_expiry is absent, and at most. */
const DEFAULT_EXPIRY_S = 600;
const MAX_EXPIRY_S = 86_400;
/** §7.1: "relatively short … a limited set of plain text characters": letters, digits, punctuation, spaces. */
const BINDING_MESSAGE = /^[\p{L}\p{N}\p{P}\p{S} ]{1,64}$/u;
const UNSUPPORTED: Record<string, string> = {
  login_hint_token: "login_hint_token is not supported: name the user with login_hint",
  id_token_hint: "id_token_hint is not supported: name the user with login_hint",
  user_code: "user_code is not supported (backchannel_user_code_parameter_supported is false)",
  request: "signed authentication request objects are not supported",
  acr_values: "acr_values is not supported here: the human approves in their own session",
  client_notification_token: "only the poll token delivery mode is supported",
};

export function backchannelUrl(urls: TenantUrls): string {
  return `${urls.issuer}/oauth2/bc-authorize`;
}

/**
 * Whether this deployment offers backchannel requests: only with an identity provider that can
 * resolve login_hint to a user (dev users; Kratos when its admin API is configured).
 */
export function backchannelOffered(config: Config): boolean {
  return config.identity.provider === "dev" || config.identity.kratos.adminUrl !== undefined;
}

/** POST /oauth2/bc-authorize (CIBA Core §7.1). */
export async function backchannelAuthenticationEndpoint(visit: Visit, auth: ClientAuthenticator): Promise<void> {
  const { services, req, res, urls } = visit;
  const params = await readForm(req);
  // §7.1: client authentication as at the token endpoint (RFC 6749 §2.3; private_key_jwt's aud may be this URL).
  const { client } = await auth.authenticate(req, params, urls, backchannelUrl(urls));
  // §13 unauthorized_client: a client not registered for CIBA may not start it.
  if (!client.metadata.grant_types.includes(CIBA_GRANT_TYPE)) {
    throw new UnauthorizedClient(`the client is not registered for the ${CIBA_GRANT_TYPE} grant`);
  }
  const now = services.clock.now();
  const allowed = await services.resources.allowedFor(client);
  // RFC 6749 §3.3: scopes the agent may obtain; RFC 8707 §2: resources it may target.
  const scope = grantableScopes(parseScope(params.get("scope")), client.metadata.scope, false);
  const resources = parseResources(params.all("resource"));
  requirePermittedResources(resources, allowed);
  // Only agents (unauthorized_client otherwise); the mandate asked for, checked as the interactive grant's.
  const ask = await mandateAsk(params, client, services.clients, urls.tenant, scope, resources, allowed, now);
  for (const [name, why] of Object.entries(UNSUPPORTED)) if (params.has(name)) throw new InvalidRequest(why);
  const hint = params.get("login_hint");
  if (hint === undefined) throw new InvalidRequest("login_hint is required: the user who is asked to approve");
  const bindingMessage = bindingMessageOf(params);
  const expiresIn = requestedExpiry(params);
  const principal = await services.identity.findUser?.(urls.tenant, hint);
  if (!backchannelOffered(services.config) || principal === undefined) {
    throw new UnknownUserId("login_hint names no user this server can ask");
  }
  const authReqId = opaqueHandle("mbr");
  const request: MandateRequest = {
    id: `mrq_${randomBytes(16).toString("base64url")}`,
    clientId: client.clientId,
    principal,
    ask,
    bindingMessage: bindingMessage ?? null,
    state: "requested",
    intervalS: POLL_INTERVAL_S,
    lastPollAt: null,
    createdAt: now,
    expiresAt: now + expiresIn * 1000,
    mandateId: null,
    decidedBy: null,
    decidedAt: null,
    approval: null,
  };
  const scoped = services.store.forTenant(urls.tenant);
  await scoped.transaction(async (tx) => {
    await scoped.use(MandateRequestStore, tx).insert(request, authReqId);
    const event = mandateRequested({
      requestId: request.id,
      principal,
      agent: client.clientId,
      scopes: ask.bounds.scopes,
      resources: ask.bounds.resources,
      authorizationDetails: ask.bounds.authorizationDetails,
      expiresAt: ask.bounds.expiresAt,
      bindingMessage: request.bindingMessage,
      requestExpiresAt: request.expiresAt,
    });
    await scoped.recordEvent(tx, event, now);
  });
  // §7.3: the successful response.
  sendJson(res, 200, { auth_req_id: authReqId, expires_in: expiresIn, interval: POLL_INTERVAL_S });
}

function bindingMessageOf(params: Params): string | undefined {
  const message = params.get("binding_message");
  if (message !== undefined && !BINDING_MESSAGE.test(message)) {
    throw new InvalidBindingMessage(
      "binding_message must be at most 64 letters, digits, spaces and punctuation (CIBA Core §7.1)",
    );
  }
  return message;
}

/** §7.1 requested_expiry: a positive integer of seconds, at most MAX_EXPIRY_S. */
function requestedExpiry(params: Params): number {
  const text = params.get("requested_expiry");
  if (text === undefined) return DEFAULT_EXPIRY_S;
  const seconds = /^\d{1,6}$/.test(text) ? Number(text) : 0;
  if (seconds < 1 || seconds > MAX_EXPIRY_S) {
    throw new InvalidRequest(`requested_expiry must be a whole number of seconds from 1 to ${MAX_EXPIRY_S}`);
  }
  return seconds;
}
