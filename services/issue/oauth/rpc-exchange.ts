// Issue.ExchangeToken: the token endpoint's token exchange (mandates/exchange.ts) for a client the
// RPC layer authenticated from the request's ClientAuthentication. What the token endpoint checks
// around a grant is checked here the same way: the client is registered for the grant, and its DPoP
// proof — carried in the request's KeyBinding, made for POST to the tenant's token endpoint or to
// the RPC's URL — verifies under the server's nonce policy and is by the registered key of a client
// bound to one (requireRegisteredKey). An external subject token goes to the federation gateway
// (federation/gateway/gateway.ts) as it does at the token endpoint.
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema, PreconditionFailureSchema } from "../../../gen/google/rpc/error_details_pb.js";
import type { DpopBinding, ExchangeTokenRequest } from "../../../gen/mandate/v1/issue_pb.js";
import { ERROR_DOMAIN } from "../../shared/errors.ts";
import type { DpopProof } from "../../shared/oauth/dpop.ts";
import { rateLimited } from "../../shared/rpc/access.ts";
import type { PresentedCertificate } from "../../shared/x509/types.ts";
import type { RegisteredClient } from "../clients/metadata.ts";
import { ACCESS_TOKEN_TYPE, isFederatedTokenType, issueFederatedToken } from "../federation/gateway/gateway.ts";
import { exchangeToken } from "../mandates/exchange.ts";
import {
  type ExchangeResponse,
  exchangeRequestFromMessage,
  TOKEN_EXCHANGE_GRANT,
} from "../mandates/exchange-request.ts";
import { UnacceptableToken } from "../mandates/refusal.ts";
import { requireRegisteredKey, verifyTokenRequestProof } from "./authorization-server-dpop.ts";
import type { OAuthServices, TenantUrls } from "./context.ts";
import { InvalidClient, InvalidDpopProof, InvalidRequest, OAuthError, SlowDown, UnauthorizedClient } from "./errors.ts";
import {
  authenticateByCertificate,
  type CertificateBinding,
  certificateBindingOf,
  isCertificateAuthMethod,
  requireBoundCertificate,
} from "./rfc8705.ts";
import { parseResources } from "./rfc8707.ts";
import { parseScope } from "./scopes.ts";

export async function exchangeTokenByRpc(
  services: OAuthServices,
  urls: TenantUrls,
  clientId: string,
  message: ExchangeTokenRequest,
  rpcUrl: string,
  presented?: PresentedCertificate | undefined,
): Promise<ExchangeResponse> {
  const client = await services.clients.get(urls.tenant, clientId);
  if (!client) throw new InvalidClient("client authentication failed");
  if (!client.metadata.grant_types.includes(TOKEN_EXCHANGE_GRANT)) {
    throw new UnauthorizedClient(`the client is not registered for the ${TOKEN_EXCHANGE_GRANT} grant`);
  }
  const dpop = await bindingProof(services, urls, client, message.binding?.dpop, rpcUrl);
  if (isFederatedTokenType(services, message.subjectTokenType)) {
    return federatedExchange(services, urls, clientId, message, dpop, presented);
  }
  const request = exchangeRequestFromMessage(message);
  const certificate = await rpcCertificate(services, client, presented);
  requireBoundCertificate(client, certificate);
  const authMethod = client.metadata.token_endpoint_auth_method;
  return exchangeToken({ services, client, urls, dpop, certificate, authMethod, now: services.clock.now() }, request);
}

/**
 * The federation gateway over the RPC (issue 18): an external subject token (a trusted issuer's JWT,
 * an ID-JAG, a SAML assertion, an API key, a partner CA's certificate, another tenant's token)
 * exchanged by the client the RPC layer authenticated, which must be the agent it maps to.
 */
async function federatedExchange(
  services: OAuthServices,
  urls: TenantUrls,
  clientId: string,
  message: ExchangeTokenRequest,
  dpop: DpopProof | undefined,
  certificate: PresentedCertificate | undefined,
): Promise<ExchangeResponse> {
  if (message.actorToken) throw new InvalidRequest("an actor_token is not accepted with an external subject token");
  const issued = await issueFederatedToken({
    services,
    urls,
    now: services.clock.now(),
    grantType: TOKEN_EXCHANGE_GRANT,
    tokenType: message.subjectTokenType,
    token: message.subjectToken,
    scope: parseScope(message.scopes.join(" ")),
    resources: parseResources([...message.resources, ...message.audiences]),
    authenticatedClientId: clientId,
    dpop,
    certificate,
  });
  return { ...issued, issued_token_type: issued.issued_token_type ?? ACCESS_TOKEN_TYPE, mandate_id: "" };
}

/**
 * RFC 8705 on an RPC: the transport's certificate (Peer.clientCertificate) as the token endpoint
 * would take it. A certificate client was authenticated with it by the RPC layer in this call; it
 * is checked again here for the identity it proves (serial, SPIFFE ID), cheap next to the exchange.
 */
async function rpcCertificate(
  services: OAuthServices,
  client: RegisteredClient,
  presented: PresentedCertificate | undefined,
): Promise<CertificateBinding | undefined> {
  const method = client.metadata.token_endpoint_auth_method;
  const authenticated = isCertificateAuthMethod(method)
    ? await authenticateByCertificate(services, client, method, presented)
    : undefined;
  return certificateBindingOf(client, authenticated, presented);
}

