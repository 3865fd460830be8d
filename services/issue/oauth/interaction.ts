// The browser interaction between the authorization endpoint and the code: each visit decides the
// next step — log in, ask consent, or issue the code (RFC 6749 §4.1.1–4.1.2) — from the stored
// interaction and the identity provider's session. The interaction is bound to the browser that
// started it by a cookie naming it; a login or consent form from elsewhere finds nothing.
import { randomBytes } from "node:crypto";
import { authorizationCodeIssued, consentGranted } from "../../shared/audit-events.ts";
import { type CodeRequest, GrantStore } from "../../shared/oauth/grant-store.ts";
import { handleHash, opaqueHandle } from "../../shared/oauth/handles.ts";
import type { TenantTransaction } from "../../shared/store/store.ts";
import { type Authentication, meetsAcr } from "../identity/provider.ts";
import type { AuthorizationRequest } from "./authorization-request.ts";
import { redirectError, sameSecret, sendExpiredPage, setCookie, type Visit } from "./browser.ts";
import { ConsentStore } from "./consent-store.ts";
import { ConsentRequired, LoginRequired, type OAuthError } from "./errors.ts";
import { cookies, redirect } from "./http.ts";
import { type Interaction, InteractionStore } from "./interaction-store.ts";

const INTERACTION_COOKIE = "mandate_interaction";
const INTERACTION_TTL_MS = 15 * 60_000;

/** Stores a validated request as a new interaction, names it in this browser's cookie, and continues it. */
export async function startInteraction(visit: Visit, request: AuthorizationRequest): Promise<void> {
  const { services, res, urls } = visit;
  const now = services.clock.now();
  const interaction = { request, csrf: randomBytes(24).toString("base64url"), createdAt: now };
  const id = await interactions(visit).create(interaction, now + INTERACTION_TTL_MS);
  setCookie(res, urls, INTERACTION_COOKIE, id, INTERACTION_TTL_MS / 1000);
  // Just created, it is this browser's by construction (its cookie is in this response).
  await continueInteraction(visit, id, interaction);
}

/** The interaction, if it exists, is live, and belongs to this browser (its cookie names it). */
export async function boundInteraction(visit: Visit, id: string): Promise<Interaction | undefined> {
  if (!id || !sameSecret(cookies(visit.req).get(INTERACTION_COOKIE), id)) return undefined;
  return interactions(visit).find(id, visit.services.clock.now());
}

/** Ends an interaction: its id (and cookie) are useless from now on. */
export function dropInteraction(visit: Visit, id: string): Promise<void> {
  return interactions(visit).drop(id);
}

/** Decides the next step: log in, ask consent, or issue the code. */
export async function continueInteraction(visit: Visit, id: string, created?: Interaction): Promise<void> {
  const { services, req, res, urls } = visit;
  const interaction = created ?? (await boundInteraction(visit, id));
  if (!interaction) return sendExpiredPage(res);
  const { request } = interaction;
  const identity = services.identity;
  const auth = await identity.session(req, urls.tenant);
  const wantAcr = request.acrValues.find((v) => identity.acrValues.includes(v));
  if (!auth || needsLogin(visit, interaction, auth, wantAcr)) {
    if (request.prompt.includes("none")) {
      return endSilently(visit, id, request, auth, new LoginRequired("the user is not logged in"));
    }
    return sendToLogin(visit, id, interaction, auth, wantAcr);
  }
  const consents = services.store.forTenant(urls.tenant).use(ConsentStore);
  // A mandate is granted by the human each time it is asked for: never by a remembered consent.
  if (!request.mandate && !request.prompt.includes("consent") && (await consents.covers(approvalOf(request, auth)))) {
    await dropInteraction(visit, id);
    return issueCode(visit, request, auth, false);
  }
  if (request.prompt.includes("none")) {
    return endSilently(visit, id, request, auth, new ConsentRequired("consent is required"));
  }
  redirect(res, `${urls.consent}?interaction=${encodeURIComponent(id)}`);
}

/** OIDC Core §3.1.2.1: prompt=login wants a login during this request, max_age a recent one, acr_values a level. */
function needsLogin(
  { services }: Visit,
  interaction: Interaction,
  auth: Authentication,
  wantAcr: string | undefined,
): boolean {
  const { request, loginStartedAt } = interaction;
  const loginFresh = loginStartedAt !== undefined && auth.authTime >= loginStartedAt - 1000;
  const tooOld = request.maxAge !== undefined && services.clock.now() - auth.authTime > request.maxAge * 1000;
  return (
    (request.prompt.includes("login") && !loginFresh) ||
    tooOld ||
    !meetsAcr(services.identity.acrValues, auth.acr, wantAcr)
  );
}

