// The consent page (GET) and the user's decision (POST): approve issues the code and remembers the
// approval; deny sends access_denied to the client (RFC 6749 §4.1.2.1).
import { consentDenied } from "../../../shared/audit-events.ts";
import type { Authentication } from "../../identity/provider.ts";
import { consentPage } from "../../pages/consent.ts";
import { cspSource, sendPage } from "../../pages/layout.ts";
import { redirectError, sameSecret, sendExpiredPage, type Visit } from "../browser.ts";
import { AccessDenied } from "../errors.ts";
import { type Params, queryParams, readForm } from "../http.ts";
import { boundInteraction, continueInteraction, dropInteraction, issueCode, targetOf } from "../interaction.ts";
import type { Interaction } from "../interaction-store.ts";
import { decideMandate, showMandateConsent } from "./mandate-consent.ts";

/** GET/POST /consent. */
export async function consentEndpoint(visit: Visit): Promise<void> {
  const { services, req, res, urls } = visit;
  const form = req.method === "POST" ? await readForm(req) : undefined;
  const id = (form ?? queryParams(req)).get("interaction") ?? "";
  const interaction = await boundInteraction(visit, id);
  if (!interaction) return sendExpiredPage(res);
  const auth = await services.identity.session(req, urls.tenant);
  if (!auth) return continueInteraction(visit, id);
  if (!form) return showConsentPage(visit, id, interaction, auth);
  await decide(visit, form, id, interaction, auth);
}

async function showConsentPage(visit: Visit, id: string, interaction: Interaction, auth: Authentication) {
  const { services, res, urls } = visit;
  const { request } = interaction;
  if (request.mandate) return showMandateConsent(visit, id, interaction, auth);
  const client = await services.clients.resolve(urls.tenant, request.clientId).catch(() => undefined);
  const page = consentPage({
    action: urls.consent,
    interaction: id,
    csrf: interaction.csrf,
    clientName: client?.metadata.client_name || request.clientId,
    clientUri: client?.metadata.client_uri,
    userName: String(auth.claims.name ?? auth.claims.preferred_username ?? auth.subject),
    scopes: request.scope,
    resources: request.resources,
  });
  sendPage(res, 200, "Allow access", page, {}, [cspSource(request.redirectUri)]);
}

async function decide(visit: Visit, form: Params, id: string, interaction: Interaction, auth: Authentication) {
  const { services, urls } = visit;
  const { request } = interaction;
  // CSRF: the form's token must be the one minted for this interaction, in this browser.
  if (!sameSecret(form.get("csrf"), interaction.csrf)) return sendExpiredPage(visit.res);
  if (request.mandate) return decideMandate(visit, form, id, interaction, auth);
  await dropInteraction(visit, id);
  if (form.get("decision") === "approve") return issueCode(visit, request, auth, true);
  const denied = consentDenied({ subject: auth.subject, clientId: request.clientId, scope: request.scope });
  await services.store.forTenant(urls.tenant).commitEvent(denied, services.clock.now());
  await redirectError(visit, targetOf(request, auth.subject), new AccessDenied("the user denied the request"));
}
