// Dynamic Client Registration (RFC 7591) and its management protocol (RFC 7592). Policy: with
// `oauth.registration: open` anyone may register, but only user-facing grants (authorization_code,
// refresh_token) — a client that could mint tokens with no user in the loop (client_credentials,
// token exchange) needs an initial access token (`token` mode) or an administrator. Registrations
// are rate-limited per IP, bounded in size, may not claim the reserved `mandate:` scopes or a
// rate_limit, and (without an initial access token) may list only resources the tenant offers.
//
// An initial access token (RFC 7591 §3) is one of the deployment's configured tokens, or an access
// token for Mandate's API with `mandate:tenant-admin` of this tenant (or a platform administrator's):
// an administrator vouches for the registration. Agents (issue 15) are registered only so — someone
// must vouch for the owner they name — and so is any client that names an owner.
import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Actor } from "../../../shared/audit-events.ts";
import { TenantKeys } from "../../../shared/oauth/access-token.ts";
import { GrantStore } from "../../../shared/oauth/grant-store.ts";
import { issuerUrl } from "../../../shared/oauth/issuer.ts";
import { API_SCOPES, PLATFORM_TENANT } from "../../../shared/oauth/mandate-api.ts";
import { ResourceServer, ResourceServerError } from "../../../shared/oauth/resource-server.ts";
import { tenantOfIssuer } from "../../../shared/rpc/access.ts";
import type { RegisteredClient } from "../../clients/metadata.ts";
import {
  type ClientMetadataInput,
  InvalidClientMetadata as MetadataViolations,
  metadataInputFrom,
  TLS_CLIENT_AUTH_NAMES,
} from "../../clients/metadata.ts";
import type { OAuthServices, TenantUrls } from "../context.ts";
import {
  AccessDenied,
  InvalidClientMetadata,
  InvalidRedirectUri,
  InvalidRequest,
  InvalidToken,
  type OAuthError,
} from "../errors.ts";
import { readJson, sendJson } from "../http.ts";

const USER_FACING_GRANTS = new Set(["authorization_code", "refresh_token"]);
/** RFC 7591 §3.2.2 / RFC 7592 §2.2: ill-formed text in a metadata member is invalid_client_metadata. */
const METADATA_BODY = { illFormed: (description: string) => new InvalidClientMetadata(description) };

/** Who vouches for a registration: nobody (open registration), a configured token, or an administrator. */
type Voucher = { by: "nobody" } | { by: "configured-token" } | { by: "administrator"; actor: Pick<Actor, "by"> };

export class RegistrationEndpoint {
  readonly #services: OAuthServices;
  /** Verifiers of administrators' API tokens, one per issuing tenant. */
  readonly #apiTokens = new Map<string, ResourceServer>();
  #keys: TenantKeys | undefined;

  constructor(services: OAuthServices) {
    this.#services = services;
  }

  /** POST /oauth2/register (RFC 7591 §3.1). */
  async register(req: IncomingMessage, res: ServerResponse, urls: TenantUrls): Promise<void> {
    const mode = this.#services.config.oauth.registration;
    if (mode === "off") throw new AccessDenied("dynamic client registration is disabled; ask an administrator");
    await this.#services.limits.registration(req);
    const voucher = await this.#voucher(req, urls, mode === "token");
    const input = metadataFrom(await readJson(req, METADATA_BODY));
    if (voucher.by === "nobody") await this.#requireOpenRegistrable(urls.tenant, input);
    const actor = voucher.by === "administrator" ? voucher.actor : {};
    const { client, secret, registrationToken } = await this.#services.clients
      .create(urls.tenant, input, { dynamic: true, ...actor })
      .catch(rethrowViolations);
    sendJson(res, 201, {
      ...clientInformation(client, urls),
      ...(secret ? { client_secret: secret, client_secret_expires_at: 0 } : {}),
      registration_access_token: registrationToken,
    });
  }

