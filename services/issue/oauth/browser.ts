// What the endpoints a browser visits (authorize, login, consent) share: cookies, the pages shown
// when an error cannot go to the client, and the way back to the client. A redirect URI nobody
// vouches for yet — a client registered dynamically or by metadata document, that this user has not
// approved — is never redirected to automatically: the user gets a page naming the destination and a
// link to click (RFC 9700 §4.11.2), so the authorization server is no open redirector.
import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { RegisteredClient } from "../clients/metadata.ts";
import { errorPage } from "../pages/consent.ts";
import { sendPage } from "../pages/layout.ts";
import { leavingPage, tooManyPage } from "../pages/redirect.ts";
import { ConsentStore } from "./consent-store.ts";
import type { OAuthServices, TenantUrls } from "./context.ts";
import type { OAuthError } from "./errors.ts";
import { redirect } from "./http.ts";

/** One browser request to a tenant's authorization server, with what its handlers need. */
export interface Visit {
  services: OAuthServices;
  req: IncomingMessage;
  res: ServerResponse;
  urls: TenantUrls;
}

/** Whom a redirect goes to: the client, who vouches for it, and the user when known (null: nobody logged in). */
export interface RedirectTarget {
  clientId: string;
  origin: RegisteredClient["origin"] | undefined;
  subject?: string | null;
}

/** A cookie scoped to the tenant's issuer path; Secure whenever the issuer is https. */
export function setCookie(res: ServerResponse, urls: TenantUrls, name: string, value: string, maxAgeSeconds: number) {
  const secure = urls.issuer.startsWith("https:") ? "; Secure" : "";
  const path = `${new URL(urls.issuer).pathname}/`;
  res.setHeader(
    "set-cookie",
    `${name}=${value}; Path=${path}; Max-Age=${maxAgeSeconds}; HttpOnly; SameSite=Lax${secure}`,
  );
}

/** Constant-time comparison of a presented secret (cookie, CSRF token) with the expected one. */
export function sameSecret(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false;
  const x = Buffer.from(presented);
  const y = Buffer.from(expected);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** RFC 6749 §4.1.2.1 error response, with iss (RFC 9207 §2); through the interstitial when untrusted. */
export async function redirectError(
  visit: Visit,
  to: RedirectTarget & { redirectUri: string; state: string | undefined },
  error: OAuthError,
): Promise<void> {
  const { urls } = visit;
  const target = new URL(to.redirectUri);
  target.searchParams.set("error", error.error);
  target.searchParams.set("error_description", error.message);
  if (to.state !== undefined) target.searchParams.set("state", to.state);
  target.searchParams.set("iss", urls.issuer);
  await leaveTo(visit, to, target, error.message);
}

/** Sends the browser to the client: a redirect when trusted, else a page with a link to click. */
async function leaveTo(visit: Visit, to: RedirectTarget, target: URL, reason: string): Promise<void> {
  const { services, res, urls } = visit;
  if (await redirectTrusted(visit, to)) return redirect(res, target.toString());
  const client = await services.clients.resolve(urls.tenant, to.clientId).catch(() => undefined);
  const clientName = client?.metadata.client_name || to.clientId;
  sendPage(res, 200, "Leaving Mandate", leavingPage({ clientName, target, reason }));
}

/**
 * RFC 9700 §4.11.2: whether the browser may be redirected to the client without asking. Yes for
 * clients an administrator registered and for clients this user has approved before; not for a
 * client anyone could have registered (DCR, metadata document) with an attacker's redirect URI.
 */
async function redirectTrusted({ services, req, urls }: Visit, to: RedirectTarget): Promise<boolean> {
  if (to.origin === "admin") return true;
  const subject =
    to.subject !== undefined
      ? to.subject
      : ((await services.identity.session(req, urls.tenant).catch(() => undefined))?.subject ?? null);
  if (!subject) return false;
  return services.store.forTenant(urls.tenant).use(ConsentStore).approvedClient(to.clientId, subject);
}

/** A request refused before the client or its redirect URI is verified: shown, never redirected. */
export function sendErrorPage(res: ServerResponse, error: OAuthError): void {
  sendPage(res, 400, "Request refused", errorPage(error.error, error.message));
}

export function sendExpiredPage(res: ServerResponse): void {
  sendPage(
    res,
    400,
    "Request expired",
    errorPage(
      "invalid_request",
      "this sign-in request has expired or was opened in another browser; start again from the application",
    ),
  );
}

/** Per-IP limit of the authorization endpoint: 429 (RFC 6585 §4) with Retry-After, as a page. */
export function sendTooManyPage(res: ServerResponse, retryAfterSeconds: number): void {
  sendPage(res, 429, "Too many attempts", tooManyPage(retryAfterSeconds), {
    "retry-after": String(retryAfterSeconds),
  });
}
