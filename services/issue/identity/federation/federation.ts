// The federation login services one OAuth server uses: the tenant's IdPs, logins in flight,
// federated sessions, the protocol of each IdP kind, and linking an upstream identity to a subject.
import type { Clock } from "../../../shared/clock.ts";
import type { Config } from "../../../shared/config.ts";
import type { Store } from "../../../shared/store/store.ts";
import type { IdentityProvider, LoginRequest } from "../provider.ts";
import { IdentityLinking } from "./linking.ts";
import { FederationLogins } from "./logins.ts";
import { OidcUpstream } from "./oidc.ts";
import { provisioningFor } from "./provisioning.ts";
import { IdentityProviders, type ProviderKind } from "./registry.ts";
import { FederatedSessions, withFederatedSessions } from "./sessions.ts";
import type { Upstream, UpstreamIdentity } from "./upstream.ts";

/** The Mandate subject an upstream identity signs in as, and the identity claims its login releases. */
export type LinkUpstreamIdentity = (
  tenant: string,
  providerId: string,
  identity: UpstreamIdentity,
) => Promise<{ subject: string; claims: Record<string, unknown> }>;

export interface Federation {
  providers: IdentityProviders;
  logins: FederationLogins;
  sessions: FederatedSessions;
  upstream(kind: ProviderKind): Upstream | undefined;
  link: LinkUpstreamIdentity;
  /**
   * The primary provider's own login (Kratos), when its users do not log in on Mandate's page: the
   * login page links on to it after offering the IdPs (set by identityWithFederation).
   */
  primaryLoginUrl?: ((request: LoginRequest) => string) | undefined;
}

/**
 * The OAuth server's identity provider: the primary one (dev users, Kratos) with federated sessions;
 * with Kratos, browsers of tenants with IdPs see Mandate's login page (IdPs, e-mail discovery) first.
 */
export function identityWithFederation(
  primary: IdentityProvider,
  federation: Federation,
  loginPageUrl: (tenant: string) => string,
): IdentityProvider {
  if (primary.passwordLogin) return withFederatedSessions(primary, federation.sessions);
  federation.primaryLoginUrl = (request) => primary.loginUrl(request);
  return withFederatedSessions(primary, federation.sessions, {
    hasProviders: async (tenant) => (await federation.providers.list(tenant)).some((p) => p.enabled),
    url: (request) => `${loginPageUrl(request.tenant)}?interaction=${encodeURIComponent(request.interaction)}`,
  });
}

export function createFederation({ config, store, clock }: { config: Config; store: Store; clock: Clock }): Federation {
  const now = () => clock.now();
  const upstreams: Partial<Record<ProviderKind, Upstream>> = {
    oidc: new OidcUpstream(config),
  };
  const providers = new IdentityProviders(store, now);
  const linking = new IdentityLinking({ store, clock, providers, provisioning: provisioningFor(config) });
  return {
    providers,
    logins: new FederationLogins({ store, now, ttlMs: config.federation.loginTtl }),
    sessions: new FederatedSessions({ store, now, ttlMs: config.oauth.sessionTtl }),
    upstream: (kind) => upstreams[kind],
    // Links the upstream identity to its Mandate subject (provisioned on its first login), audited.
    link: (tenant, providerId, identity) => linking.linkIdentity(tenant, providerId, identity),
  };
}
