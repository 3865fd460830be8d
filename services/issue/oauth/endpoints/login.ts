// Where the browser logs in: the login page of identity providers that check passwords here (dev
// users), and the resume URL every provider returns the browser to afterwards.

import type { PasswordLogin } from "../../identity/provider.ts";
import { cspSource, sendPage } from "../../pages/layout.ts";
import { loginPage } from "../../pages/login.ts";
import { retryText } from "../../pages/redirect.ts";
import { sameSecret, sendErrorPage, sendExpiredPage, setCookie, type Visit } from "../browser.ts";
import { InvalidRequest } from "../errors.ts";
import { queryParams, readForm, redirect } from "../http.ts";
import { boundInteraction, continueInteraction } from "../interaction.ts";
import type { Interaction } from "../interaction-store.ts";

/** GET /oauth2/resume: the browser returns from the identity provider. */
export async function resumeEndpoint(visit: Visit): Promise<void> {
  await continueInteraction(visit, queryParams(visit.req).get("interaction") ?? "");
}

/** GET/POST /login: the password login page. */
export async function loginEndpoint(visit: Visit): Promise<void> {
  const { services, req, res } = visit;
  const login = services.identity.passwordLogin;
  if (!login) return sendErrorPage(res, new InvalidRequest("logins go through the identity provider"));
  if (req.method === "GET") return showLoginForm(visit);
  const form = await readForm(req);
  const id = form.get("interaction") ?? "";
  const interaction = await boundInteraction(visit, id);
  if (!interaction || !sameSecret(form.get("csrf"), interaction.csrf)) return sendExpiredPage(res);
  await signIn({ visit, login, id, interaction }, form.get("username") ?? "", form.get("password") ?? "");
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
  const page = loginPage({
    action: urls.login,
    interaction: id,
    csrf: interaction.csrf,
    clientName: client?.metadata.client_name || interaction.request.clientId,
    username,
    error,
  });
  // After signing in the browser may go straight on to the client (remembered consent).
  sendPage(res, status, "Sign in", page, headers, [cspSource(interaction.request.redirectUri)]);
}
