// Human logins at a tenant's upstream IdPs (OIDC, SAML 2.0): start sends the browser to the IdP
// with a single-use login in flight; the callback (OIDC redirect_uri; the SAML ACS calls
// finishFederatedLogin) checks the IdP's answer, links the upstream identity to a Mandate subject,
// opens a Mandate session carrying the upstream's acr/amr/auth_time, and resumes the OAuth request
// like the password login does. Anything wrong ends on an error page with nobody logged in.
import type { ServerResponse } from "node:http";
import type { Federation } from "../../identity/federation/federation.ts";
import { FederationLogins } from "../../identity/federation/logins.ts";
import { PROVIDER_ID } from "../../identity/federation/registry.ts";
import type { CallbackRequest } from "../../identity/federation/upstream.ts";
import { errorPage } from "../../pages/consent.ts";
import { sendPage } from "../../pages/layout.ts";
import { sameSecret, sendExpiredPage, setCookie, type Visit } from "../browser.ts";
import type { TenantUrls } from "../context.ts";
import { cookies, queryParams, readForm, redirect } from "../http.ts";
import { boundInteraction } from "../interaction.ts";
import { InteractionStore } from "../interaction-store.ts";

/** Carries the login's handle in this browser: only the browser that started a login may finish it. */
const FEDERATION_COOKIE = "mandate_federation";

/** `/login/idp/{id}` and `/login/idp/{id}/callback`. */
export const FEDERATION_START_PATH = /^\/login\/idp\/([a-z0-9-]{1,63})$/;
export const FEDERATION_CALLBACK_PATH = /^\/login\/idp\/([a-z0-9-]{1,63})\/callback$/;

export function federationCallbackUrl(urls: TenantUrls, providerId: string): string {
  return `${urls.issuer}/login/idp/${providerId}/callback`;
}

export function federationStartUrl(urls: TenantUrls, providerId: string, interaction: string): string {
  return `${urls.issuer}/login/idp/${providerId}?interaction=${encodeURIComponent(interaction)}`;
}

/** GET /login/idp/{id}?interaction=…: sends the browser to the IdP. */
export async function federationStartEndpoint(visit: Visit, federation: Federation): Promise<void> {
  const { req, res, urls } = visit;
  const providerId = providerIdOf(visit, FEDERATION_START_PATH);
  const query = queryParams(req);
  const interactionId = query.get("interaction") ?? "";
  const interaction = await boundInteraction(visit, interactionId);
  if (!interaction) return sendExpiredPage(res);
  const provider = providerId ? await federation.providers.get(urls.tenant, providerId) : undefined;
  const upstream = provider?.enabled ? federation.upstream(provider.kind) : undefined;
  if (!provider || !upstream) return refuse(res, "this sign-in option is not available");
  const handle = FederationLogins.newHandle();
  let started: Awaited<ReturnType<typeof upstream.start>>;
  try {
    started = await upstream.start({
      tenant: urls.tenant,
      provider,
      handle,
      callbackUrl: federationCallbackUrl(urls, provider.id),
      loginHint: query.get("login_hint") ?? interaction.request.loginHint,
      fresh: freshness(interaction.request),
    });
  } catch (error) {
    visit.services.logger.warn({ err: error, provider: provider.id }, "federated login could not start");
    return refuse(res, `${provider.displayName} cannot be reached for sign-in right now; try again later`, 502);
  }
  await federation.logins.save(handle, {
    tenant: urls.tenant,
    providerId: provider.id,
    interaction: interactionId,
    checks: started.checks,
  });
  res.appendHeader("set-cookie", federationCookie(urls, handle, visit.services.config.federation.loginTtl));
  if ("redirectUrl" in started) return redirect(res, started.redirectUrl);
  // SAML HTTP-POST binding: the IdP is the form's target.
  res.writeHead(200, {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    "content-security-policy":
      "default-src 'none'; script-src 'unsafe-inline'; form-action https:; frame-ancestors 'none'",
  });
  res.end(started.formHtml);
}

/** GET|POST /login/idp/{id}/callback: the IdP's answer (OIDC: code and state in the query). */
export async function federationCallbackEndpoint(visit: Visit, federation: Federation): Promise<void> {
  const providerId = providerIdOf(visit, FEDERATION_CALLBACK_PATH);
  const { req, urls } = visit;
  const url = new URL(`${urls.issuer}${(req.url ?? "/").slice((req.url ?? "/").indexOf("/login/idp/"))}`);
  const form = req.method === "POST" ? await readForm(req) : undefined;
  const formParams = form ? new URLSearchParams([...paramsOf(form)]) : undefined;
  const handle = url.searchParams.get("state") ?? formParams?.get("state") ?? "";
  await finishFederatedLogin(
    visit,
    federation,
    providerId ?? "",
    { method: req.method ?? "GET", url, form: formParams },
    handle,
  );
}

