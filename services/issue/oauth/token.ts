// The token endpoint (RFC 6749 §3.2): authenticate the client, validate DPoP, dispatch on
// grant_type to one handler per grant (grants/).
import type { IncomingMessage, ServerResponse } from "node:http";
import { DpopNonceRequired, type DpopProof, DpopProofError, verifyDpopProof } from "../../shared/oauth/dpop.ts";
import type { RegisteredClient } from "../clients/registry.ts";
import type { ClientAuthenticator } from "./client-auth.ts";
import type { OAuthServices, TenantUrls } from "./context.ts";
import { InvalidDpopProof, UnauthorizedClient, UnsupportedGrantType, UseDpopNonce } from "./errors.ts";
import { authorizationCodeGrant } from "./grants/authorization-code.ts";
import { clientCredentialsGrant } from "./grants/client-credentials.ts";
import type { GrantHandler } from "./grants/grant.ts";
import { refreshTokenGrant } from "./grants/refresh-token.ts";
import { readForm, sendJson } from "./http.ts";

const GRANTS: Record<string, GrantHandler> = {
  authorization_code: authorizationCodeGrant,
  refresh_token: refreshTokenGrant,
  client_credentials: clientCredentialsGrant,
};

export class TokenEndpoint {
  readonly #services: OAuthServices;
  readonly #auth: ClientAuthenticator;

  constructor(services: OAuthServices, auth: ClientAuthenticator) {
    this.#services = services;
    this.#auth = auth;
  }

  async handle(req: IncomingMessage, res: ServerResponse, urls: TenantUrls): Promise<void> {
    const params = await readForm(req);
    const { client } = await this.#auth.authenticate(req, params, urls, urls.token);
    const grantType = params.require("grant_type");
    const grant = GRANTS[grantType];
    if (!grant) throw new UnsupportedGrantType(`grant_type "${grantType}" is not supported`);
    if (!client.metadata.grant_types.includes(grantType)) {
      throw new UnauthorizedClient(`the client is not registered for the ${grantType} grant`);
    }
    const dpop = await this.#dpop(req, urls, client);
    const now = this.#services.clock.now();
    const body = await grant({ services: this.#services, params, client, urls, dpop, now });
    // RFC 9449 §8.2: hand out the next nonce with every response so clients roll forward.
    sendJson(res, 200, body, dpop ? { "dpop-nonce": this.#services.nonces.current(urls.tenant) } : {});
  }

  /** RFC 9449 §5: validate the proof when present; required for clients registered for DPoP-bound tokens. */
  async #dpop(req: IncomingMessage, urls: TenantUrls, client: RegisteredClient): Promise<DpopProof | undefined> {
    if (req.headers.dpop === undefined) {
      if (client.metadata.dpop_bound_access_tokens) {
        throw new InvalidDpopProof("this client must send a DPoP proof (dpop_bound_access_tokens)");
      }
      return undefined;
    }
    return verifyAuthorizationServerProof(this.#services, req, urls, urls.token);
  }
}

/** A DPoP proof at an authorization-server endpoint (token, PAR), with the server's nonce policy. */
export async function verifyAuthorizationServerProof(
  services: OAuthServices,
  req: IncomingMessage,
  urls: TenantUrls,
  endpointUrl: string,
): Promise<DpopProof> {
  const { oauth } = services.config;
  try {
    return await verifyDpopProof({
      headers: req.headersDistinct.dpop,
      method: req.method ?? "POST",
      url: endpointUrl,
      nonce: oauth.requireDpopNonce ? (nonce) => services.nonces.isValid(urls.tenant, nonce) : undefined,
      replay: services.replay,
      skewMs: oauth.clockSkew,
      now: services.clock.now(),
    });
  } catch (error) {
    if (error instanceof DpopNonceRequired) throw new UseDpopNonce(services.nonces.current(urls.tenant));
    if (error instanceof DpopProofError) throw new InvalidDpopProof(error.message);
    throw error;
  }
}
