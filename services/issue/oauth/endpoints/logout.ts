// Sign-out: POST /t/{tenant}/logout, the button of the "my mandates" and pending-requests pages. It
// ends the browser's login session at the identity provider (dev users: the session's row deleted;
// Kratos: its logout flow) and revokes the mandates the human granted in that session with
// revoke_on_session_end (auto-revoke.ts: each with its sub-mandates and a mandate.revoked.v1 per
// mandate, by the rule, in one transaction), then tells this replica and the others (the revocation
// log's notifications, Redis when configured).
//
// Order, failing closed: the session's mandates are revoked first (an error there leaves the
// session open, so signing out again can finish), then the session ends, then they are revoked once
// more (a grant that was committing in the session meanwhile). A session that cannot be ended is an
// error page, never "signed out". The form carries the CSRF token of the signed-in pages (double
// submit, my-mandates.ts): without it, 403 and nothing ends.
import { revokeForSessionEnd } from "../../mandates/auto-revoke.ts";
import { sendPage } from "../../pages/layout.ts";
import { signedOutPage } from "../../pages/my-mandates.ts";
import { setCookie, type Visit } from "../browser.ts";
import { readForm } from "../http.ts";
import { csrfValid, pageUrl, refuseCsrf } from "./my-mandates.ts";

export async function logoutEndpoint(visit: Visit): Promise<void> {
  const { services, req, res, urls } = visit;
  const form = await readForm(req);
  if (!csrfValid(visit, form.get("csrf"))) return refuseCsrf(visit);
  const auth = await services.identity.session(req, urls.tenant);
  let revoked = 0;
  if (auth) {
    const { endSession } = services.identity;
    if (!endSession) throw new Error(`the ${services.identity.kind} identity provider cannot end sessions`);
    const deps = { store: services.store, clock: services.clock, revocations: services.inspector };
    const sessionEnds = async () => (auth.sessionId ? revokeForSessionEnd(deps, urls.tenant, auth.sessionId) : []);
    revoked += (await sessionEnds()).length;
    const { clearCookies } = await endSession.call(services.identity, req, urls.tenant, auth);
    revoked += (await sessionEnds()).length;
    for (const name of clearCookies) setCookie(res, urls, name, "", 0);
  }
  sendPage(res, 200, "Signed out", signedOutPage({ base: pageUrl(visit), revoked }));
}