  /** GET/PUT/DELETE /oauth2/register/{client_id} (RFC 7592 §2). */
  async manage(req: IncomingMessage, res: ServerResponse, urls: TenantUrls, clientId: string): Promise<void> {
    const token = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/.exec(req.headers.authorization ?? "")?.[1];
    // RFC 7592 §2: an invalid token, or one for another client, is 401 — never reveal which.
    if (!token || !(await this.#services.clients.checkRegistrationToken(urls.tenant, clientId, token))) {
      throw new InvalidToken("the registration access token is not valid for this client");
    }
    if (req.method === "GET") {
      const client = (await this.#services.clients.get(urls.tenant, clientId)) as RegisteredClient;
      return sendJson(res, 200, clientInformation(client, urls));
    }
    if (req.method === "DELETE") {
      await this.#services.clients.delete(urls.tenant, clientId);
      res.writeHead(204, { "cache-control": "no-store" });
      res.end();
      return;
    }
    const body = (await readJson(req, METADATA_BODY)) as Record<string, unknown>;
    // RFC 7592 §2.2: the request carries the client_id, which must match.
    if (body?.client_id !== clientId) throw new InvalidRequest("client_id in the body must match the client");
    if ("client_secret" in body) throw new InvalidRequest("the client secret cannot be set; it is generated");
    const input = metadataFrom(body);
    const existing = await this.#services.clients.get(urls.tenant, clientId);
    await this.#requireOfferedResources(urls.tenant, input.resources, existing?.metadata.resources ?? []);
    const wasTrusted = existing?.metadata.grant_types.some((g) => !USER_FACING_GRANTS.has(g)) ?? false;
    if (!wasTrusted && (input.grant_types ?? []).some((g) => !USER_FACING_GRANTS.has(g))) {
      throw new InvalidClientMetadata(
        "a dynamically registered client cannot add grants beyond authorization_code and refresh_token",
      );
    }
    const updated = await this.#services.clients.update(urls.tenant, clientId, input).catch(rethrowViolations);
    sendJson(res, 200, clientInformation(updated as RegisteredClient, urls));
  }

  /** What a registration nobody vouches for may ask: user-facing grants, the tenant's resources, no agent, no owner. */
  async #requireOpenRegistrable(tenant: string, input: ClientMetadataInput): Promise<void> {
    if (input.kind === "agent" || input.owner !== undefined) {
      // RFC 7591 §3: the server may require an initial access token; an agent's owner must be vouched for.
      throw new InvalidToken(
        `registering ${input.kind === "agent" ? "an agent" : "a client with an owner"} needs an initial access token: ` +
          `an access token for Mandate's API with ${API_SCOPES.tenantAdmin} of this tenant (an administrator vouches for the owner)`,
      );
    }
    if ((input.grant_types ?? []).some((g) => !USER_FACING_GRANTS.has(g))) {
      throw new InvalidClientMetadata(
        "open registration allows only the authorization_code and refresh_token grants; other grants need an initial access token",
      );
    }
    // RFC 8707 §2 / RFC 7591 §2: an anonymous client may only narrow the tenant's resources.
    await this.#requireOfferedResources(tenant, input.resources, []);
  }

  /** Resources a registration lists must be the tenant's defaults (or ones the client already had). */
  async #requireOfferedResources(tenant: string, requested: string[] | undefined, had: string[]): Promise<void> {
    if (!requested?.length) return;
    const offered = new Set([...(await this.#services.resources.defaults(tenant)), ...had]);
    const refused = requested.filter((r) => !offered.has(r));
    if (refused.length > 0) {
      throw new InvalidClientMetadata(
        `resources: not offered by this tenant (an administrator registers other resources): ${refused.join(" ")}`,
      );
    }
  }

  /**
   * RFC 7591 §3: the initial access token the request presents, verified: a configured token, or an
   * administrator's API token. Presenting an invalid one is refused (RFC 6750 §3.1) even where open
   * registration would not need it; presenting none is open registration, unless `required`.
   */
  async #voucher(req: IncomingMessage, urls: TenantUrls, required: boolean): Promise<Voucher> {
    const authorization = req.headers.authorization;
    if (authorization === undefined) {
      if (required) throw new InvalidToken("registration requires a valid initial access token");
      return { by: "nobody" };
    }
    const presented = /^Bearer (\S+)$/.exec(authorization)?.[1];
    const known = this.#services.config.oauth.initialAccessTokens;
    if (
      presented !== undefined &&
      known.some((t) => t.length === presented.length && timingSafeEqual(Buffer.from(t), Buffer.from(presented)))
    ) {
      return { by: "configured-token" };
    }
    return { by: "administrator", actor: await this.#administrator(req, urls) };
  }

  /** The administrator whose API token (Bearer or DPoP-bound) the request presents, or invalid_token. */
  async #administrator(req: IncomingMessage, urls: TenantUrls): Promise<Pick<Actor, "by">> {
    const { publicBaseUrl } = this.#services.config;
    const token = /^(?:Bearer|DPoP) (\S+)$/i.exec(req.headers.authorization ?? "")?.[1] ?? "";
    const issuer = tenantOfIssuer(publicBaseUrl, token);
    // A token of this tenant's issuer, or of the platform's (its administrators administer every tenant).
    if (issuer !== urls.tenant && issuer !== PLATFORM_TENANT) {
      throw new InvalidToken("the initial access token is not valid: an access token of this tenant's issuer");
    }
    let claims: Awaited<ReturnType<ResourceServer["verify"]>>;
    try {
      claims = await this.#apiTokenVerifier(issuer).verify({
        method: req.method ?? "POST",
        url: urls.registration,
        authorization: req.headers.authorization,
        dpop: req.headersDistinct.dpop,
      });
    } catch (error) {
      if (error instanceof ResourceServerError) {
        throw new InvalidToken(`the initial access token is not valid: ${error.message}`);
      }
      throw error;
    }
    const scopes = (claims.scope ?? "").split(" ");
    const needed = issuer === PLATFORM_TENANT ? API_SCOPES.admin : API_SCOPES.tenantAdmin;
    if (!scopes.includes(needed)) {
      throw new InvalidToken(
        `the initial access token lacks the scope ${needed}: an administrator registers this client`,
      );
    }
    return { by: { tenant: issuer, client_id: claims.client_id, sub: claims.sub, jti: claims.jti } };
  }

