// The token request of an asynchronous mandate grant (OpenID CIBA Core 1.0 §10.1, poll mode):
// `grant_type=urn:openid:params:grant-type:ciba&auth_req_id=…`. Until the human decides:
// authorization_pending, or slow_down when polled faster than the interval (which then grows by 5 s,
// §11); expired_token once the auth_req_id expired; access_denied once denied; invalid_grant for an
// auth_req_id that is unknown or another client's (one answer: nothing about other clients' requests
// is revealed) and for one whose tokens were issued already (once only). Once approved: tokens for
// the approved mandate — as a code redemption of an interactive grant: the mandate still usable,
// lifetime within its bounds, mandate_id and authorization_details (RFC 9396 §7), no refresh token.
import { GrantStore } from "../../../shared/oauth/grant-store.ts";
import { CIBA_GRANT_TYPE } from "../../clients/metadata.ts";
import { MandateRequestStore, SLOW_DOWN_STEP_S } from "../../mandates/request-store.ts";
import { AccessDenied, AuthorizationPending, ExpiredToken, InvalidGrant, PollingTooFast } from "../errors.ts";
import { narrowResources, parseResources, requirePermittedResources } from "../rfc8707.ts";
import { newGrant } from "./authorization-code.ts";
import type { GrantContext, TokenResponse } from "./grant.ts";
import { mintGrantTokens, recordGrantTokens } from "./grant-tokens.ts";
import { mandateTtlBound, usableMandate } from "./mandate-grant.ts";

export async function cibaGrant(context: GrantContext): Promise<TokenResponse> {
  const { services, params, client, urls, now } = context;
  const scoped = services.store.forTenant(urls.tenant);
  const request = await scoped.use(MandateRequestStore).byAuthReqId(params.require("auth_req_id"));
  // CIBA Core §11 / RFC 6749 §5.2: unknown, or issued to another client — the same answer.
  if (!request || request.clientId !== client.clientId) throw new InvalidGrant("the auth_req_id is invalid");
  if (request.state === "issued") throw new InvalidGrant("the tokens of this auth_req_id were issued already");
  if (request.expiresAt <= now) throw new ExpiredToken("the auth_req_id has expired: send a new request");
  if (request.state === "denied") throw new AccessDenied("the user denied the request");
  // §7.3 interval, §11 slow_down: counted (and grown) by one conditional update, so concurrent polls race fairly.
  if (!(await scoped.use(MandateRequestStore).recordPoll(request.id, now))) {
    throw new PollingTooFast(request.intervalS + SLOW_DOWN_STEP_S);
  }
  if (request.state === "requested" || !request.mandateId || !request.approval) {
    throw new AuthorizationPending("the user has not approved or denied the request yet");
  }
  const mandate = await usableMandate(context, request.mandateId);
  const audience = narrowResources(parseResources(params.all("resource")), [...mandate.resources]);
  // RFC 8707 §2: still a resource the client may target (an administrator may have narrowed it since).
  requirePermittedResources(audience, await services.resources.allowedFor(client));
  const grant = newGrant(context, {
    ...request.approval,
    subject: request.principal,
    scope: [...mandate.scopes],
    resources: [...mandate.resources],
    mandateId: mandate.id,
    authorizationDetails: [...mandate.authorizationDetails],
  });
  // Signed first (see mintGrantTokens); recorded only if no concurrent poll took them.
  const minted = await mintGrantTokens(context, {
    grant,
    scope: [...mandate.scopes],
    audience,
    grantType: CIBA_GRANT_TYPE,
    idToken: true,
    noRefreshToken: true,
    maxTtlMs: mandateTtlBound(mandate, now),
  });
  return scoped.transaction(async (tx) => {
    if (!(await scoped.use(MandateRequestStore, tx).markIssued(request.id))) {
      throw new InvalidGrant("the tokens of this auth_req_id were issued already");
    }
    await scoped.use(GrantStore, tx).insertGrant(grant, now);
    return recordGrantTokens(context, tx, minted);
  });
}
