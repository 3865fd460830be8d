// "My mandates" (issue 15, item 8): the logged-in human's page of the mandates they granted, under
// the tenant's issuer: /t/{tenant}/mandates. Each with its agent, what it may do in plain words
// (describe.ts), usage so far against its limits, validity, state, its delegation tree (the
// sub-mandates under it, with their agents), a revocation behind a confirmation step, and the
// signed consent receipt to download. Only the principal sees or revokes a mandate: anyone else
// gets 404, as for a mandate that does not exist. Without a session the browser is sent to sign in
// (Mandate's own form for password logins, the identity provider's otherwise) and back.
//
// Every form carries a CSRF token: a random value in an HttpOnly cookie of the tenant's path
// (SameSite=Lax), echoed in the form (double submit), compared in constant time.
import { randomBytes } from "node:crypto";
import { currentState, type MandateRecord, MandateStore } from "../../../shared/mandates/mandate-store.ts";
import type { Authentication, PasswordLogin } from "../../identity/provider.ts";
import { type AgentFacts, describeMandate, revocationOf } from "../../mandates/describe.ts";
import { type ReceiptBundle, ReceiptNotReady, receiptBundle } from "../../mandates/receipts.ts";
import { MandateRequestStore } from "../../mandates/request-store.ts";
import { revokeMandate } from "../../mandates/revoke.ts";
import { currentUsage } from "../../mandates/usage-view.ts";
import { sendPage } from "../../pages/layout.ts";
import {
  type MandateRow,
  mandateSignInPage,
  mandatesPage,
  notFoundPage,
  revokeConfirmPage,
  type SignOut,
} from "../../pages/my-mandates.ts";
import { sameSecret, setCookie, type Visit } from "../browser.ts";
import { cookies, queryParams, readForm, redirect } from "../http.ts";

const CSRF_COOKIE = "mandate_page_csrf";
const CSRF_MAX_AGE_S = 12 * 3600;
/** Mandates shown (a principal with more revokes through the API). */
const MAX_SHOWN = 500;
const MANDATE_PATH = /^\/t\/[a-z0-9-]+\/mandates\/([A-Za-z0-9_-]{1,128})\/(revoke|receipt)$/;
const REASON_MAX = 1024;
/** Pages under /mandates a sign-in may return to (a fixed set: never an open redirect). */
const RETURN_PATHS = /^\/pending(\/mrq_[A-Za-z0-9_-]{1,64})?$/;
/** Requests waiting for the human counted on the list (the pending page shows them). */
const MAX_PENDING_COUNTED = 100;

export function pageUrl({ urls }: Visit, suffix = ""): string {
  return `${urls.issuer}/mandates${suffix}`;
}

function pathOf(visit: Visit): string {
  return new URL(visit.req.url ?? "/", "http://x").pathname;
}

/** The CSRF token of this browser: its cookie, or a new one (set on the response). */
export function csrfToken(visit: Visit): string {
  const existing = cookies(visit.req).get(CSRF_COOKIE);
  if (existing && /^[A-Za-z0-9_-]{43}$/.test(existing)) return existing;
  const token = randomBytes(32).toString("base64url");
  setCookie(visit.res, visit.urls, CSRF_COOKIE, token, CSRF_MAX_AGE_S);
  return token;
}

export function csrfValid(visit: Visit, presented: string | undefined): boolean {
  const cookie = cookies(visit.req).get(CSRF_COOKIE);
  return cookie !== undefined && sameSecret(presented, cookie);
}

export function refuseCsrf(visit: Visit): void {
  sendPage(
    visit.res,
    403,
    "Request refused",
    notFoundPage(
      "This form has expired or did not come from this site. Reload the page and try again.",
      pageUrl(visit),
    ),
  );
}

/** The sign-out button of the signed-in pages: POST /logout with this browser's CSRF token. */
export function signOutOf(visit: Visit): SignOut {
  return { action: `${visit.urls.issuer}/logout`, csrf: csrfToken(visit) };
}

/** A page to return to after signing in, when it is one of RETURN_PATHS. */
function returnPath(value: string | undefined): string | undefined {
  return value !== undefined && RETURN_PATHS.test(value) ? value : undefined;
}

/**
 * The logged-in human, or undefined after sending the browser to sign in, and back to the list or to
 * `returnTo` (a path under /mandates among RETURN_PATHS: the pending requests).
 */
