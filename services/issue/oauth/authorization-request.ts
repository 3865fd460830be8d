// Validation of an authorization request (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1, OIDC Core §3.1.2.1),
// in the order that decides where errors may go: client and redirect URI first (errors about them
// are shown as a page, never redirected, RFC 6749 §4.1.2.1), then everything else (redirected).
import type { RegisteredClient } from "../clients/metadata.ts";
import { asksForMandate, type MandateAsk, mandateAsk } from "../mandates/oauth-request.ts";
import type { OAuthServices } from "./context.ts";
import { InvalidRequest, OAuthError, UnsupportedResponseType } from "./errors.ts";
import type { Params } from "./http.ts";
import { requireS256Challenge } from "./pkce.ts";
import { parseResources, requirePermittedResources } from "./rfc8707.ts";
import { grantableScopes, parseScope } from "./scopes.ts";

export interface AuthorizationRequest {
  clientId: string;
  redirectUri: string;
  state?: string | undefined;
  scope: string[];
  resources: string[];
  codeChallenge: string;
  nonce?: string | undefined;
  prompt: string[];
  maxAge?: number | undefined;
  loginHint?: string | undefined;
  acrValues: string[];
  dpopJkt?: string | undefined;
  /** Who vouches for the client; only "admin" clients are redirected to before a user approves them. */
  clientOrigin?: RegisteredClient["origin"] | undefined;
  /** The mandate an agent asks for (RFC 9396 authorization_details, `mandate`): approved on the consent page only. */
  mandate?: MandateAsk | undefined;
}

/** An error that may be redirected to the (verified) redirect URI. */
export class RedirectableError extends Error {
  override readonly cause: OAuthError;
  readonly redirectUri: string;
  readonly state: string | undefined;
  constructor(cause: OAuthError, redirectUri: string, state: string | undefined) {
    super(cause.message);
    this.cause = cause;
    this.redirectUri = redirectUri;
    this.state = state;
  }
}

/**
 * RFC 6749 §3.1.2.3 exact match. RFC 8252 §7.3: loopback IP redirects of native apps match with any
 * port — public clients only; a confidential client's loopback URI must match exactly (RFC 9700 §4.1.3).
 */
export function matchRedirectUri(client: RegisteredClient, presented: string | undefined): string | undefined {
  const registered = client.metadata.redirect_uris;
  if (presented === undefined) return registered.length === 1 ? registered[0] : undefined;
  if (registered.includes(presented)) return presented;
  if (client.metadata.token_endpoint_auth_method !== "none") return undefined;
  let url: URL;
  try {
    url = new URL(presented);
  } catch {
    return undefined;
  }
  if (url.protocol !== "http:" || !["127.0.0.1", "[::1]", "localhost"].includes(url.hostname)) return undefined;
  for (const candidate of registered) {
    const reg = new URL(candidate);
    const portless = (u: URL) => `${u.protocol}//${u.hostname}${u.pathname}${u.search}`;
    if (reg.protocol === "http:" && portless(reg) === portless(url)) return presented;
  }
  return undefined;
}

/**
 * Validates everything after client and redirect URI; errors are redirectable. `allowedResources`:
 * what the client may target (its own resources, else the tenant's default).
 */
export function validateAuthorizationRequest(
  params: Params,
  client: RegisteredClient,
  redirectUri: string,
  allowedResources: readonly string[],
): AuthorizationRequest {
  const state = params.get("state");
  try {
    requireCodeFlow(params, client);
    const codeChallenge = requireS256Challenge(params.get("code_challenge"), params.get("code_challenge_method"));
    const scope = grantableScopes(parseScope(params.get("scope")), client.metadata.scope, true);
    const resources = parseResources(params.all("resource"));
    // RFC 8707 §2: a resource the client may not target is invalid_target.
    requirePermittedResources(resources, allowedResources);
    const prompt = parsePrompt(params.get("prompt"));
    const maxAge = parseMaxAge(params.get("max_age"));
    const dpopJkt = parseDpopJkt(params.get("dpop_jkt"));
    return {
      clientId: client.clientId,
      redirectUri,
      state,
      scope,
      resources,
      codeChallenge,
      nonce: params.get("nonce"),
      prompt,
      maxAge,
      loginHint: params.get("login_hint"),
      acrValues: (params.get("acr_values") ?? "").split(" ").filter(Boolean),
      dpopJkt,
      clientOrigin: client.origin,
    };
  } catch (error) {
    if (error instanceof RedirectableError) throw error;
    // An OAuthError goes back to the client's (verified) redirect URI, with its state.
    if (error instanceof Error && "error" in error) {
      throw new RedirectableError(error as OAuthError, redirectUri, state);
    }
    throw error;
  }
}

/**
 * The request with the mandate it asks for, if any (RFC 9396 authorization_details and `mandate`,
 * validated by mandates/oauth-request.ts; errors redirectable like the rest of the request's,
 * RFC 6749 §4.1.2.1).
 */
export async function withMandateAsk(
  services: Pick<OAuthServices, "clients" | "clock">,
  tenant: string,
  params: Params,
  client: RegisteredClient,
  request: AuthorizationRequest,
  allowedResources: readonly string[],
): Promise<AuthorizationRequest> {
  if (!asksForMandate(params)) return request;
  try {
    const { scope, resources } = request;
    const now = services.clock.now();
    const ask = await mandateAsk(params, client, services.clients, tenant, scope, resources, allowedResources, now);
    return { ...request, mandate: ask };
  } catch (error) {
    if (error instanceof OAuthError) throw new RedirectableError(error, request.redirectUri, request.state);
    throw error;
  }
}

/** The authorization code flow, with its parameters in the query: nothing else is offered. */
function requireCodeFlow(params: Params, client: RegisteredClient): void {
  // OAuth 2.1 §4.1.1: code only; implicit and hybrid flows are gone.
  if (params.get("response_type") !== "code") throw new UnsupportedResponseType('response_type must be "code"');
  if (!client.metadata.grant_types.includes("authorization_code")) {
    throw new InvalidRequest("the client is not registered for the authorization_code grant");
  }
  const mode = params.get("response_mode");
  if (mode !== undefined && mode !== "query") throw new InvalidRequest('response_mode must be "query"');
  if (params.has("request")) throw new InvalidRequest("request objects are not supported; use PAR");
}

function parsePrompt(text: string | undefined): string[] {
  const prompt = (text ?? "").split(" ").filter(Boolean);
  for (const p of prompt) {
    if (!["none", "login", "consent", "select_account"].includes(p)) throw new InvalidRequest(`unknown prompt "${p}"`);
  }
  // OIDC Core §3.1.2.1: "none" must not be combined with another value.
  if (prompt.includes("none") && prompt.length > 1) throw new InvalidRequest('prompt "none" stands alone');
  return prompt;
}

function parseMaxAge(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,9}$/.test(text)) throw new InvalidRequest("max_age must be seconds");
  return Number(text);
}

function parseDpopJkt(text: string | undefined): string | undefined {
  if (text !== undefined && !/^[A-Za-z0-9_-]{43}$/.test(text)) {
    throw new InvalidRequest("dpop_jkt must be a base64url SHA-256 JWK thumbprint");
  }
  return text;
}
