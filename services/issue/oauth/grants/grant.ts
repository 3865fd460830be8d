// What a grant handler receives and returns (RFC 6749 §5.1 successful response).
import type { DpopProof } from "../../../shared/oauth/dpop.ts";
import type { RegisteredClient } from "../../clients/metadata.ts";
import type { OAuthServices, TenantUrls } from "../context.ts";
import type { Params } from "../http.ts";

export interface GrantContext {
  services: OAuthServices;
  params: Params;
  client: RegisteredClient;
  urls: TenantUrls;
  /** A verified DPoP proof for this request, when the client sent one (RFC 9449 §5). */
  dpop: DpopProof | undefined;
  now: number;
}

export interface TokenResponse {
  access_token: string;
  token_type: "Bearer" | "DPoP";
  expires_in: number;
  scope?: string;
  refresh_token?: string;
  id_token?: string;
  /** The mandate the tokens were granted under (Mandate's extension member). */
  mandate_id?: string;
  /** RFC 9396 §7: the authorization details granted. */
  authorization_details?: unknown[];
}

export type GrantHandler = (context: GrantContext) => Promise<TokenResponse>;

export function tokenType(dpop: DpopProof | undefined): "Bearer" | "DPoP" {
  // RFC 9449 §5: token_type DPoP when the access token is bound to the proof key.
  return dpop ? "DPoP" : "Bearer";
}

/** The client's own access-token lifetime when it has one, else the deployment default (5 minutes). */
export function accessTokenTtl(context: GrantContext): number {
  const own = context.client.metadata.access_token_lifetime;
  return own !== undefined ? own * 1000 : context.services.config.oauth.accessTokenTtl;
}
