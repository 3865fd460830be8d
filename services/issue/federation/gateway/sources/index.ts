// The gateway's sources, built once per server from its services. F5 (api-key.ts) and F6 (tenant.ts)
// add theirs here, one line each.
import type { OAuthServices } from "../../../oauth/context.ts";
import type { FederationSource } from "../source.ts";
import { ApiKeySource } from "./api-key.ts";
import { IdJagSource } from "./id-jag.ts";
import { JwtSource } from "./jwt.ts";
import { JwtAssertionVerifier } from "./jwt-assertion.ts";
import { SamlSource } from "./saml.ts";
import { TenantTrustSource } from "./tenant.ts";
import { X509CaSource } from "./x509-ca.ts";

export function federationSources(services: OAuthServices): FederationSource[] {
  const jwt = new JwtAssertionVerifier({
    store: services.store,
    jwks: services.jwks,
    allowPrivate: services.config.oauth.allowPrivateMetadataHosts,
  });
  return [
    new IdJagSource(jwt),
    new JwtSource(jwt),
    new SamlSource(services.store),
    new X509CaSource(services.store),
    ApiKeySource.of(services),
    TenantTrustSource.of(services),
  ];
}
