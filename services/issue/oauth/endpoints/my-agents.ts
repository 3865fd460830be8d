// "My agents" (issue 17 item 2: "the agent's owner, on a page"): the logged-in human's page of the
// agents registered with them as owner (/t/{tenant}/agents), each with its current certificates, a
// form creating a one-time enrollment token for it — shown once, with the `mandate agents enroll`
// command that spends it — and a form revoking its certificates. Only the owner sees or acts on an
// agent: anyone else gets 404, as for an agent that does not exist. Every form is a POST carrying
// the CSRF token of the "my mandates" pages (double submit, compared in constant time); without a
// session the browser is sent to sign in and back here.
import type { Actor } from "../../../shared/audit-events.ts";
import { AgentCertificates } from "../../agents/certificates.ts";
import { createEnrollmentToken } from "../../agents/enrollment.ts";
import type { RegisteredClient } from "../../clients/metadata.ts";
import type { Authentication } from "../../identity/provider.ts";
import { sendPage } from "../../pages/layout.ts";
import { agentNotFoundPage, agentsPage, enrollmentTokenPage, type OwnedAgent } from "../../pages/my-agents.ts";
import type { Visit } from "../browser.ts";
import { queryParams, readForm, redirect } from "../http.ts";
import { csrfToken, csrfValid, passwordSignInEndpoint, refuseMethod, signOutOf } from "./my-mandates.ts";

/** Agents shown (an owner with more manages them through the API). */
const MAX_SHOWN = 200;
/** /t/{tenant}/agents/{client id}/{action}: client ids an administrator registers are base64url. */
const AGENT_ACTION = /^\/t\/[a-z0-9-]+\/agents\/([A-Za-z0-9_-]{1,128})\/(enrollment-token|revoke-certificates)$/;
/** An agent's actions on this page, as its route pattern (oauth/server.ts). */
export const MY_AGENT_PATH = /^\/agents\/[A-Za-z0-9_-]{1,128}\/(enrollment-token|revoke-certificates)$/;

function agentsUrl({ urls }: Visit, suffix = ""): string {
  return `${urls.issuer}/agents${suffix}`;
}

/** The logged-in human, or undefined after sending the browser to sign in and back here. */
async function owner(visit: Visit): Promise<Authentication | undefined> {
  const { services, urls, req, res } = visit;
  const auth = await services.identity.session(req, urls.tenant);
  if (auth) return auth;
  if (services.identity.passwordLogin) redirect(res, agentsUrl(visit, "/login"));
  else {
    const returnTo = agentsUrl(visit);
    redirect(res, services.identity.loginUrl({ tenant: urls.tenant, returnTo, interaction: "", fresh: false }));
  }
  return undefined;
}

/** The human as the audit names them: the subject party (a salted reference in the log), by role. */
function ownerActor(auth: Authentication): Partial<Actor> {
  return {
    by: { role: "owner", via: "my-agents page" },
    parties: { subject: { id: auth.subject, kind: "PARTY_KIND_HUMAN" } },
  };
}

async function ownedAgent(visit: Visit, client: RegisteredClient): Promise<OwnedAgent> {
  const now = visit.services.clock.now();
  const all = await new AgentCertificates(visit.services.store).list(visit.urls.tenant, client.clientId);
  return {
    clientId: client.clientId,
    name: client.metadata.client_name,
    description: client.metadata.description,
    certificates: all.filter((c) => Number(c.not_after) > now),
  };
}

/** GET /agents: the human's agents. */
export async function myAgentsEndpoint(visit: Visit): Promise<void> {
  const auth = await owner(visit);
  if (!auth) return;
  const { services, urls } = visit;
  const mine = await services.clients.list(urls.tenant, MAX_SHOWN, undefined, { kind: "agent", owner: auth.subject });
  const agents = await Promise.all(mine.map((client) => ownedAgent(visit, client)));
  const query = queryParams(visit.req);
  const revokedAgent = agents.find((a) => a.clientId === query.get("revoked"));
  const count = Number.parseInt(query.get("count") ?? "0", 10);
  const body = agentsPage({
    base: agentsUrl(visit),
    mandates: `${urls.issuer}/mandates`,
    user: String(auth.claims.name ?? auth.claims.preferred_username ?? auth.subject),
    signOut: signOutOf(visit),
    csrf: csrfToken(visit),
    agents,
    revoked: revokedAgent ? { agent: revokedAgent, count: Number.isFinite(count) ? count : 0 } : undefined,
  });
  sendPage(visit.res, 200, "My agents", body);
}

/** POST /agents/{client id}/enrollment-token | revoke-certificates. */
export async function myAgentEndpoint(visit: Visit): Promise<void> {
  const auth = await owner(visit);
  if (!auth) return;
  if (visit.req.method !== "POST") return refuseMethod(visit, "POST");
  const match = AGENT_ACTION.exec(new URL(visit.req.url ?? "/", "http://x").pathname);
  const client = match ? await visit.services.clients.get(visit.urls.tenant, match[1] as string) : undefined;
  // Someone else's agent (or an application) is as absent as one that does not exist.
  if (!match || client?.metadata.kind !== "agent" || client.metadata.owner !== auth.subject) {
    return sendPage(
      visit.res,
      404,
      "Not found",
      agentNotFoundPage("There is no such agent of yours.", agentsUrl(visit)),
    );
  }
  const form = await readForm(visit.req);
  if (!csrfValid(visit, form.get("csrf"))) return refuseForm(visit);
  const { services, urls } = visit;
  if (match[2] === "revoke-certificates") {
    const revoked = await new AgentCertificates(services.store).revoke(
      urls.tenant,
      client.clientId,
      { reason: "unspecified", now: services.clock.now() },
      ownerActor(auth),
    );
    const notice = `?revoked=${encodeURIComponent(client.clientId)}&count=${revoked.length}`;
    return redirect(visit.res, agentsUrl(visit, notice));
  }
  // The token is random (32 bytes), only its SHA-256 kept, audited with the row (agents/enrollment.ts).
  const { token, expiresAt } = await createEnrollmentToken(
    services,
    // The row names its creator; the audit event names the owner as a (salted) party only.
    { tenant: urls.tenant, clientId: client.clientId, createdBy: auth.subject },
    ownerActor(auth),
  );
  const agent = await ownedAgent(visit, client);
  const body = enrollmentTokenPage({ base: agentsUrl(visit), agent, token, expiresAt, issuer: urls.issuer });
  sendPage(visit.res, 200, "Enrollment token", body);
}

function refuseForm(visit: Visit): void {
  const message = "This form has expired or did not come from this site. Reload the page and try again.";
  sendPage(visit.res, 403, "Request refused", agentNotFoundPage(message, agentsUrl(visit)));
}

/** GET|POST /agents/login: signing in to see one's agents (the page takes no return path). */
export const myAgentsLoginEndpoint = passwordSignInEndpoint({
  url: agentsUrl,
  returnPath: () => undefined,
  refuseForm,
});