/** Sends the browser to the identity provider's login, noting when, so that login counts as fresh. */
async function sendToLogin(
  visit: Visit,
  id: string,
  interaction: Interaction,
  auth: Authentication | undefined,
  wantAcr: string | undefined,
): Promise<void> {
  const { services, res, urls } = visit;
  if (interaction.loginStartedAt === undefined || auth) {
    await interactions(visit).update(id, { ...interaction, loginStartedAt: services.clock.now() });
  }
  redirect(
    res,
    services.identity.loginUrl({
      tenant: urls.tenant,
      returnTo: `${urls.resume}?interaction=${encodeURIComponent(id)}`,
      interaction: id,
      loginHint: interaction.request.loginHint,
      fresh: auth !== undefined,
      acr: wantAcr,
    }),
  );
}

/** OIDC Core §3.1.2.6: with prompt=none, what would need the user ends the request with an error. */
async function endSilently(
  visit: Visit,
  id: string,
  request: AuthorizationRequest,
  auth: Authentication | undefined,
  error: OAuthError,
): Promise<void> {
  await dropInteraction(visit, id);
  await redirectError(visit, targetOf(request, auth?.subject ?? null), error);
}

/** Where errors about `request` go: its verified redirect URI, through the interstitial when untrusted. */
export function targetOf(request: AuthorizationRequest, subject: string | null) {
  return {
    clientId: request.clientId,
    origin: request.clientOrigin,
    subject,
    redirectUri: request.redirectUri,
    state: request.state,
  };
}

/**
 * RFC 6749 §4.1.2: stores the code — with the approval when the user just gave it, and their audit
 * events, in one transaction — then redirects with code, state and iss (RFC 9207 §2).
 */
export async function issueCode(
  visit: Visit,
  request: AuthorizationRequest,
  auth: Authentication,
  consented: boolean,
): Promise<void> {
  const { services, urls } = visit;
  const now = services.clock.now();
  const code = opaqueHandle("mac");
  const approval = approvalOf(request, auth);
  const scoped = services.store.forTenant(urls.tenant);
  await scoped.transaction(async (tx) => {
    if (consented) {
      await scoped.use(ConsentStore, tx).merge(approval, now);
      await scoped.recordEvent(tx, consentGranted(approval), now);
    }
    await storeCode(visit, tx, code, codeRequest(request, auth), now);
  });
  sendCode(visit, request, code);
}

/** Stores `code` for `request` with its audit event, in the caller's transaction. */
export async function storeCode(
  { services, urls }: Visit,
  tx: TenantTransaction,
  code: string,
  request: CodeRequest,
  now: number,
): Promise<void> {
  const scoped = services.store.forTenant(urls.tenant);
  await scoped.use(GrantStore, tx).insertCode(handleHash(code), request, now, services.config.oauth.codeTtl);
  const { clientId, subject, scope, resources } = request;
  await scoped.recordEvent(tx, authorizationCodeIssued({ clientId, subject, scope, resources }), now);
}

/** RFC 6749 §4.1.2: the redirect with code, state and iss (RFC 9207 §2). */
export function sendCode({ res, urls }: Visit, request: AuthorizationRequest, code: string): void {
  const target = new URL(request.redirectUri);
  target.searchParams.set("code", code);
  if (request.state !== undefined) target.searchParams.set("state", request.state);
  target.searchParams.set("iss", urls.issuer);
  redirect(res, target.toString());
}

function approvalOf(request: AuthorizationRequest, auth: Authentication) {
  return { clientId: request.clientId, subject: auth.subject, scope: request.scope, resources: request.resources };
}

/** What the code stands for: the approved request and the login behind it. */
export function codeRequest(request: AuthorizationRequest, auth: Authentication): CodeRequest {
  return {
    clientId: request.clientId,
    redirectUri: request.redirectUri,
    scope: request.scope,
    resources: request.resources,
    codeChallenge: request.codeChallenge,
    subject: auth.subject,
    authTime: auth.authTime,
    acr: auth.acr,
    amr: auth.amr,
    claims: auth.claims,
    nonce: request.nonce,
    dpopJkt: request.dpopJkt,
  };
}

function interactions({ services, urls }: Visit): InteractionStore {
  return services.store.forTenant(urls.tenant).use(InteractionStore);
}
