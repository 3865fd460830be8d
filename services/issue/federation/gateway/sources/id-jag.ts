// Source `id_jag`: the Identity Assertion JWT Authorization Grant
// (draft-ietf-oauth-identity-assertion-authz-grant, "Cross App Access"): an enterprise IdP, trusted
// by the tenant (trust kind "id_jag"), exchanged a user's identity for a JWT of
// typ `oauth-id-jag+jwt` naming this authorization server (`aud` = its issuer), the client that
// may use it (`client_id`) and, optionally, `resource` and `scope`; the client presents it with the
// RFC 7523 jwt-bearer grant (or as an RFC 8693 subject token of type …:token-type:id-jag).
// Mandate maps it to the agent client it names; the IdP's user is the token's `act`.
import {
  type FederatedIdentity,
  FederationRefused,
  type FederationSource,
  type FederationVerifyContext,
  JWT_BEARER_GRANT,
  TOKEN_TYPE_ID_JAG,
} from "../source.ts";
import type { FederationTrust } from "../trusts.ts";
import { type JwtAssertionVerifier, trustedIdentity } from "./jwt-assertion.ts";

/** The draft's §3 JOSE header type (compared case-insensitively, RFC 7515 §4.1.9). */
export const ID_JAG_TYP = "oauth-id-jag+jwt";

export class IdJagSource implements FederationSource {
  readonly protocol = "id_jag";
  readonly subjectTokenTypes = [TOKEN_TYPE_ID_JAG, JWT_BEARER_GRANT] as const;
  readonly #verifier: JwtAssertionVerifier;

  constructor(verifier: JwtAssertionVerifier) {
    this.#verifier = verifier;
  }

  async verify(tenant: string, token: string, context: FederationVerifyContext): Promise<FederatedIdentity> {
    // The draft: the ID-JAG's aud is the resource authorization server's issuer identifier.
    const { trust, payload } = await this.#verifier.verify(
      tenant,
      token,
      { ...context, tokenEndpoint: context.issuer },
      ["id_jag"],
      { require: ID_JAG_TYP },
    );
    if (typeof payload.iat !== "number") throw new FederationRefused("the ID-JAG has no iat");
    const clientId = idJagClient(trust, payload.client_id);
    // The draft: client_id is the client the IdP issued the grant to; it must be the requesting one.
    if (context.requestingClientId !== undefined && context.requestingClientId !== clientId) {
      throw new FederationRefused("the ID-JAG was issued to another client (client_id)");
    }
    const subject = payload.sub as string;
    return {
      ...trustedIdentity(this.protocol, trust, subject, clientId, (payload.exp as number) * 1000, payload.act),
      ...assertedBounds(payload.scope, payload.resource),
    };
  }
}

/** The ID-JAG's client_id, which must be one the trust lets the IdP name (its table or fixed client). */
function idJagClient(trust: FederationTrust, claimed: unknown): string {
  if (typeof claimed !== "string" || claimed === "") throw new FederationRefused("the ID-JAG has no client_id");
  const permitted = [
    ...Object.values(trust.mapping.clients ?? {}),
    ...(trust.mapping.client ? [trust.mapping.client] : []),
  ];
  if (permitted.length > 0 && !permitted.includes(claimed)) {
    throw new FederationRefused(`the ID-JAG's client_id ${JSON.stringify(claimed)} is not one this trust admits`);
  }
  return claimed;
}

/** The draft's optional `scope` (space-delimited) and `resource` (string or array) bound the token further. */
function assertedBounds(
  scope: unknown,
  resource: unknown,
): { assertedScopes?: string[]; assertedResources?: string[] } {
  const resources = typeof resource === "string" ? [resource] : Array.isArray(resource) ? resource : undefined;
  if (resources?.some((r) => typeof r !== "string")) throw new FederationRefused("the ID-JAG's resource is malformed");
  if (scope !== undefined && typeof scope !== "string") throw new FederationRefused("the ID-JAG's scope is malformed");
  return {
    ...(typeof scope === "string" ? { assertedScopes: scope.split(" ").filter(Boolean) } : {}),
    ...(resources ? { assertedResources: resources as string[] } : {}),
  };
}