/** RFC 9449 §5 as the token endpoint applies it (tokenRequestProof), from the request's KeyBinding. */
async function bindingProof(
  services: OAuthServices,
  urls: TenantUrls,
  client: RegisteredClient,
  binding: DpopBinding | undefined,
  rpcUrl: string,
): Promise<DpopProof | undefined> {
  if (!binding) {
    requireRegisteredKey(client, undefined);
    if (client.metadata.dpop_bound_access_tokens) {
      throw new InvalidDpopProof("this client must send a DPoP proof (binding.dpop; dpop_bound_access_tokens)");
    }
    return undefined;
  }
  const targets = [urls.token, rpcUrl];
  if (binding.httpMethod !== "POST" || !targets.includes(binding.httpUri)) {
    throw new InvalidDpopProof(`a token request's DPoP proof is made for POST ${urls.token} (or ${rpcUrl})`);
  }
  const proof = await verifyTokenRequestProof(services, urls, {
    headers: binding.proof,
    method: binding.httpMethod,
    url: binding.httpUri,
  });
  requireRegisteredKey(client, proof);
  return proof;
}

/**
 * RPC status of each OAuth error an exchange answers; ErrorInfo.reason is the OAuth code, upper-cased.
 *
 * RFC 8693 §2.2.2 makes every refusal of the request, of its subject_token or actor_token ("invalid
 * for any reason, or unacceptable based on policy") `invalid_request` — and that one OAuth code
 * covers two RPC statuses (google.rpc.Code, AIP-193):
 *   · INVALID_ARGUMENT — the request is wrong whatever the server's state: a missing, repeated or
 *     unsupported parameter, a widening of the mandate (invalid_scope, invalid_target,
 *     invalid_authorization_details, or invalid_request for another dimension), a token that is no
 *     access token of this tenant's issuer (malformed, bad signature, another tenant's), a mandate id
 *     that names none, a token of the wrong kind (mandates/refusal.ts CONDITIONS `argument`);
 *   · FAILED_PRECONDITION — the tokens and the mandate are real but their state or the policy refuses
 *     the exchange now: revoked, expired, not yet valid, used up, another agent's or principal's, not
 *     named by may_act, no delegation depth left (CONDITIONS `precondition`). The ErrorInfo
 *     (reason INVALID_REQUEST) carries `condition` (e.g. `revoked`) and `subject` (e.g.
 *     `mandate:mdt_…`) in its metadata, and a PreconditionFailure violation {type: condition,
 *     subject, description} names them too.
 */
const STATUS: Record<string, Code> = {
  invalid_request: Code.InvalidArgument,
  invalid_scope: Code.InvalidArgument,
  invalid_target: Code.InvalidArgument,
  invalid_authorization_details: Code.InvalidArgument,
  // An exchange answers none (RFC 8693 §2.2.2: invalid_request); kept should a shared check throw one.
  invalid_grant: Code.FailedPrecondition,
  unauthorized_client: Code.PermissionDenied,
  // The tenant's policy refused a federated token (issuance-policy.ts).
  access_denied: Code.PermissionDenied,
  invalid_client: Code.Unauthenticated,
  invalid_dpop_proof: Code.Unauthenticated,
  use_dpop_nonce: Code.Unauthenticated,
  temporarily_unavailable: Code.Unavailable,
};

/**
 * An OAuth error as the RPC's status: the code above, the error_description as the message, and
 * ErrorInfo {reason: INVALID_REQUEST..., domain mandate.v1, metadata: error, dpop_nonce when the
 * server wants a nonce (RFC 9449 §8), condition and subject of an unacceptable token}. slow_down is
 * RESOURCE_EXHAUSTED with RetryInfo. Anything else passes unchanged.
 */
export function exchangeRpcError(error: unknown): unknown {
  if (error instanceof SlowDown) return rateLimited(error.message, error.retryAfterSeconds);
  if (!(error instanceof OAuthError)) return error;
  const unacceptable = error instanceof UnacceptableToken ? error : undefined;
  const code = unacceptable?.precondition ? Code.FailedPrecondition : (STATUS[error.error] ?? Code.InvalidArgument);
  const nonce = error.headers["dpop-nonce"];
  const metadata: Record<string, string> = {
    error: error.error,
    ...(nonce ? { dpop_nonce: nonce } : {}),
    ...(unacceptable ? { condition: unacceptable.condition } : {}),
    ...(unacceptable?.subject ? { subject: unacceptable.subject } : {}),
  };
  const details: NonNullable<ConstructorParameters<typeof ConnectError>[3]> = [
    {
      desc: ErrorInfoSchema,
      value: create(ErrorInfoSchema, { reason: error.error.toUpperCase(), domain: ERROR_DOMAIN, metadata }),
    },
  ];
  if (code === Code.FailedPrecondition && unacceptable) {
    details.push({
      desc: PreconditionFailureSchema,
      value: create(PreconditionFailureSchema, {
        violations: [
          { type: unacceptable.condition, subject: unacceptable.subject ?? "", description: unacceptable.message },
        ],
      }),
    });
  }
  return new ConnectError(error.message, code, undefined, details);
}
