// An agent's tokens under one mandate for one MCP server, with oauth4webapi (RFC-certified) doing
// the token requests and the DPoP proofs: the mandate exchanged (RFC 8693, subject_token_type
// urn:mandate:params:oauth:token-type:mandate, resource = the MCP server), DPoP-bound to the agent's
// key (RFC 9449, the server's nonce answered, §8), refreshed with the refresh token when one was
// issued, re-exchanged otherwise — before expiry, and when the MCP server refuses the token. A
// mandate Mandate will not exchange any more is MandateUnusable, never retried.

import { discoverOAuthProtectedResourceMetadata } from "@modelcontextprotocol/sdk/client/auth.js";
import { checkResourceAllowed } from "@modelcontextprotocol/sdk/shared/auth-utils.js";
import type { FetchLike } from "@modelcontextprotocol/sdk/shared/transport.js";
import * as oauth from "oauth4webapi";
import { MandateClientError, MandateUnusable, mandateCondition, TokenRequestRefused } from "./errors.ts";

export const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
export const MANDATE_TOKEN_TYPE = "urn:mandate:params:oauth:token-type:mandate";

/** How the agent authenticates at the token endpoint. */
export type ClientAuthentication =
  | { method: "client_secret_basic"; clientSecret: string }
  /** RFC 7523 §2.2: a client assertion signed by the key registered in the agent's jwks. */
  | { method: "private_key_jwt"; privateKey: CryptoKey; kid?: string };

/** The tokens of a session, as storage keeps them. */
export interface MandateTokens {
  accessToken: string;
  /** When the access token expires (epoch ms, from expires_in). */
  expiresAt: number;
  /** How long it lived when issued (ms): the renewal margin is a share of it. */
  lifetimeMs: number;
  refreshToken?: string | undefined;
  scope?: string | undefined;
  /** The MCP server (RFC 8707 resource) they are for. */
  resource: string;
  mandateId: string;
  /** RFC 7638 thumbprint of the DPoP key they are bound to. */
  jkt: string;
}

/** Where a session keeps its tokens across restarts of the agent (keep the DPoP key with them). */
export interface MandateTokenStorage {
  load(): MandateTokens | undefined | Promise<MandateTokens | undefined>;
  /** `undefined`: the tokens are dropped (refused, or the mandate is unusable). */
  save(tokens: MandateTokens | undefined): void | Promise<void>;
}

export interface MandateClientAuthOptions {
  /** The tenant's issuer, e.g. https://mandate.example.com/t/demo (RFC 8414 metadata under it). */
  issuer: string | URL;
  clientId: string;
  clientAuthentication: ClientAuthentication;
  /** The mandate the human granted this agent (mdt_…). */
  mandateId: string;
  /**
   * The agent's DPoP key pair (RFC 9449; the public key extractable). An agent registered with a
   * `dpop_jkt` must pass that key. Default: an ES256 pair generated once and kept by the session
   * (`session.dpopKeys()`; persist it with the tokens).
   */
  dpopKeys?: CryptoKeyPair;
  /**
   * The MCP server's canonical URI (RFC 8707 `resource`, the token's audience). Default: the
   * `resource` of its Protected Resource Metadata (RFC 9728), discovered from the first request.
   */
  resource?: string;
  /** Narrower scope than the mandate's (default: all of it). */
  scope?: string;
  /** Narrower RFC 9396 authorization details than the mandate's (default: all of them). */
  authorizationDetails?: ReadonlyArray<Record<string, unknown>>;
  storage?: MandateTokenStorage;
  /** The fetch the session's own requests use (default: global fetch). */
  fetch?: FetchLike;
  /** Allow http:// issuers and MCP servers (loopback development and tests only). */
  allowInsecureRequests?: boolean;
}

/** Renew this long before expiry at most (and at most a quarter of the token's life before). */
const MAX_RENEWAL_MARGIN_MS = 30_000;

export class MandateSession {
  readonly #options: MandateClientAuthOptions;
  readonly #fetch: FetchLike;
  #keys: Promise<{ keys: CryptoKeyPair; jkt: string; dpop: oauth.DPoPHandle }> | undefined;
  #as: Promise<oauth.AuthorizationServer> | undefined;
  #resource: Promise<string> | undefined;
  #tokens: MandateTokens | undefined;
  #loaded = false;
  #renewal: Promise<MandateTokens> | undefined;

  constructor(options: MandateClientAuthOptions) {
    if (!options.mandateId) throw new MandateClientError("mandateId is required");
    this.#options = options;
    this.#fetch = options.fetch ?? fetch;
    if (options.resource) this.#resource = Promise.resolve(options.resource);
  }

  get mandateId(): string {
    return this.#options.mandateId;
  }