  /** Verifies access tokens for Mandate's API issued by `tenant`, as the API itself does (revocation included). */
  #apiTokenVerifier(tenant: string): ResourceServer {
    let server = this.#apiTokens.get(tenant);
    if (!server) {
      const { config, store, replay, clock, signing } = this.#services;
      this.#keys ??= new TenantKeys(signing);
      const grants = store.forTenant(tenant).use(GrantStore);
      server = new ResourceServer({
        issuer: issuerUrl(config.publicBaseUrl, tenant),
        audience: config.api.audience,
        keys: this.#keys.for(tenant).getKey,
        replay,
        clockSkewMs: config.oauth.clockSkew,
        now: () => clock.now(),
        check: async (claims) => {
          if (await grants.isAccessTokenRevoked(claims.jti)) {
            throw new ResourceServerError("invalid_token", "the access token has been revoked");
          }
        },
      });
      this.#apiTokens.set(tenant, server);
    }
    return server;
  }
}

/** The registration's metadata members, type-checked (RFC 7591 §3.2.2 errors). */
function metadataFrom(body: unknown): ClientMetadataInput {
  try {
    return metadataInputFrom(body);
  } catch (error) {
    return rethrowViolations(error);
  }
}

/** RFC 7591 §3.2.1 client information response (plus RFC 7592 §3 management fields). */
function clientInformation(client: RegisteredClient, urls: TenantUrls): Record<string, unknown> {
  const m = client.metadata;
  return {
    client_id: client.clientId,
    client_id_issued_at: Math.floor(client.createdAt / 1000),
    registration_client_uri: `${urls.registration}/${encodeURIComponent(client.clientId)}`,
    client_name: m.client_name || undefined,
    redirect_uris: m.redirect_uris,
    token_endpoint_auth_method: m.token_endpoint_auth_method,
    grant_types: m.grant_types,
    response_types: m.response_types,
    ...(m.scope ? { scope: m.scope } : {}),
    ...(m.jwks ? { jwks: m.jwks } : {}),
    ...(m.jwks_uri ? { jwks_uri: m.jwks_uri } : {}),
    ...(m.client_uri ? { client_uri: m.client_uri } : {}),
    ...(m.resources?.length ? { resources: m.resources } : {}),
    require_pushed_authorization_requests: m.require_pushed_authorization_requests,
    dpop_bound_access_tokens: m.dpop_bound_access_tokens,
    kind: m.kind ?? "application",
    ...(m.owner ? { owner: m.owner } : {}),
    ...(m.description ? { description: m.description } : {}),
    ...(m.dpop_jkt ? { dpop_jkt: m.dpop_jkt } : {}),
    // RFC 8705 §2.1.2 / §3.4, as registered.
    ...Object.fromEntries(TLS_CLIENT_AUTH_NAMES.filter((name) => m[name]).map((name) => [name, m[name]])),
    ...(m.tls_client_certificate_bound_access_tokens ? { tls_client_certificate_bound_access_tokens: true } : {}),
  };
}

/** RFC 7591 §3.2.2: the first violation decides the error code; all are described. */
function rethrowViolations(error: unknown): never {
  if (error instanceof MetadataViolations) {
    const first = error.violations[0];
    const description = error.violations.map((v) => `${v.field}: ${v.description}`).join("; ");
    const oauthError: OAuthError =
      first?.error === "invalid_redirect_uri"
        ? new InvalidRedirectUri(description)
        : new InvalidClientMetadata(description);
    throw oauthError;
  }
  throw error;
}
