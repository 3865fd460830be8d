// The "pending requests" page (issue 15 item 3, the asynchronous grant): the backchannel requests
// (OpenID CIBA Core, endpoints/backchannel.ts) addressed to the signed-in human and not expired, at
// /t/{tenant}/mandates/pending, each with its agent, the mandate in plain words and the binding
// message; at /mandates/pending/{id} the approval form of the consent page (narrow, approve, deny).
// Sign-in and CSRF are those of "my mandates" (my-mandates.ts). A request that is not this human's,
// not waiting any more, or expired is 404, as one that does not exist.
//
// Approving grants the mandate (consent method "asynchronous", approved by the human, the words of
// the approved version) and marks the request approved with its mandate id in one transaction with
// mandate.granted.v1; denying marks it denied with mandate.request_denied.v1. The agent learns
// either at its next poll (grants/ciba.ts).
import { mandateRequestDenied } from "../../../shared/audit-events.ts";
import type { Authentication } from "../../identity/provider.ts";
import { ApprovalRefused, approvedBounds, approvedMandate, approvedRevocation } from "../../mandates/approval.ts";
import { describeMandate } from "../../mandates/describe.ts";
import { recordMandate } from "../../mandates/grant.ts";
import { type MandateRequest, MandateRequestStore, type RequestApproval } from "../../mandates/request-store.ts";
import { sendPage } from "../../pages/layout.ts";
import { notFoundPage } from "../../pages/my-mandates.ts";
import { type PendingRow, pendingListPage, pendingRequestPage } from "../../pages/pending-mandates.ts";
import type { Visit } from "../browser.ts";
import { type Params, queryParams, readForm, redirect } from "../http.ts";
import { mandateDeps } from "./mandate-consent.ts";
import {
  agentFactsOf,
  csrfToken,
  csrfValid,
  human,
  pageUrl,
  refuseCsrf,
  refuseMethod,
  signOutOf,
} from "./my-mandates.ts";

const REQUEST_PATH = /^\/t\/[a-z0-9-]+\/mandates\/pending\/(mrq_[A-Za-z0-9_-]{1,64})$/;
/** Requests shown at once (the oldest first). */
const MAX_SHOWN = 100;

/** A decision that found the request no longer waiting (decided meanwhile, expired). */
class RequestGone extends Error {}

const userName = (auth: Authentication) => String(auth.claims.name ?? auth.claims.preferred_username ?? auth.subject);

async function rowOf(visit: Visit, request: MandateRequest): Promise<PendingRow> {
  const agent = await agentFactsOf(visit.services, visit.urls.tenant, request.clientId);
  return {
    request,
    agent,
    description: describeMandate(request.ask.bounds, agent, { revocation: request.ask.revocation }),
  };
}

/** GET /mandates/pending: the requests waiting for this human. */
export async function pendingMandatesEndpoint(visit: Visit): Promise<void> {
  const auth = await human(visit, "/pending");
  if (!auth) return;
  const { services, urls } = visit;
  const now = services.clock.now();
  const requests = services.store.forTenant(urls.tenant).use(MandateRequestStore);
  const rows = await Promise.all((await requests.pendingFor(auth.subject, now, MAX_SHOWN)).map((r) => rowOf(visit, r)));
  const query = queryParams(visit.req);
  const approved = query.get("approved");
  const notice =
    approved !== undefined && /^mdt_[A-Za-z0-9_-]{1,64}$/.test(approved)
      ? { approved }
      : query.get("denied") !== undefined
        ? { denied: true as const }
        : undefined;
  const body = pendingListPage({ base: pageUrl(visit), user: userName(auth), rows, notice, signOut: signOutOf(visit) });
  sendPage(visit.res, 200, "Requests waiting for you", body);
}

