// RFC 6749 §6 with OAuth 2.1 §4.3.1 rotation: every use spends the token and returns a new one;
// presenting a spent token means it leaked, so the whole family is revoked (reuse detection).
// A family issued by a token exchange of a mandate (mandates/exchange.ts) lives under the mandate:
// refused (invalid_grant) once it or any mandate above it is revoked, expired or exhausted; its
// tokens keep sub, act, mandate_id, authorization_details and cnf, and count as `tokens`.
import { GrantStore } from "../../../shared/oauth/grant-store.ts";
import { handleHash } from "../../../shared/oauth/handles.ts";
import { refreshUnderMandate } from "../../mandates/exchange.ts";
import { InvalidDpopProof, InvalidGrant, InvalidScope } from "../errors.ts";
import { narrowResources, parseResources, requirePermittedResources } from "../rfc8707.ts";
import { parseScope } from "../scopes.ts";
import type { GrantContext, TokenResponse } from "./grant.ts";
import { mintGrantTokens, recordGrantTokens, revokeCompromisedGrant } from "./grant-tokens.ts";

class RefreshReused extends InvalidGrant {
  readonly grantId: string;
  constructor(grantId: string) {
    super("the refresh token was already used; its grant is revoked");
    this.grantId = grantId;
  }
}

export async function refreshTokenGrant(context: GrantContext): Promise<TokenResponse> {
  const { services, params, client, urls, dpop, now } = context;
  const presented = handleHash(params.require("refresh_token"));
  const scoped = services.store.forTenant(urls.tenant);
  try {
    // Validate and sign first (see mintGrantTokens); the transaction spends the token only if no
    // concurrent request did — the loser of a race is treated as reuse.
    const grants = scoped.use(GrantStore);
    const token = await grants.findRefreshToken(presented);
    if (!token) throw new InvalidGrant("the refresh token is invalid");
    const grant = await grants.findGrant(token.grant_id);
    if (!grant || grant.clientId !== client.clientId) throw new InvalidGrant("the refresh token is invalid");
    if (token.spent_at !== null) throw new RefreshReused(grant.id);
    if (grant.revokedAt !== null) throw new InvalidGrant("the grant was revoked");
    if (token.expires_at <= now) throw new InvalidGrant("the refresh token has expired");
    // RFC 9449 §5: a refresh token bound to a DPoP key needs a proof from that key.
    if (grant.dpopJkt && dpop?.jkt !== grant.dpopJkt) {
      throw new InvalidDpopProof("the refresh token is bound to another DPoP key");
    }
    // RFC 6749 §6: the scope may only narrow.
    const requested = parseScope(params.get("scope"));
    const outside = requested.filter((s) => !grant.scope.includes(s));
    if (outside.length > 0) throw new InvalidScope(`scope not granted: ${outside.join(" ")}`);
    const scope = requested.length ? requested : grant.scope;
    const audience = narrowResources(parseResources(params.all("resource")), grant.resources);
    // RFC 8707 §2: still a resource the client may target (an administrator may have narrowed it since).
    requirePermittedResources(audience, await services.resources.allowedFor(client));
    // A token exchange's family lives under its mandate: usable now, its tokens keep act and its bounds.
    const mandate = grant.mandateId ? await refreshUnderMandate(context, grant, grant.mandateId) : undefined;
    const minted = await mintGrantTokens(context, {
      grant,
      scope,
      audience,
      grantType: "refresh_token",
      idToken: false,
      ...(mandate ? { act: mandate.act, maxTtlMs: mandate.maxTtlMs, mandate: mandate.audit } : {}),
    });
    return await scoped.transaction(async (tx) => {
      const inTx = scoped.use(GrantStore, tx);
      if (!(await inTx.spendRefreshToken(presented, now))) throw new RefreshReused(grant.id);
      // Revoked between the read and now (e.g. reuse detected on a sibling): nothing is issued.
      const current = await inTx.findGrant(grant.id);
      if (!current || current.revokedAt !== null) throw new InvalidGrant("the grant was revoked");
      // The mandate chain locked and still active, and the token counted, in this transaction.
      await mandate?.recordWithin(tx, minted.accessJti);
      return recordGrantTokens(context, tx, minted);
    });
  } catch (error) {
    if (error instanceof RefreshReused) {
      await revokeCompromisedGrant(context, async () => error.grantId, "refresh_token_reuse");
    }
    throw error;
  }
}
