// The gateway's API key source (issue 18 item 2): token exchange (RFC 8693) with a Mandate API key
// as the subject token (subject_token_type urn:mandate:params:oauth:token-type:api-key). The key maps
// to its agent; what the token may carry is bounded by the key's scopes and resources and it never
// outlives the key. `act` names the key, so the token and its audit entry say which key was used.
import type { OAuthServices } from "../../../oauth/context.ts";
import { ApiKeyRefused, ApiKeys } from "../../api-keys/api-keys.ts";
import {
  type FederatedIdentity,
  FederationRefused,
  type FederationSource,
  type FederationVerifyContext,
} from "../source.ts";

/** Mandate's own subject_token_type for its API keys (RFC 8693 §3 allows URIs of one's own). */
export const TOKEN_TYPE_API_KEY = "urn:mandate:params:oauth:token-type:api-key";

export class ApiKeySource implements FederationSource {
  readonly protocol = "api_key";
  readonly subjectTokenTypes = [TOKEN_TYPE_API_KEY] as const;
  readonly #keys: ApiKeys;

  constructor(keys: ApiKeys) {
    this.#keys = keys;
  }

  static of(services: OAuthServices): ApiKeySource {
    const { store, clock, config, clients } = services;
    return new ApiKeySource(new ApiKeys({ store, clock, config, clients }));
  }

  async verify(tenant: string, token: string, context: FederationVerifyContext): Promise<FederatedIdentity> {
    let key: Awaited<ReturnType<ApiKeys["authenticate"]>>;
    try {
      key = await this.#keys.authenticate(tenant, token);
    } catch (error) {
      // RFC 8693 §2.2.2: an unusable subject token is invalid_grant (malformed, unknown, expired, revoked).
      if (error instanceof ApiKeyRefused) throw new FederationRefused(error.message);
      throw error;
    }
    const subject = `api-key:${key.id}`;
    return {
      clientId: key.clientId,
      // RFC 8693 §4.1: the actor is the agent, acting through this key.
      act: {
        sub: key.clientId,
        iss: context.issuer,
        mandate_api_key: key.id,
        mandate_federation: { protocol: this.protocol, trust: key.id },
      },
      protocol: this.protocol,
      issuer: context.issuer,
      subject,
      trustId: key.id,
      allowedScopes: key.scopes,
      allowedResources: key.resources,
      notAfter: key.expiresAt,
    };
  }
}
