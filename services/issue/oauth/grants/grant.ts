// What a grant handler receives and returns (RFC 6749 §5.1 successful response).

import type { IdentityProof } from "../../../shared/audit-events.ts";
import type { DpopProof } from "../../../shared/oauth/dpop.ts";
import type { AuthMethod, RegisteredClient } from "../../clients/metadata.ts";
import type { OAuthServices, TenantUrls } from "../context.ts";
import type { Params } from "../http.ts";
import type { CertificateBinding } from "../rfc8705.ts";

export interface GrantContext {
  services: OAuthServices;
  params: Params;
  client: RegisteredClient;
  urls: TenantUrls;
  /** A verified DPoP proof for this request, when the client sent one (RFC 9449 §5). */
  dpop: DpopProof | undefined;
  /**
   * RFC 8705: the certificate the client authenticated with, or presented when registered for
   * certificate-bound tokens; its tokens are bound to it unless a DPoP proof binds them (boundCertificate).
   */
  certificate?: CertificateBinding | undefined;
  /** How the client authenticated (for the audit of issuance); absent: not recorded. */
  authMethod?: AuthMethod | undefined;
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
  // RFC 9449 §5: token_type DPoP when the access token is bound to the proof key; RFC 8705 §3: a
  // certificate-bound token stays Bearer.
  return dpop ? "DPoP" : "Bearer";
}

/**
 * The `cnf.x5t#S256` of the request's tokens (RFC 8705 §3.1). One binding per token: a DPoP proof
 * sent with the request binds them to its key instead (the client chose the key it proves per request).
 */
export function boundCertificate(context: Pick<GrantContext, "dpop" | "certificate">): string | undefined {
  return context.dpop ? undefined : context.certificate?.x5tS256;
}

/** The audit's record of how the client proved itself (method, certificate) for a token it was issued. */
export function identityProof(context: Pick<GrantContext, "authMethod" | "certificate">): IdentityProof | undefined {
  if (!context.authMethod) return undefined;
  const certificate = context.certificate;
  return {
    method: context.authMethod,
    ...(certificate
      ? { certificate: { serial: certificate.serial, spiffeId: certificate.spiffeId, x5tS256: certificate.x5tS256 } }
      : {}),
  };
}

/** The client's own access-token lifetime when it has one, else the deployment default (5 minutes). */
export function accessTokenTtl(context: GrantContext): number {
  const own = context.client.metadata.access_token_lifetime;
  return own !== undefined ? own * 1000 : context.services.config.oauth.accessTokenTtl;
}