  /** The options' flags for oauth4webapi: plain HTTP when allowed, the session's fetch. */
  get requestOptions(): {
    [oauth.allowInsecureRequests]?: boolean;
    [oauth.customFetch]: (url: string, init: object) => Promise<Response>;
  } {
    return {
      ...(this.#options.allowInsecureRequests ? { [oauth.allowInsecureRequests]: true } : {}),
      [oauth.customFetch]: (url, init) => this.#fetch(url, init as RequestInit),
    };
  }

  /** The DPoP key pair, its thumbprint and the oauth4webapi handle that remembers server nonces. */
  dpop(): Promise<{ keys: CryptoKeyPair; jkt: string; dpop: oauth.DPoPHandle }> {
    this.#keys ??= (async () => {
      const keys = this.#options.dpopKeys ?? (await oauth.generateKeyPair("ES256"));
      // One handle for all requests, so a nonce the server handed out is used next time (RFC 9449 §8).
      const dpop = oauth.DPoP({}, keys);
      return { keys, jkt: await dpop.calculateThumbprint(), dpop };
    })();
    return this.#keys;
  }

  async dpopKeys(): Promise<CryptoKeyPair> {
    return (await this.dpop()).keys;
  }

  /**
   * The MCP server's resource identifier: the configured one, or the `resource` of the Protected
   * Resource Metadata of `serverUrl` (RFC 9728 §3), which must name the server (§3.3) and trust our issuer.
   */
  resource(serverUrl?: string | URL): Promise<string> {
    if (this.#resource) return this.#resource;
    if (!serverUrl) throw new MandateClientError("the MCP server's resource is unknown until its first request");
    const discovery = this.#discoverResource(new URL(serverUrl));
    this.#resource = discovery;
    discovery.catch(() => {
      if (this.#resource === discovery) this.#resource = undefined;
    });
    return discovery;
  }

  /** The resource, if configured or discovered already. */
  async knownResource(): Promise<string | undefined> {
    return this.#resource ? await this.#resource.catch(() => undefined) : undefined;
  }

  async #discoverResource(serverUrl: URL): Promise<string> {
    const metadata = await discoverOAuthProtectedResourceMetadata(serverUrl, {}, this.#fetch);
    // RFC 9728 §3.3: metadata naming another resource is not this server's.
    if (!checkResourceAllowed({ requestedResource: serverUrl, configuredResource: metadata.resource })) {
      throw new MandateClientError(`the metadata of ${serverUrl.href} names another resource (${metadata.resource})`);
    }
    const issuer = String(this.#options.issuer);
    if (!metadata.authorization_servers?.some((server) => sameIssuer(server, issuer))) {
      throw new MandateClientError(`the MCP server ${metadata.resource} does not accept tokens of ${issuer}`);
    }
    return metadata.resource;
  }

  /** The current tokens, if any and not expired (no request made). */
  async current(): Promise<MandateTokens | undefined> {
    const tokens = await this.#stored();
    return tokens && tokens.expiresAt > Date.now() ? tokens : undefined;
  }

  /** A usable access token for the resource: the current one, or renewed when it is about to expire. */
  async accessToken(serverUrl?: string | URL): Promise<MandateTokens> {
    await this.resource(serverUrl);
    const tokens = await this.#stored();
    if (tokens && Date.now() < tokens.expiresAt - renewalMargin(tokens)) return tokens;
    return this.renew(tokens?.accessToken);
  }

  /**
   * New tokens, because `stale` is expiring or the MCP server refused it: by refresh when a refresh
   * token was issued, by a new exchange of the mandate otherwise (or when the refresh is refused).
   * Concurrent callers share one renewal; a caller whose stale token was already replaced gets the new one.
   */
  renew(stale: string | undefined): Promise<MandateTokens> {
    if (this.#renewal) return this.#renewal;
    const current = this.#tokens;
    if (current && current.accessToken !== stale && Date.now() < current.expiresAt - renewalMargin(current)) {
      return Promise.resolve(current);
    }
    const renewal = this.#renewNow(current).finally(() => {
      if (this.#renewal === renewal) this.#renewal = undefined;
    });
    this.#renewal = renewal;
    return renewal;
  }

  /** Drops the tokens (the SDK's invalidateCredentials, or a refusal): the next request exchanges again. */
  async invalidate(): Promise<void> {
    this.#tokens = undefined;
    this.#loaded = true;
    await this.#options.storage?.save(undefined);
  }

  async #stored(): Promise<MandateTokens | undefined> {
    if (!this.#loaded) {
      this.#loaded = true;
      const saved = await this.#options.storage?.load();
      const resource = await this.knownResource();
      // Tokens of another mandate, server or key are of no use to this session.
      if (
        saved &&
        saved.mandateId === this.#options.mandateId &&
        (!resource || saved.resource === resource) &&
        saved.jkt === (await this.dpop()).jkt
      ) {
        this.#tokens ??= saved;
      }
    }
    return this.#tokens;
  }

  async #renewNow(current: MandateTokens | undefined): Promise<MandateTokens> {
    try {
      let tokens: MandateTokens | undefined;
      if (current?.refreshToken) tokens = await this.#refresh(current);
      tokens ??= await this.#exchange();
      this.#tokens = tokens;
      await this.#options.storage?.save(tokens);
      return tokens;
    } catch (error) {
      if (error instanceof MandateUnusable) await this.invalidate();
      throw error;
    }
  }

  /** RFC 6749 §6 with the refresh token (bound to our key); undefined when refused, to exchange anew. */
  async #refresh(current: MandateTokens): Promise<MandateTokens | undefined> {
    try {
      return await this.#tokenRequest("refresh_token", { refresh_token: current.refreshToken as string }, current);
    } catch (error) {
      // invalid_grant (RFC 6749 §5.2): the refresh token is spent, expired, or its mandate is unusable —
      // a new exchange says which (MandateUnusable when it is the mandate).
      if (error instanceof TokenRequestRefused && error.error === "invalid_grant") return undefined;
      throw error;
    }
  }

  /** RFC 8693 §2.1: the mandate as subject_token, for the MCP server as `resource` (RFC 8707). */
  #exchange(): Promise<MandateTokens> {
    const parameters: Record<string, string> = {
      subject_token: this.#options.mandateId,
      subject_token_type: MANDATE_TOKEN_TYPE,
    };
    if (this.#options.scope) parameters.scope = this.#options.scope;
    if (this.#options.authorizationDetails) {
      parameters.authorization_details = JSON.stringify(this.#options.authorizationDetails);
    }
    return this.#tokenRequest(TOKEN_EXCHANGE, parameters, undefined);
  }

  async #tokenRequest(
    grantType: string,
    parameters: Record<string, string>,
    previous: MandateTokens | undefined,
  ): Promise<MandateTokens> {
    const [as, { dpop, jkt }, resource] = await Promise.all([this.#server(), this.dpop(), this.resource()]);
    const client = { client_id: this.#options.clientId };
    const body = new URLSearchParams({ ...parameters, resource });
    const send = async () =>
      oauth.processGenericTokenEndpointResponse(
        as,
        client,
        await oauth.genericTokenEndpointRequest(as, client, this.#clientAuth(), grantType, body, {
          ...this.requestOptions,
          DPoP: dpop,
        }),
      );
    let response: oauth.TokenEndpointResponse;
    try {
      // RFC 9449 §8: a server that wants a nonce answers use_dpop_nonce with one; retried once with it.
      response = await send().catch((error) => (oauth.isDPoPNonceError(error) ? send() : Promise.reject(error)));
    } catch (error) {
      throw this.#refusal(grantType, error);
    }
    if (response.token_type !== "dpop") {
      throw new MandateClientError(`the token endpoint issued a ${response.token_type} token, not a DPoP-bound one`);
    }
    const lifetimeMs = (response.expires_in ?? 60) * 1000;
    return {
      accessToken: response.access_token,
      expiresAt: Date.now() + lifetimeMs,
      lifetimeMs,
      // RFC 6749 §6: a refresh that issues no new refresh token leaves the old one in force.
      refreshToken: response.refresh_token ?? previous?.refreshToken,
      scope: response.scope ?? previous?.scope,
      resource,
      mandateId: this.#options.mandateId,
      jkt,
    };
  }

  #refusal(grantType: string, error: unknown): unknown {
    let status: number | undefined;
    let code: string | undefined;
    let description: string | undefined;
    if (error instanceof oauth.ResponseBodyError) {
      ({ status, error: code, error_description: description } = error);
    } else if (error instanceof oauth.WWWAuthenticateChallengeError) {
      status = error.status;
      code = error.cause[0]?.parameters.error ?? "invalid_client";
      description = error.cause[0]?.parameters.error_description;
    } else {
      return error;
    }
    const condition = mandateCondition(description);
    // RFC 8693 §2.2.2: the mandate (the subject token) refused for its state is invalid_request,
    // its error_description naming the mandate and the state.
    if (
      grantType === TOKEN_EXCHANGE &&
      code === "invalid_request" &&
      condition &&
      /\bmandate\b/.test(description ?? "")
    ) {
      return new MandateUnusable(this.#options.mandateId, condition, code, description ?? "");
    }
    return new TokenRequestRefused(status, code, description);
  }

  #clientAuth(): oauth.ClientAuth {
    const authentication = this.#options.clientAuthentication;
    return authentication.method === "client_secret_basic"
      ? oauth.ClientSecretBasic(authentication.clientSecret)
      : oauth.PrivateKeyJwt({ key: authentication.privateKey, kid: authentication.kid });
  }

  /** The issuer's metadata (RFC 8414 §3, under the tenant's issuer path), fetched once. */
  #server(): Promise<oauth.AuthorizationServer> {
    if (!this.#as) {
      const issuer = new URL(this.#options.issuer);
      const discovery = (async () =>
        oauth.processDiscoveryResponse(
          issuer,
          await oauth.discoveryRequest(issuer, { algorithm: "oauth2", ...this.requestOptions }),
        ))();
      this.#as = discovery;
      discovery.catch(() => {
        if (this.#as === discovery) this.#as = undefined;
      });
    }
    return this.#as;
  }
}

function renewalMargin(tokens: MandateTokens): number {
  return Math.min(MAX_RENEWAL_MARGIN_MS, tokens.lifetimeMs / 4);
}

/** Issuer identifiers compare as strings (RFC 8414 §3.3), a trailing slash aside. */
function sameIssuer(a: string, b: string): boolean {
  return a.replace(/\/$/, "") === b.replace(/\/$/, "");
}
