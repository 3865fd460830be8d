// The consent page of an interactive mandate grant (issue 15 item 3): an agent asked, at the
// authorization endpoint or by PAR, for a mandate (RFC 9396 authorization_details and `mandate`);
// the human sees it in plain words, may narrow it, and approves or denies. Approval grants the
// mandate (consent method "interactive", approved by the human's sub, the words shown for the approved
// version as its text) and stores the code naming it, in one transaction with their audit events;
// deny is access_denied to the client (RFC 6749 §4.1.2.1).
import { consentDenied } from "../../../shared/audit-events.ts";
import { opaqueHandle } from "../../../shared/oauth/handles.ts";
import type { RegisteredClient } from "../../clients/metadata.ts";
import type { Authentication } from "../../identity/provider.ts";
import { ApprovalRefused, approvedBounds, approvedMandate, approvedRevocation } from "../../mandates/approval.ts";
import { type AgentFacts, describeMandate } from "../../mandates/describe.ts";
import { type MandateDeps, recordMandate } from "../../mandates/grant.ts";
import { cspSource, html, sendPage } from "../../pages/layout.ts";
import { mandateApprovalForm } from "../../pages/mandate-approval.ts";
import { redirectError, type Visit } from "../browser.ts";
import { AccessDenied } from "../errors.ts";
import type { MandateCodeRequest } from "../grants/mandate-grant.ts";
import type { Params } from "../http.ts";
import { codeRequest, dropInteraction, sendCode, storeCode, targetOf } from "../interaction.ts";
import type { Interaction } from "../interaction-store.ts";

/** The agent as humans see it: its registered name, owner and description. */
export function agentFacts(client: RegisteredClient | undefined, clientId: string): AgentFacts {
  return {
    id: clientId,
    name: client?.metadata.client_name,
    owner: client?.metadata.owner,
    description: client?.metadata.description,
  };
}

/** What granting a mandate needs: the OAuth server's services have all of it. */
export function mandateDeps({ services }: Visit): MandateDeps {
  return services;
}

/** GET /consent of a mandate request; again with `error` (400) when an approval was refused. */
export async function showMandateConsent(
  visit: Visit,
  id: string,
  interaction: Interaction,
  auth: Authentication,
  error?: string,
): Promise<void> {
  const { services, res, urls } = visit;
  const { request } = interaction;
  const asked = request.mandate?.bounds;
  if (!asked) throw new Error("not a mandate request");
  const client = await services.clients.resolve(urls.tenant, request.clientId).catch(() => undefined);
  const agent = agentFacts(client, request.clientId);
  const name = agent.name || agent.id;
  const body = html`<h1>Give ${name} a mandate?</h1>
<p><strong>${name}</strong> asks to act for you, within these bounds.</p>
${mandateApprovalForm({
  action: urls.consent,
  hidden: { interaction: id, csrf: interaction.csrf },
  heading: "What you would allow",
  userName: String(auth.claims.name ?? auth.claims.preferred_username ?? auth.subject),
  description: describeMandate(asked, agent, { revocation: request.mandate?.revocation }),
  asked,
  revocation: request.mandate?.revocation,
  error,
})}
<p class="muted">You can revoke a mandate at any time; every token obtained from it stops working.</p>`;
  sendPage(res, error ? 400 : 200, "Give a mandate", body, {}, [cspSource(request.redirectUri)]);
}

/** POST /consent of a mandate request (CSRF already checked). */
export async function decideMandate(
  visit: Visit,
  form: Params,
  id: string,
  interaction: Interaction,
  auth: Authentication,
): Promise<void> {
  const { services, urls } = visit;
  const { request } = interaction;
  const ask = request.mandate;
  if (!ask) throw new Error("not a mandate request");
  const scoped = services.store.forTenant(urls.tenant);
  const now = services.clock.now();
  if (form.get("decision") !== "approve") {
    await dropInteraction(visit, id);
    const denied = consentDenied({ subject: auth.subject, clientId: request.clientId, scope: request.scope });
    await scoped.commitEvent(denied, now);
    return redirectError(visit, targetOf(request, auth.subject), new AccessDenied("the user denied the mandate"));
  }
  let granted: Awaited<ReturnType<typeof approvedMandate>>;
  try {
    const approved = approvedBounds(form, ask, now);
    const client = await services.clients.resolve(urls.tenant, request.clientId).catch(() => undefined);
    const revocation = approvedRevocation(form, ask);
    const input = { principal: auth.subject, agent: agentFacts(client, request.clientId), approved, ask, revocation };
    granted = await approvedMandate(mandateDeps(visit), urls.tenant, input, "interactive", {
      sessionId: auth.sessionId,
    });
  } catch (error) {
    if (error instanceof ApprovalRefused) return showMandateConsent(visit, id, interaction, auth, error.message);
    throw error;
  }
  const { record, actor } = granted;
  await dropInteraction(visit, id);
  const code = opaqueHandle("mac");
  // What was approved, not what was asked: the code carries the approved scopes and resources.
  const approvedRequest = { ...request, scope: [...record.scopes], resources: [...record.resources] };
  await scoped.transaction(async (tx) => {
    await recordMandate(scoped, tx, record, actor);
    const codeFor: MandateCodeRequest = {
      ...codeRequest(approvedRequest, auth),
      mandateId: record.id,
      authorizationDetails: [...record.authorizationDetails],
    };
    await storeCode(visit, tx, code, codeFor, now);
  });
  sendCode(visit, approvedRequest, code);
}
