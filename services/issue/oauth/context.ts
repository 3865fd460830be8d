// What every OAuth endpoint handler receives: the tenant's issuer and endpoint URLs, and the shared
// services (store, signing, clients, replay cache, identity provider).
import type { Client } from "@connectrpc/connect";
import type { Authorize } from "../../../gen/mandate/v1/authorize_pb.js";
import type { AuditClient } from "../../audit/client.ts";
import type { Clock } from "../../shared/clock.ts";
import type { Config } from "../../shared/config.ts";
import type { Logger } from "../../shared/logger.ts";
import type { RemoteJwks } from "../../shared/net/remote-jwks.ts";
import type { TokenInspector } from "../../shared/oauth/inspector.ts";
import { issuerUrl } from "../../shared/oauth/issuer.ts";
import type { ReplayCache } from "../../shared/oauth/replay.ts";
import type { SigningClient } from "../../shared/signing.ts";
import type { Store } from "../../shared/store/store.ts";
import type { AgentCertificateVerifier } from "../../shared/x509/types.ts";
import type { ClientRegistry } from "../clients/registry.ts";
import type { Federation } from "../identity/federation/federation.ts";
import type { IdentityProvider } from "../identity/provider.ts";
import type { AbuseLimits } from "./abuse-limits.ts";
import type { TenantResources } from "./rfc8707.ts";

export interface OAuthServices {
  config: Config;
  store: Store;
  clock: Clock;
  logger: Logger;
  signing: SigningClient;
  clients: ClientRegistry;
  /** The Audit service (a mandate's consent receipt carries its grant's entry, proved). */
  audit: AuditClient;
  replay: ReplayCache;
  identity: IdentityProvider;
  /** Issue 18: the tenant's upstream IdPs, logins in flight to them and federated sessions. */
  federation: Federation;
  /** Server-provided DPoP nonces (RFC 9449 §8). */
  nonces: { current(tenant: string): string; isValid(tenant: string, nonce: string | undefined): boolean };
  /** Rate limits of the public surface and per-client quotas. */
  limits: AbuseLimits;
  /** Tenants' default_resources (RFC 8707 targets of clients that register none). */
  resources: TenantResources;
  /** Client JWK Sets from jwks_uri, fetched SSRF-safely. */
  jwks: RemoteJwks;
  /** Verifies the tenant's own access tokens (a token exchange's subject and actor tokens). */
  inspector: TokenInspector;
  /** Authorize (in this process or over gRPC): the federation gateway asks it before minting (issue 18). */
  authorize(): Client<typeof Authorize>;
  /** RFC 8705 §2.1 tls_client_auth: a presented certificate against the tenant's agent CA and deny list. */
  agentCertificates: AgentCertificateVerifier;
}

/** URLs of one tenant's authorization server; `issuer` is byte-identical wherever it appears. */
export interface TenantUrls {
  tenant: string;
  issuer: string;
  authorization: string;
  par: string;
  token: string;
  introspection: string;
  revocation: string;
  registration: string;
  userinfo: string;
  jwks: string;
  login: string;
  consent: string;
  resume: string;
}

export function tenantUrls(publicBaseUrl: string, tenant: string): TenantUrls {
  const issuer = issuerUrl(publicBaseUrl, tenant);
  return {
    tenant,
    issuer,
    authorization: `${issuer}/oauth2/authorize`,
    par: `${issuer}/oauth2/par`,
    token: `${issuer}/oauth2/token`,
    introspection: `${issuer}/oauth2/introspect`,
    revocation: `${issuer}/oauth2/revoke`,
    registration: `${issuer}/oauth2/register`,
    userinfo: `${issuer}/oauth2/userinfo`,
    jwks: `${issuer}/.well-known/jwks.json`,
    login: `${issuer}/login`,
    consent: `${issuer}/consent`,
    resume: `${issuer}/oauth2/resume`,
  };
}