/** GET|POST /mandates/pending/{id}: one request, its approval form, the decision. */
export async function pendingMandateEndpoint(visit: Visit): Promise<void> {
  const id = REQUEST_PATH.exec(new URL(visit.req.url ?? "/", "http://x").pathname)?.[1];
  const auth = await human(visit, id ? `/pending/${id}` : "/pending");
  if (!auth) return;
  if (visit.req.method === "GET") {
    const request = await waiting(visit, id, auth);
    return request ? showRequest(visit, request, auth) : notFound(visit);
  }
  if (visit.req.method !== "POST") return refuseMethod(visit, "GET, POST");
  const form = await readForm(visit.req);
  if (!csrfValid(visit, form.get("csrf"))) return refuseCsrf(visit);
  const request = await waiting(visit, id, auth);
  if (!request) return notFound(visit);
  try {
    if (form.get("decision") === "approve") await approve(visit, request, auth, form);
    else await deny(visit, request, auth);
  } catch (error) {
    if (error instanceof RequestGone) return notFound(visit);
    throw error;
  }
}

async function deny(visit: Visit, request: MandateRequest, auth: Authentication): Promise<void> {
  const scoped = visit.services.store.forTenant(visit.urls.tenant);
  const now = visit.services.clock.now();
  await scoped.transaction(async (tx) => {
    const requests = scoped.use(MandateRequestStore, tx);
    if (!(await requests.decide(request.id, auth.subject, { state: "denied" }, now))) throw new RequestGone();
    const event = mandateRequestDenied({ requestId: request.id, principal: auth.subject, agent: request.clientId });
    await scoped.recordEvent(tx, event, now);
  });
  redirect(visit.res, `${pageUrl(visit, "/pending")}?denied=1`);
}

async function approve(visit: Visit, request: MandateRequest, auth: Authentication, form: Params): Promise<void> {
  const { services, urls } = visit;
  const scoped = services.store.forTenant(urls.tenant);
  const now = services.clock.now();
  let granted: Awaited<ReturnType<typeof approvedMandate>>;
  try {
    const { ask } = request;
    // The form read back and checked against the ask: never wider (approval.ts).
    const approved = approvedBounds(form, ask, now);
    const agent = await agentFactsOf(services, urls.tenant, request.clientId);
    const input = { principal: auth.subject, agent, approved, ask, revocation: approvedRevocation(form, ask) };
    granted = await approvedMandate(mandateDeps(visit), urls.tenant, input, "asynchronous", {
      sessionId: auth.sessionId,
    });
  } catch (error) {
    if (error instanceof ApprovalRefused) return showRequest(visit, request, auth, error.message);
    throw error;
  }
  const { record, actor } = granted;
  const approval: RequestApproval = { authTime: auth.authTime, acr: auth.acr, amr: auth.amr, claims: auth.claims };
  await scoped.transaction(async (tx) => {
    // The request first: its row is locked until the mandate commits with it, or neither does.
    const requests = scoped.use(MandateRequestStore, tx);
    const decision = { state: "approved" as const, mandateId: record.id, approval };
    if (!(await requests.decide(request.id, auth.subject, decision, now))) throw new RequestGone();
    await recordMandate(scoped, tx, record, actor);
  });
  redirect(visit.res, `${pageUrl(visit, "/pending")}?approved=${encodeURIComponent(record.id)}`);
}

/** Request `id` when it is addressed to this human, still waiting and not expired. */
async function waiting(
  visit: Visit,
  id: string | undefined,
  auth: Authentication,
): Promise<MandateRequest | undefined> {
  if (id === undefined) return undefined;
  const request = await visit.services.store.forTenant(visit.urls.tenant).use(MandateRequestStore).find(id);
  const now = visit.services.clock.now();
  if (!request || request.principal !== auth.subject || request.state !== "requested" || request.expiresAt <= now) {
    return undefined;
  }
  return request;
}

async function showRequest(visit: Visit, request: MandateRequest, auth: Authentication, error?: string) {
  const body = pendingRequestPage({
    base: pageUrl(visit),
    user: userName(auth),
    row: await rowOf(visit, request),
    csrf: csrfToken(visit),
    signOut: signOutOf(visit),
    error,
  });
  sendPage(visit.res, error ? 400 : 200, "Give a mandate", body);
}

function notFound(visit: Visit): void {
  sendPage(visit.res, 404, "Not found", notFoundPage("There is no such request waiting for you.", pageUrl(visit)));
}