export async function human(visit: Visit, returnTo = ""): Promise<Authentication | undefined> {
  const auth = await visit.services.identity.session(visit.req, visit.urls.tenant);
  if (auth) return auth;
  const { services, urls } = visit;
  const back = returnPath(returnTo) ?? "";
  if (services.identity.passwordLogin) {
    redirect(visit.res, pageUrl(visit, back ? `/login?return=${encodeURIComponent(back)}` : "/login"));
  } else {
    redirect(
      visit.res,
      services.identity.loginUrl({
        tenant: urls.tenant,
        returnTo: pageUrl(visit, back),
        interaction: "",
        fresh: false,
      }),
    );
  }
  return undefined;
}

/** The agent as humans see it: its registered name, owner and description. */
export async function agentFactsOf(services: Visit["services"], tenant: string, clientId: string): Promise<AgentFacts> {
  const client = await services.clients.resolve(tenant, clientId).catch(() => undefined);
  return {
    id: clientId,
    name: client?.metadata.client_name,
    owner: client?.metadata.owner,
    description: client?.metadata.description,
  };
}

/** GET /mandates: the list. */
export async function myMandatesEndpoint(visit: Visit): Promise<void> {
  const auth = await human(visit);
  if (!auth) return;
  const { services, urls } = visit;
  const scoped = services.store.forTenant(urls.tenant);
  const mandates = scoped.use(MandateStore);
  const now = services.clock.now();
  const mine = await mandates.list({ principal: auth.subject }, now, MAX_SHOWN);
  const lifetime = await mandates.lifetimeUsage(mine.map((m) => m.id));
  const usage = await currentUsage(scoped, mine, now);
  const agents = new Map<string, AgentFacts>();
  for (const m of mine)
    if (!agents.has(m.agent)) agents.set(m.agent, await agentFactsOf(services, urls.tenant, m.agent));
  const rows = new Map<string, MandateRow>(
    mine.map((m) => [
      m.id,
      {
        mandate: m,
        state: currentState(m, now, lifetime.get(m.id)),
        agent: agents.get(m.agent) ?? { id: m.agent },
        description: describeMandate(m, agents.get(m.agent) ?? { id: m.agent }, { revocation: revocationOf(m) }),
        usage: usage.get(m.id) ?? [],
        children: [],
      },
    ]),
  );
  const roots: MandateRow[] = [];
  for (const row of rows.values()) {
    const parent = row.mandate.parentId ? rows.get(row.mandate.parentId) : undefined;
    if (parent) parent.children.push(row);
    else roots.push(row);
  }
  const notice = queryParams(visit.req).get("revoked");
  const pending = await scoped.use(MandateRequestStore).pendingFor(auth.subject, now, MAX_PENDING_COUNTED);
  const body = mandatesPage({
    pending: pending.length,
    base: pageUrl(visit),
    agents: `${visit.urls.issuer}/agents`,
    signOut: signOutOf(visit),
    user: String(auth.claims.name ?? auth.claims.preferred_username ?? auth.subject),
    roots,
    revoked: notice && rows.has(notice) ? notice : undefined,
    now,
  });
  sendPage(visit.res, 200, "My mandates", body);
}

/** The principal's mandate named by the path, or undefined after answering 404. */
async function ownMandate(
  visit: Visit,
  auth: Authentication,
): Promise<{ mandate: MandateRecord; action: string } | undefined> {
  const match = MANDATE_PATH.exec(pathOf(visit));
  const mandate = match
    ? await visit.services.store
        .forTenant(visit.urls.tenant)
        .use(MandateStore)
        .find(match[1] as string)
    : undefined;
  // Someone else's mandate is as absent as one that does not exist.
  if (!match || !mandate || mandate.principal !== auth.subject) {
    sendPage(visit.res, 404, "Not found", notFoundPage("There is no such mandate of yours.", pageUrl(visit)));
    return undefined;
  }
  return { mandate, action: match[2] as string };
}

/** GET|POST /mandates/{id}/revoke, GET /mandates/{id}/receipt. */
export async function myMandateEndpoint(visit: Visit): Promise<void> {
  const auth = await human(visit);
  if (!auth) return;
  const found = await ownMandate(visit, auth);
  if (!found) return;
  const { mandate, action } = found;
  if (action === "receipt") {
    if (visit.req.method !== "GET") return refuseMethod(visit, "GET");
    return sendReceipt(visit, mandate);
  }
  if (visit.req.method === "GET") {
    const agent = await agentFactsOf(visit.services, visit.urls.tenant, mandate.agent);
    const below = await visit.services.store.forTenant(visit.urls.tenant).use(MandateStore).descendants(mandate.id);
    const body = revokeConfirmPage({
      base: pageUrl(visit),
      mandate,
      agent,
      subMandates: below.length,
      csrf: csrfToken(visit),
    });
    return sendPage(visit.res, 200, "Revoke a mandate", body);
  }
  if (visit.req.method !== "POST") return refuseMethod(visit, "GET, POST");
  const form = await readForm(visit.req);
  if (!csrfValid(visit, form.get("csrf"))) return refuseCsrf(visit);
  const reason = (form.get("reason") ?? "").trim().slice(0, REASON_MAX);
  await revokeMandate(
    // Told after commit: this replica refuses at once, the others by notification (Redis when set).
    { ...visit.services, revocations: visit.services.inspector },
    visit.urls.tenant,
    mandate.id,
    reason ? `revoked by the principal: ${reason}` : "revoked by the principal",
    // The principal is the events' subject (a salted reference in the log): named by role, not id.
    { by: { role: "principal", via: "my-mandates page" } },
  );
  redirect(visit.res, `${pageUrl(visit)}?revoked=${encodeURIComponent(mandate.id)}`);
}

