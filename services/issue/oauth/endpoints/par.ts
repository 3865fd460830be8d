// Pushed authorization requests (RFC 9126): the authenticated client pushes its request and gets a
// request_uri, which the authorization endpoint later takes, once.

import type { RegisteredClient } from "../../clients/metadata.ts";
import {
  matchRedirectUri,
  RedirectableError,
  validateAuthorizationRequest,
  withMandateAsk,
} from "../authorization-request.ts";
import { verifyAuthorizationServerProof } from "../authorization-server-dpop.ts";
import type { Visit } from "../browser.ts";
import type { ClientAuthenticator } from "../client-auth.ts";
import { InvalidRequest } from "../errors.ts";
import { Params, readForm, sendJson } from "../http.ts";
import { InteractionStore, type PushedParams } from "../interaction-store.ts";

const PAR_PREFIX = "urn:ietf:params:oauth:request_uri:";

/** POST /oauth2/par (RFC 9126 §2). */
export async function pushedAuthorizationRequestEndpoint(visit: Visit, auth: ClientAuthenticator): Promise<void> {
  const { services, req, res, urls } = visit;
  const params = await readForm(req);
  const { client } = await auth.authenticate(req, params, urls, urls.par);
  await validatePushed(visit, client, params);
  const stored = await bindDpopKey(visit, params);
  const ttl = services.config.oauth.parTtl;
  const interactions = services.store.forTenant(urls.tenant).use(InteractionStore);
  const handle = await interactions.push(client.clientId, stored, services.clock.now() + ttl);
  sendJson(res, 201, { request_uri: `${PAR_PREFIX}${handle}`, expires_in: Math.floor(ttl / 1000) });
}

/** RFC 9126 §2.1: the same checks as at the authorization endpoint, answered here instead of redirected. */
async function validatePushed({ services, urls }: Visit, client: RegisteredClient, params: Params): Promise<void> {
  // RFC 9126 §2.1: request_uri must not be pushed.
  if (params.has("request_uri")) throw new InvalidRequest("request_uri cannot be pushed");
  const redirectUri = matchRedirectUri(client, params.get("redirect_uri"));
  if (!redirectUri) throw new InvalidRequest("redirect_uri is not registered for this client");
  try {
    const allowed = await services.resources.allowedFor(client);
    const request = validateAuthorizationRequest(params, client, redirectUri, allowed);
    // The mandate asked for (authorization_details, mandate) is checked when pushed too.
    await withMandateAsk(services, urls.tenant, params, client, request, allowed);
  } catch (error) {
    if (error instanceof RedirectableError) throw error.cause;
    throw error;
  }
}

/** RFC 9449 §10.1: a DPoP proof at PAR binds the code like dpop_jkt does. */
async function bindDpopKey({ services, req, urls }: Visit, params: Params): Promise<PushedParams> {
  const entries = params.entries();
  if (req.headers.dpop === undefined) return entries;
  const proof = await verifyAuthorizationServerProof(services, req, urls, urls.par);
  if (params.has("dpop_jkt") && params.get("dpop_jkt") !== proof.jkt) {
    throw new InvalidRequest("dpop_jkt differs from the DPoP proof key");
  }
  return [...entries.filter(([k]) => k !== "dpop_jkt"), ["dpop_jkt", [proof.jkt]]];
}

/** The pushed request `requestUri` names, taken once (RFC 9126 §4); undefined when unknown, expired, used or not this client's. */
export async function takePushedRequest(
  { services, urls }: Visit,
  client: RegisteredClient,
  requestUri: string,
): Promise<Params | undefined> {
  if (!requestUri.startsWith(PAR_PREFIX)) return undefined;
  const handle = requestUri.slice(PAR_PREFIX.length);
  const scoped = services.store.forTenant(urls.tenant);
  const entries = await scoped.transaction((tx) =>
    scoped.use(InteractionStore, tx).takePushed(handle, client.clientId, services.clock.now()),
  );
  return entries && new Params(new Map(entries));
}
