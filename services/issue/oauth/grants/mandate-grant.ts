// What the grants that hand an agent its mandate's first tokens share (the code of an interactive
// grant, the auth_req_id of an asynchronous one): the mandate must still be usable when the tokens
// are minted — revoked, expired or used up between approval and redemption is invalid_grant — and
// the tokens live no longer than the mandate and its max_token_ttl.
import { currentState, type MandateRecord, MandateStore } from "../../../shared/mandates/mandate-store.ts";
import type { CodeRequest } from "../../../shared/oauth/grant-store.ts";
import { InvalidGrant } from "../errors.ts";
import type { GrantContext } from "./grant.ts";

/** A code's request when the human granted a mandate with it (stored with the code, as JSON). */
export type MandateCodeRequest = CodeRequest & {
  mandateId?: string | undefined;
  /** RFC 9396 §7: the authorization details granted, returned in the token response. */
  authorizationDetails?: unknown[] | undefined;
};

/** OpenID CIBA Core §10.1: the grant type of the token request that polls for a backchannel request's tokens. */
export { CIBA_GRANT_TYPE } from "../../clients/metadata.ts";

/** The mandate `id`, when it is active now; invalid_grant otherwise (RFC 6749 §5.2). */
export async function usableMandate({ services, urls, now }: GrantContext, id: string): Promise<MandateRecord> {
  const mandates = services.store.forTenant(urls.tenant).use(MandateStore);
  const mandate = await mandates.find(id);
  if (!mandate) throw new InvalidGrant("the mandate of this grant does not exist");
  const state = currentState(mandate, now, (await mandates.lifetimeUsage([id])).get(id));
  if (state !== "active" || now < mandate.notBefore) {
    throw new InvalidGrant(`the mandate of this grant is ${state === "active" ? "not valid yet" : state}`);
  }
  return mandate;
}

/** The longest lifetime a token from `mandate` may have now. */
export function mandateTtlBound(mandate: MandateRecord, now: number): number {
  return Math.min(mandate.expiresAt - now, mandate.maxTokenTtlMs ?? Number.POSITIVE_INFINITY);
}
