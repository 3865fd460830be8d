// Policy at issuance (issue 18 item 2: what a federated identity may get is limited by its trust's
// bounds "and by policy"). Before the gateway mints a federated token it asks the tenant's policy,
// through Authorize.BatchCheck (Issue calls it as a service), once per scope it would grant:
//   action "token.federated", resource {type: "scope", id: <scope>} ({type: "token"} when it grants
//   none), subject/client = the mapped agent, actors = the external identity's chain (RFC 8693 §4.1,
//   newest first), token = the token it would mint (scopes, aud, authorization_details,
//   foreign_tenant), context = {phase: "issuance", grant_type, protocol, issuer, trust_id}.
// A denied scope is left out (RFC 6749 §3.3: the server may issue less than requested, and the
// response's `scope` says what it issued); nothing left, or the scopeless token denied, is
// access_denied with the policy's reasons. Authorize unreachable or refusing the question is
// temporarily_unavailable: no policy answer, no token (fail closed).
import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { CheckRequestSchema, Decision } from "../../../../gen/mandate/v1/authorize_pb.js";
import { PartyKind } from "../../../../gen/mandate/v1/common_pb.js";
import { actorChain } from "../../../shared/oauth/access-token.ts";
import type { OAuthServices } from "../../oauth/context.ts";
import { AccessDenied, TemporarilyUnavailable } from "../../oauth/errors.ts";
import type { FederatedIdentity } from "./source.ts";

export const ISSUANCE_ACTION = "token.federated";
/** Authorize.BatchCheck's limit on checks per call. */
const BATCH_LIMIT = 100;

export interface IssuanceQuestion {
  tenant: string;
  grantType: string;
  clientId: string;
  identity: FederatedIdentity;
  scope: string[];
  audience: string[];
}

/** The granted scopes the tenant's policy allows; throws AccessDenied when it allows none. */
export async function scopesPolicyAllows(services: OAuthServices, question: IssuanceQuestion): Promise<string[]> {
  const { tenant, clientId, identity, scope, audience } = question;
  const agent = { id: clientId, kind: PartyKind.AGENT, attributes: {} };
  const common = {
    tenant,
    subject: agent,
    client: { ...agent, kind: PartyKind.SERVICE },
    actors: actorChain(identity.act).map((actor) => ({
      id: actor.sub,
      kind: PartyKind.AGENT,
      attributes: actor.claims as JsonObject,
    })),
    action: ISSUANCE_ACTION,
    token: {
      scopes: scope,
      audiences: audience,
      authorizationDetails: (identity.authorizationDetails ?? []) as JsonObject[],
      foreignTenant: identity.foreignTenant ?? "",
    },
    context: {
      phase: "issuance",
      grant_type: question.grantType,
      protocol: identity.protocol,
      issuer: identity.issuer,
      trust_id: identity.trustId,
    },
  };
  const resources = scope.length > 0 ? scope.map((id) => ({ type: "scope", id })) : [{ type: "token", id: "" }];
  const decisions = await decide(
    services,
    tenant,
    resources.map((resource) => ({ ...common, resource })),
  );
  const allowed = scope.filter((_, i) => decisions[i]?.allow === true);
  if (scope.length === 0 ? decisions[0]?.allow === true : allowed.length > 0) return allowed;
  const reasons = [...new Set(decisions.flatMap((decision) => decision.reasons.map((reason) => reason.message)))];
  throw new AccessDenied(
    `the tenant's policy does not allow this token${reasons.length ? `: ${reasons.join("; ")}` : ""}`,
  );
}

async function decide(
  services: OAuthServices,
  tenant: string,
  checks: MessageInitShape<typeof CheckRequestSchema>[],
): Promise<Decision[]> {
  const decisions: Decision[] = [];
  try {
    for (let i = 0; i < checks.length; i += BATCH_LIMIT) {
      const response = await services.authorize().batchCheck({ tenant, checks: checks.slice(i, i + BATCH_LIMIT) });
      decisions.push(...response.decisions);
    }
  } catch (error) {
    if (!(error instanceof ConnectError)) throw error;
    services.logger.error({ err: error, tenant }, "Authorize did not decide a federated token's issuance");
    const why = error.code === Code.Unavailable ? "is unreachable" : `refused the question (${Code[error.code]})`;
    throw new TemporarilyUnavailable(`the policy could not be asked (Authorize ${why}): try again later`);
  }
  return decisions;
}
