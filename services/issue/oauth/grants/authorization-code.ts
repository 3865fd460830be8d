// RFC 6749 §4.1.3 with PKCE (RFC 7636 §4.6), RFC 8707 §2.2 and DPoP code binding (RFC 9449 §10.1).
import { randomUUID } from "node:crypto";
import { type GrantRow, GrantStore } from "../../../shared/oauth/grant-store.ts";
import { handleHash } from "../../../shared/oauth/handles.ts";
import { InvalidDpopProof, InvalidGrant } from "../errors.ts";
import { verifyCodeVerifier } from "../pkce.ts";
import { narrowResources, parseResources, requirePermittedResources } from "../rfc8707.ts";
import type { GrantContext, TokenResponse } from "./grant.ts";
import { mintGrantTokens, recordGrantTokens, revokeCompromisedGrant } from "./grant-tokens.ts";
import { type MandateCodeRequest, mandateTtlBound, usableMandate } from "./mandate-grant.ts";

class CodeReplayed extends InvalidGrant {}

export async function authorizationCodeGrant(context: GrantContext): Promise<TokenResponse> {
  const { services, params, client, urls, now } = context;
  const codeHash = handleHash(params.require("code"));
  const scoped = services.store.forTenant(urls.tenant);
  try {
    // Validate and sign first (see mintGrantTokens); the transaction then consumes the code only if
    // no concurrent request did, so a code yields tokens at most once.
    const request = await redeemableCode(context, codeHash);
    const audience = narrowResources(parseResources(params.all("resource")), request.resources);
    // RFC 8707 §2: still a resource the client may target (an administrator may have narrowed it since).
    requirePermittedResources(audience, await services.resources.allowedFor(client));
    const grant = newGrant(context, request);
    const mandate = request.mandateId ? await usableMandate(context, request.mandateId) : undefined;
    const minted = await mintGrantTokens(context, {
      grant,
      scope: request.scope,
      audience,
      grantType: "authorization_code",
      nonce: request.nonce,
      idToken: true,
      ...(mandate ? { noRefreshToken: true, maxTtlMs: mandateTtlBound(mandate, now) } : {}),
    });
    return await scoped.transaction(async (tx) => {
      const grants = scoped.use(GrantStore, tx);
      if (!(await grants.consumeCode(codeHash, grant.id, now))) {
        throw new CodeReplayed("the authorization code was already used");
      }
      await grants.insertGrant(grant, now);
      return recordGrantTokens(context, tx, minted);
    });
  } catch (error) {
    if (error instanceof CodeReplayed) {
      const grantOfCode = async (grants: GrantStore) => (await grants.findCode(codeHash))?.grant_id;
      await revokeCompromisedGrant(context, grantOfCode, "authorization_code_replay");
    }
    throw error;
  }
}

/** The request the code stands for, when this client may redeem it now with these parameters. */
async function redeemableCode(context: GrantContext, codeHash: string): Promise<MandateCodeRequest> {
  const { services, params, client, urls, dpop, now } = context;
  const row = await services.store.forTenant(urls.tenant).use(GrantStore).findCode(codeHash);
  if (!row) throw new InvalidGrant("the authorization code is invalid");
  const request = row.request;
  // RFC 6749 §4.1.3 / RFC 9700 §4.5.3.1: the code must belong to the authenticated client — checked
  // before replay handling, so another client presenting a used code cannot revoke the owner's grant.
  // Same answer as an unknown code: nothing about codes of other clients is revealed.
  if (row.client_id !== client.clientId) throw new InvalidGrant("the authorization code is invalid");
  // RFC 6749 §4.1.2 / OAuth 2.1 §4.1.3: a replayed code revokes what it was redeemed for (above).
  if (row.consumed_at !== null) throw new CodeReplayed("the authorization code was already used");
  if (row.expires_at <= now) throw new InvalidGrant("the authorization code has expired");
  // RFC 6749 §4.1.3: redirect_uri must be identical to the one in the authorization request.
  if (params.get("redirect_uri") !== request.redirectUri) {
    throw new InvalidGrant("redirect_uri does not match the authorization request");
  }
  verifyCodeVerifier(params.get("code_verifier"), request.codeChallenge);
  // RFC 9449 §10.1: a code bound with dpop_jkt is redeemable only with a proof from that key.
  if (request.dpopJkt && dpop?.jkt !== request.dpopJkt) {
    throw new InvalidDpopProof("the DPoP proof key does not match the dpop_jkt of the authorization request");
  }
  return request;
}

/** What a user grant (refresh-token family) records of the human's approval. */
export type ApprovedRequest = Pick<
  MandateCodeRequest,
  "subject" | "scope" | "resources" | "authTime" | "acr" | "amr" | "claims" | "mandateId" | "authorizationDetails"
>;

/**
 * The grant (refresh-token family) a code becomes — or a backchannel request (CIBA): the user's
 * approval, for the refresh lifetime.
 */
export function newGrant({ services, client, dpop, now }: GrantContext, request: ApprovedRequest): GrantRow {
  return {
    id: randomUUID(),
    clientId: client.clientId,
    subject: request.subject,
    scope: request.scope,
    resources: request.resources,
    // RFC 9449 §5: refresh tokens of public clients are bound to the DPoP key.
    dpopJkt: dpop && client.metadata.token_endpoint_auth_method === "none" ? dpop.jkt : null,
    authTime: request.authTime,
    acr: request.acr,
    amr: request.amr,
    claims: request.claims,
    expiresAt: now + services.config.oauth.refreshTokenTtl,
    revokedAt: null,
    mandateId: request.mandateId ?? null,
    authorizationDetails: request.authorizationDetails,
  };
}
