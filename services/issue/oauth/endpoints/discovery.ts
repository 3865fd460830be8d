// Authorization server metadata (RFC 8414 §2) and OpenID Provider metadata (OIDC Discovery §3),
// one document per tenant; `issuer` is exactly the tenant's issuer URL (RFC 8414 §3.3).
import type { Config } from "../../../shared/config.ts";
import { DPOP_ALGORITHMS } from "../../../shared/oauth/dpop.ts";
import { CIBA_GRANT_TYPE, TOKEN_EXCHANGE } from "../../clients/metadata.ts";
import { FEDERATION_ASSERTION_GRANTS, ID_JAG_GRANT_PROFILE } from "../../federation/gateway/source.ts";
import { CLIENT_ASSERTION_ALGORITHMS } from "../client-auth.ts";
import type { TenantUrls } from "../context.ts";
import { mtlsBaseUrl } from "../rfc8705.ts";
import { SUPPORTED_SCOPES } from "../scopes.ts";
import { backchannelOffered, backchannelUrl } from "./backchannel.ts";

export function authorizationServerMetadata(urls: TenantUrls, config: Config, signingAlg: string) {
  // RFC 8705 is offered where a client certificate can reach us: the mTLS listener, or a proxy's header.
  const mtls = certificatesReachUs(config);
  const authMethods = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    ...(mtls ? ["tls_client_auth", "self_signed_tls_client_auth"] : []),
    "none",
  ];
  const ciba = backchannelOffered(config);
  return {
    issuer: urls.issuer,
    authorization_endpoint: urls.authorization,
    token_endpoint: urls.token,
    jwks_uri: urls.jwks,
    ...(config.oauth.registration !== "off" ? { registration_endpoint: urls.registration } : {}),
    scopes_supported: [...SUPPORTED_SCOPES],
    response_types_supported: ["code"],
    response_modes_supported: ["query"],
    grant_types_supported: [
      "authorization_code",
      "refresh_token",
      "client_credentials",
      TOKEN_EXCHANGE,
      ...(ciba ? [CIBA_GRANT_TYPE] : []),
      // Issue 18: the agent federation gateway's assertion grants (RFC 7523 §2.1 and RFC 7522 §2.1).
      ...FEDERATION_ASSERTION_GRANTS,
    ],
    // draft-ietf-oauth-identity-assertion-authz-grant: ID-JAGs are accepted with the jwt-bearer grant.
    authorization_grant_profiles_supported: [ID_JAG_GRANT_PROFILE],
    token_endpoint_auth_methods_supported: authMethods,
    token_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_ALGORITHMS],
    code_challenge_methods_supported: ["S256"],
    revocation_endpoint: urls.revocation,
    revocation_endpoint_auth_methods_supported: authMethods,
    introspection_endpoint: urls.introspection,
    introspection_endpoint_auth_methods_supported: authMethods.filter((m) => m !== "none"),
    introspection_signing_alg_values_supported: [signingAlg],
    pushed_authorization_request_endpoint: urls.par,
    require_pushed_authorization_requests: false,
    authorization_response_iss_parameter_supported: true,
    dpop_signing_alg_values_supported: [...DPOP_ALGORITHMS],
    // RFC 8705 §3.3: access tokens bound to the client certificate (cnf.x5t#S256).
    tls_client_certificate_bound_access_tokens: mtls,
    ...mtlsEndpointAliases(urls, config),
    client_id_metadata_document_supported: config.oauth.clientIdMetadataDocuments,
    // OpenID Connect Discovery 1.0 §3.
    userinfo_endpoint: urls.userinfo,
    subject_types_supported: ["public"],
    id_token_signing_alg_values_supported: [signingAlg],
    claims_supported: ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "name", "email"],
    prompt_values_supported: ["none", "login", "consent"],
    request_parameter_supported: false,
    request_uri_parameter_supported: false,
    // OpenID CIBA Core §4: agents ask humans for mandates over the backchannel, poll mode only.
    ...(ciba
      ? {
          backchannel_authentication_endpoint: backchannelUrl(urls),
          backchannel_token_delivery_modes_supported: ["poll"],
          backchannel_user_code_parameter_supported: false,
        }
      : {}),
  };
}

/**
 * RFC 8705 §5: where the endpoints answer over mutual TLS, when the edge runs its mTLS listener. The
 * paths are the same; only the base (http.mtls.publicUrl, default https://{host}:{port}) differs.
 */
function mtlsEndpointAliases(urls: TenantUrls, config: Config): { mtls_endpoint_aliases?: Record<string, string> } {
  const base = mtlsBaseUrl(config);
  if (!base) return {};
  const alias = (url: string) => `${base}${url.slice(config.publicBaseUrl.length)}`;
  return {
    mtls_endpoint_aliases: {
      token_endpoint: alias(urls.token),
      introspection_endpoint: alias(urls.introspection),
      revocation_endpoint: alias(urls.revocation),
      pushed_authorization_request_endpoint: alias(urls.par),
      userinfo_endpoint: alias(urls.userinfo),
      ...(backchannelOffered(config) ? { backchannel_authentication_endpoint: alias(backchannelUrl(urls)) } : {}),
    },
  };
}

/** Whether a client certificate can reach the authorization server: its mTLS listener, or a configured proxy's header. */
function certificatesReachUs(config: Config): boolean {
  return config.http.mtls.port !== undefined || config.http.clientCertificate.header !== "none";
}
