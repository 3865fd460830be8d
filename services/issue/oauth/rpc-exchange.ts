// Issue.ExchangeToken: the token endpoint's token exchange (mandates/exchange.ts) for a client the
// RPC layer authenticated from the request's ClientAuthentication. What the token endpoint checks
// around a grant is checked here the same way: the client is registered for the grant, and its DPoP
// proof — carried in the request's KeyBinding, made for POST to the tenant's token endpoint or to
// the RPC's URL — verifies under the server's nonce policy and is by the registered key of a client
// bound to one (requireRegisteredKey).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import type { DpopBinding, ExchangeTokenRequest } from "../../../gen/mandate/v1/issue_pb.js";
import { ERROR_DOMAIN } from "../../shared/errors.ts";
import type { DpopProof } from "../../shared/oauth/dpop.ts";
import { rateLimited } from "../../shared/rpc/access.ts";
import type { RegisteredClient } from "../clients/metadata.ts";
import { exchangeToken } from "../mandates/exchange.ts";
import {
  type ExchangeResponse,
  exchangeRequestFromMessage,
  TOKEN_EXCHANGE_GRANT,
} from "../mandates/exchange-request.ts";
import { requireRegisteredKey, verifyTokenRequestProof } from "./authorization-server-dpop.ts";
import type { OAuthServices, TenantUrls } from "./context.ts";
import { InvalidClient, InvalidDpopProof, OAuthError, SlowDown, UnauthorizedClient } from "./errors.ts";

export async function exchangeTokenByRpc(
  services: OAuthServices,
  urls: TenantUrls,
  clientId: string,
  message: ExchangeTokenRequest,
  rpcUrl: string,
): Promise<ExchangeResponse> {
  const client = await services.clients.get(urls.tenant, clientId);
  if (!client) throw new InvalidClient("client authentication failed");
  if (!client.metadata.grant_types.includes(TOKEN_EXCHANGE_GRANT)) {
    throw new UnauthorizedClient(`the client is not registered for the ${TOKEN_EXCHANGE_GRANT} grant`);
  }
  const request = exchangeRequestFromMessage(message);
  const dpop = await bindingProof(services, urls, client, message.binding?.dpop, rpcUrl);
  return exchangeToken({ services, client, urls, dpop, now: services.clock.now() }, request);
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

/** RPC status of each OAuth error an exchange answers; ErrorInfo.reason is the OAuth code, upper-cased. */
const STATUS: Record<string, Code> = {
  invalid_request: Code.InvalidArgument,
  invalid_scope: Code.InvalidArgument,
  invalid_target: Code.InvalidArgument,
  invalid_authorization_details: Code.InvalidArgument,
  invalid_grant: Code.FailedPrecondition,
  unauthorized_client: Code.PermissionDenied,
  invalid_client: Code.Unauthenticated,
  invalid_dpop_proof: Code.Unauthenticated,
  use_dpop_nonce: Code.Unauthenticated,
  temporarily_unavailable: Code.Unavailable,
};

/**
 * An OAuth error as the RPC's status: the code above, the error_description as the message, and
 * ErrorInfo {reason: INVALID_GRANT..., domain mandate.v1, metadata: error, and dpop_nonce when the
 * server wants a nonce (RFC 9449 §8)}. slow_down is RESOURCE_EXHAUSTED with RetryInfo. Anything
 * else passes unchanged.
 */
export function exchangeRpcError(error: unknown): unknown {
  if (error instanceof SlowDown) return rateLimited(error.message, error.retryAfterSeconds);
  if (!(error instanceof OAuthError)) return error;
  const code = STATUS[error.error] ?? Code.InvalidArgument;
  const nonce = error.headers["dpop-nonce"];
  const metadata = { error: error.error, ...(nonce ? { dpop_nonce: nonce } : {}) };
  return new ConnectError(error.message, code, undefined, [
    {
      desc: ErrorInfoSchema,
      value: create(ErrorInfoSchema, { reason: error.error.toUpperCase(), domain: ERROR_DOMAIN, metadata }),
    },
  ]);
}