async function sendReceipt(visit: Visit, mandate: MandateRecord): Promise<void> {
  let bundle: ReceiptBundle;
  try {
    bundle = await receiptBundle(visit.services, visit.urls.tenant, mandate.id);
  } catch (error) {
    if (!(error instanceof ReceiptNotReady)) throw error;
    return sendPage(
      visit.res,
      503,
      "Receipt not ready",
      notFoundPage("The receipt is being prepared. Try again in a moment.", pageUrl(visit)),
      { "retry-after": "1" },
    );
  }
  const text = `${JSON.stringify(bundle, null, 2)}\n`;
  visit.res.writeHead(200, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "content-disposition": `attachment; filename="mandate-receipt-${mandate.id}.json"`,
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  });
  visit.res.end(text);
}

export function refuseMethod(visit: Visit, allow: string): void {
  visit.res.writeHead(405, { allow, "content-type": "text/plain; charset=utf-8" });
  visit.res.end(`use ${allow}\n`);
}

/** A group of a human's pages ("my mandates", "my agents"): where they live and which paths a sign-in may return to. */
export interface SignInArea {
  url(visit: Visit, suffix?: string): string;
  returnPath(value: string | undefined): string | undefined;
  refuseForm(visit: Visit): void;
}

/** GET|POST {area}/login: signing in to an area's pages (identity providers with password login). */
export function passwordSignInEndpoint(area: SignInArea): (visit: Visit) => Promise<void> {
  return async (visit) => {
    const { services, req, res, urls } = visit;
    const login = services.identity.passwordLogin;
    const back = req.method === "GET" ? area.returnPath(queryParams(req).get("return")) : undefined;
    if (!login) {
      const returnTo = area.url(visit, back ?? "");
      return redirect(
        res,
        services.identity.loginUrl({ tenant: urls.tenant, returnTo, interaction: "", fresh: false }),
      );
    }
    if (req.method !== "GET") return signInWithPassword(area, visit, login);
    const action = area.url(visit, "/login");
    sendPage(res, 200, "Sign in", mandateSignInPage({ action, csrf: csrfToken(visit), returnTo: back }));
  };
}

/** The sign-in form's POST: limits, the password, then a session and back to the area. */
async function signInWithPassword(area: SignInArea, visit: Visit, login: PasswordLogin): Promise<void> {
  const { services, req, res, urls } = visit;
  const form = await readForm(req);
  const returnTo = area.returnPath(form.get("return"));
  if (!csrfValid(visit, form.get("csrf"))) return area.refuseForm(visit);
  const username = form.get("username") ?? "";
  const action = area.url(visit, "/login");
  const again = (status: number, error: string, headers: Record<string, string> = {}) =>
    sendPage(
      res,
      status,
      "Sign in",
      mandateSignInPage({ action, csrf: csrfToken(visit), username, error, returnTo }),
      headers,
    );
  const tooMany = (wait: number) =>
    again(429, "Too many failed sign-ins. Try again later.", { "retry-after": String(wait) });
  const wait = await services.limits.beforeLogin(urls.tenant, username, req);
  if (wait > 0) return tooMany(wait);
  const userId = await login.verify(username, form.get("password") ?? "");
  if (!userId) {
    const waitNow = await services.limits.loginFailed(urls.tenant, username, req);
    if (waitNow > 0) return tooMany(waitNow);
    return again(401, "The username or password is not correct. Check them and try again.");
  }
  const session = await login.openSession(urls.tenant, userId);
  setCookie(res, urls, session.name, session.value, session.maxAgeSeconds);
  redirect(res, area.url(visit, returnTo ?? ""));
}

/** GET|POST /mandates/login: signing in to see one's mandates. */
export const myMandatesLoginEndpoint = passwordSignInEndpoint({ url: pageUrl, returnPath, refuseForm: refuseCsrf });
