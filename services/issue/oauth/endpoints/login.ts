// Where the browser logs in: the login page of identity providers that check passwords here (dev
// users), and the resume URL every provider returns the browser to afterwards.

import { issuerOf, type OidcSettings } from "../../identity/federation/oidc.ts";
import type { IdentityProviderRecord } from "../../identity/federation/registry.ts";
import type { PasswordLogin } from "../../identity/provider.ts";
import { cspSource, sendPage } from "../../pages/layout.ts";
import { loginPage } from "../../pages/login.ts";
import { retryText } from "../../pages/redirect.ts";
import { sameSecret, sendErrorPage, sendExpiredPage, setCookie, type Visit } from "../browser.ts";
import { InvalidRequest } from "../errors.ts";
import { queryParams, readForm, redirect } from "../http.ts";
import { boundInteraction, continueInteraction } from "../interaction.ts";
import type { Interaction } from "../interaction-store.ts";
import { federationStartUrl } from "./federation-login.ts";

/** GET /oauth2/resume: the browser returns from the identity provider. */
export async function resumeEndpoint(visit: Visit): Promise<void> {
  await continueInteraction(visit, queryParams(visit.req).get("interaction") ?? "");
}

/**
 * GET/POST /login: the login page — the password form (dev users), the tenant's upstream IdPs and
 * home-realm discovery by e-mail. With a provider whose users log in at the provider itself
 * (Kratos), only the IdP choice, before sending the browser on to the provider.
 */
export async function loginEndpoint(visit: Visit): Promise<void> {
  const { services, req, res } = visit;
  const login = services.identity.passwordLogin;
  if (!login && !(await hasUpstreamIdps(visit))) {
    return sendErrorPage(res, new InvalidRequest("logins go through the identity provider"));
  }
  if (req.method === "GET") return showLoginForm(visit);
  const form = await readForm(req);
  const id = form.get("interaction") ?? "";
  const interaction = await boundInteraction(visit, id);
  if (!interaction || !sameSecret(form.get("csrf"), interaction.csrf)) return sendExpiredPage(res);
  if (form.get("discover") || !login) return discoverRealm({ visit, id, interaction }, form.get("email") ?? "");
  await signIn({ visit, login, id, interaction }, form.get("username") ?? "", form.get("password") ?? "");
}

async function hasUpstreamIdps({ services, urls }: Visit): Promise<boolean> {
  return (await services.federation.providers.list(urls.tenant)).some((p) => p.enabled);
}

/**
 * Home-realm discovery: the e-mail's domain (identity_providers.email_domains) picks the IdP, which
 * gets the address as login_hint; an unknown domain falls back to the normal login.
 */
async function discoverRealm(form: LoginForm, email: string): Promise<void> {
  const { visit, id } = form;
  const { services, res, urls } = visit;
  const provider = email.includes("@")
    ? await services.federation.providers.byEmailDomain(urls.tenant, email)
    : undefined;
  if (provider) {
    return redirect(res, `${federationStartUrl(urls, provider.id, id)}&login_hint=${encodeURIComponent(email)}`);
  }
  const primary = services.federation.primaryLoginUrl;
  if (!services.identity.passwordLogin && primary) {
    return redirect(res, primary(primaryLoginRequest(visit, id, form.interaction, email)));
  }
  return sendLoginPage(form, 200, email);
}

/** The primary provider's login for this interaction (Kratos), as interaction.ts would have asked for it. */
function primaryLoginRequest({ urls }: Visit, id: string, interaction: Interaction, loginHint?: string) {
  return {
    tenant: urls.tenant,
    returnTo: `${urls.resume}?interaction=${encodeURIComponent(id)}`,
    interaction: id,
    loginHint: loginHint ?? interaction.request.loginHint,
    // prompt=login / max_age and acr_values: the resume checks them again in any case.
    fresh: interaction.request.prompt.includes("login") || interaction.request.maxAge !== undefined,
    acr: interaction.request.acrValues[0],
  };
}

async function showLoginForm(visit: Visit): Promise<void> {
  const query = queryParams(visit.req);
  const id = query.get("interaction") ?? "";
  const interaction = await boundInteraction(visit, id);
  if (!interaction) return sendExpiredPage(visit.res);
  await sendLoginPage({ visit, id, interaction }, 200, query.get("login_hint") ?? undefined);
}

interface LoginForm {
  visit: Visit;
  id: string;
  interaction: Interaction;
}

/**
 * Failed sign-ins are limited per account and per IP (no guessing passwords at full speed): while
 * either has failed too often, no password is even checked. 429 + Retry-After (RFC 6585 §4).
 */
async function signIn(form: LoginForm & { login: PasswordLogin }, username: string, password: string): Promise<void> {
  const { visit, login, id } = form;
  const { services, req, res, urls } = visit;
  const throttled = (seconds: number) =>
    sendLoginPage(form, 429, username, `Too many failed sign-ins. Try again ${retryText(seconds)}.`, {
      "retry-after": String(seconds),
    });
  const wait = await services.limits.beforeLogin(urls.tenant, username, req);
  if (wait > 0) return throttled(wait);
  const userId = await login.verify(username, password);
  if (!userId) {
    const waitNow = await services.limits.loginFailed(urls.tenant, username, req);
    if (waitNow > 0) return throttled(waitNow);
    return sendLoginPage(form, 401, username, "The username or password is not correct. Check them and try again.");
  }
  const session = await login.openSession(urls.tenant, userId);
  setCookie(res, urls, session.name, session.value, session.maxAgeSeconds);
  redirect(res, `${urls.resume}?interaction=${encodeURIComponent(id)}`);
}

async function sendLoginPage(
  { visit, id, interaction }: LoginForm,
  status: number,
  username: string | undefined,
  error?: string,
  headers: Record<string, string> = {},
): Promise<void> {
  const { services, res, urls } = visit;
  const client = await services.clients.resolve(urls.tenant, interaction.request.clientId).catch(() => undefined);
  const providers = (await services.federation.providers.list(urls.tenant)).filter((p) => p.enabled);
  const primary = services.federation.primaryLoginUrl;
  const passwordless =
    !services.identity.passwordLogin && primary ? primary(primaryLoginRequest(visit, id, interaction)) : undefined;
  const html = loginPage({
    action: urls.login,
    interaction: id,
    csrf: interaction.csrf,
    clientName: client?.metadata.client_name || interaction.request.clientId,
    username,
    error,
    providers: providers.map((p) => ({ displayName: p.displayName, href: federationStartUrl(urls, p.id, id) })),
    discovery: providers.some((p) => p.emailDomains.length > 0),
    passwordless: passwordless ? { href: passwordless } : undefined,
  });
  const page = { html, passwordless };
  // After signing in the browser may go straight on to the client (remembered consent); after
  // e-mail discovery, on to the IdP or the primary provider (CSP form-action governs redirects).
  const targets = [interaction.request.redirectUri, ...providers.map(idpEntryUrl)];
  if (page.passwordless) targets.push(page.passwordless);
  sendPage(res, status, "Sign in", page.html, headers, [...new Set(targets.flatMap(sourceOf))]);
}

/** Where a browser sent to the IdP lands first: the OIDC issuer's origin, the SAML SSO URL's. */
function idpEntryUrl(provider: IdentityProviderRecord): string | undefined {
  if (provider.kind === "oidc") return issuerOf(provider.settings as unknown as OidcSettings);
  const sso = provider.settings.idp_sso_url;
  return typeof sso === "string" ? sso : undefined;
}

function sourceOf(url: string | undefined): string[] {
  if (!url) return [];
  try {
    return [cspSource(url)];
  } catch {
    return [];
  }
}