/**
 * Finishes a login at `providerId`: the login in flight `handle` names (single use, unexpired, this
 * browser's), the protocol's checks, linking, the session, and back to the authorization request.
 * The SAML ACS calls it with the RelayState as `handle`.
 */
export async function finishFederatedLogin(
  visit: Visit,
  federation: Federation,
  providerId: string,
  callback: CallbackRequest,
  handle: string,
): Promise<void> {
  const { services, req, res, urls } = visit;
  // RFC 6749 §10.12: the answer must come back to the browser that asked (login CSRF).
  if (!handle || !sameSecret(cookies(req).get(FEDERATION_COOKIE), handle)) {
    return refuse(res, "this sign-in answer does not belong to a sign-in started in this browser");
  }
  const pending = await federation.logins.take(urls.tenant, providerId, handle);
  if (!pending) return refuse(res, "this sign-in answer was already used, has expired or is unknown");
  const provider = await federation.providers.get(urls.tenant, providerId);
  const upstream = provider?.enabled ? federation.upstream(provider.kind) : undefined;
  if (!provider || !upstream) return refuse(res, "this sign-in option is not available");
  const interaction = await services.store
    .forTenant(urls.tenant)
    .use(InteractionStore)
    .find(pending.interaction, services.clock.now());
  if (!interaction) return sendExpiredPage(res);
  let identity: Awaited<ReturnType<typeof upstream.finish>>;
  try {
    identity = await upstream.finish(provider, callback, pending, handle);
  } catch (error) {
    services.logger.warn({ err: error, provider: provider.id }, "federated login refused");
    return refuse(res, error instanceof Error ? error.message : "the identity provider's answer was refused");
  }
  const linked = await federation.link(urls.tenant, provider.id, identity);
  const session = await federation.sessions.open(urls.tenant, {
    providerId: provider.id,
    subject: linked.subject,
    // OIDC Core §2: acr, amr and auth_time of the login at the IdP pass through to our tokens.
    authTime: identity.authTime ?? services.clock.now(),
    acr: identity.acr ?? "aal1",
    amr: identity.amr ?? [],
    claims: linked.claims,
  });
  setCookie(res, urls, session.name, session.value, session.maxAgeSeconds);
  res.appendHeader("set-cookie", federationCookie(urls, "", 0));
  redirect(res, `${urls.resume}?interaction=${encodeURIComponent(pending.interaction)}`);
}

/** prompt=login or max_age of the OAuth request, passed on to the IdP (a stale upstream login would not do). */
function freshness(request: { prompt: string[]; maxAge?: number | undefined }) {
  const promptLogin = request.prompt.includes("login");
  if (!promptLogin && request.maxAge === undefined) return undefined;
  return { promptLogin, maxAgeSeconds: request.maxAge };
}

function providerIdOf({ req, urls }: Visit, pattern: RegExp): string | undefined {
  const path = (req.url ?? "/").split("?")[0] as string;
  const rest = path.slice(new URL(urls.issuer).pathname.length);
  const id = pattern.exec(rest)?.[1];
  return id !== undefined && PROVIDER_ID.test(id) ? id : undefined;
}

function* paramsOf(form: Awaited<ReturnType<typeof readForm>>): Iterable<[string, string]> {
  for (const name of ["code", "state", "iss", "error", "error_description", "SAMLResponse", "RelayState"]) {
    const value = form.get(name);
    if (value !== undefined) yield [name, value];
  }
}

/** An answer refused: access_denied (RFC 6749 §4.1.2.1) on a page; nothing is logged in. */
function refuse(res: ServerResponse, description: string, status = 403): void {
  sendPage(res, status, "Sign-in refused", errorPage("access_denied", description));
}

/**
 * The login's handle in this browser. SameSite=None (https only) so that an IdP's cross-site POST
 * (SAML HTTP-POST binding, form_post) still carries it; the handle is single use and short-lived.
 */
function federationCookie(urls: TenantUrls, value: string, maxAgeMs: number): string {
  const path = `${new URL(urls.issuer).pathname}/login/idp/`;
  const site = urls.issuer.startsWith("https:") ? "SameSite=None; Secure" : "SameSite=Lax";
  return `${FEDERATION_COOKIE}=${value}; Path=${path}; Max-Age=${Math.floor(maxAgeMs / 1000)}; HttpOnly; ${site}`;
}
