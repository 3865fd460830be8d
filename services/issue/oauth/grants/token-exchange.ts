// RFC 8693 §2.1: grant_type urn:ietf:params:oauth:grant-type:token-exchange at the token endpoint —
// a mandate, a token exchanged from one, or the human's own token, exchanged by the mandate's agent
// for a narrower token (and, with an actor_token, sub-delegated). The logic is
// mandates/exchange.ts, shared with Issue.ExchangeToken; the endpoint has already authenticated the
// client, checked it is registered for this grant and verified its DPoP proof (by its registered
// key when it has one).
import { exchangeToken } from "../../mandates/exchange.ts";
import { type ExchangeResponse, exchangeRequestFromForm } from "../../mandates/exchange-request.ts";
import type { GrantContext } from "./grant.ts";

export function tokenExchangeGrant(context: GrantContext): Promise<ExchangeResponse> {
  return exchangeToken(context, exchangeRequestFromForm(context.params));
}
