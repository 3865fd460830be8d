// The SAML 2.0 protocol of the federation login framework (upstream.ts): start sends an
// AuthnRequest by the HTTP-Redirect binding with the login's handle as RelayState and keeps its ID;
// finish checks the HTTP-POST SAMLResponse that reached the ACS against that login (saml.ts).
import type { Config } from "../../../shared/config.ts";
import { issuerUrl } from "../../../shared/oauth/issuer.ts";
import type { ReplayCache } from "../../../shared/oauth/replay.ts";
import type { IdentityProviderRecord } from "./registry.ts";
import {
  authnRequestRedirect,
  parseSamlSettings,
  type SamlBuild,
  SamlRejected,
  samlServiceProvider,
  verifySamlResponse,
} from "./saml.ts";
import { FederationSecrets } from "./sealing.ts";
import {
  type CallbackRequest,
  FederationRefused,
  type PendingLogin,
  type StartRequest,
  type StartResult,
  type Upstream,
  type UpstreamIdentity,
} from "./upstream.ts";

export class SamlUpstream implements Upstream {
  readonly kind = "saml" as const;
  readonly #publicBaseUrl: string;
  readonly #replay: ReplayCache;
  readonly #secrets: FederationSecrets;
  readonly #now: () => number;

  constructor(config: Config, options: { replay: ReplayCache; secrets?: FederationSecrets; now?: () => number }) {
    this.#publicBaseUrl = config.publicBaseUrl;
    this.#replay = options.replay;
    this.#secrets = options.secrets ?? FederationSecrets.fromConfig(config);
    this.#now = options.now ?? Date.now;
  }

  /** The SP of `provider` (settings checked, sealed key opener bound to its row). */
  serviceProvider(provider: IdentityProviderRecord): SamlBuild {
    let settings: ReturnType<typeof parseSamlSettings>;
    try {
      settings = parseSamlSettings(provider.settings);
    } catch (error) {
      throw new FederationRefused(`identity provider "${provider.id}" is misconfigured`, { cause: error });
    }
    const issuer = issuerUrl(this.#publicBaseUrl, provider.tenant);
    return {
      settings,
      sp: samlServiceProvider(issuer, provider.tenant, provider.id, settings),
      openSealed: (sealed) =>
        this.#secrets.open({ tenant: provider.tenant, provider: provider.id, field: "sp_private_key" }, sealed),
    };
  }

  async start(request: StartRequest): Promise<StartResult> {
    // SAML Bindings §3.4.3: RelayState ≤ 80 bytes; the handle (43 base64url characters) fits.
    const { redirectUrl, requestId } = await authnRequestRedirect(
      this.serviceProvider(request.provider),
      request.handle,
    );
    return { redirectUrl, checks: { samlRequestId: requestId } };
  }

  async finish(
    provider: IdentityProviderRecord,
    callback: CallbackRequest,
    pending: PendingLogin,
    handle: string,
  ): Promise<UpstreamIdentity> {
    const samlResponse = callback.form?.get("SAMLResponse");
    // The framework found the login by this RelayState; an answer without it is not ours.
    if (callback.method !== "POST" || !samlResponse) throw new FederationRefused("no SAMLResponse was posted");
    if (callback.form?.get("RelayState") !== handle) throw new FederationRefused("RelayState does not match the login");
    const requestId = pending.checks.samlRequestId;
    if (!requestId) throw new FederationRefused("the login was not started as a SAML request");
    try {
      const identity = await verifySamlResponse(this.serviceProvider(provider), samlResponse, {
        requestId,
        now: this.#now(),
        replay: this.#replay,
        requestedAt: pending.createdAt,
      });
      return {
        providerId: provider.id,
        externalSubject: identity.subject,
        claims: { ...identity.attributes, name_id_format: identity.subjectFormat, saml_issuer: identity.issuer },
        acr: identity.authnContextClassRef,
        authTime: identity.authTime,
      };
    } catch (error) {
      if (error instanceof SamlRejected)
        throw new FederationRefused("the identity provider's SAML answer was refused", { cause: error });
      throw error;
    }
  }
}
