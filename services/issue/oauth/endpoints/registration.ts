// Dynamic Client Registration (RFC 7591) and its management protocol (RFC 7592). Policy: with
// `oauth.registration: open` anyone may register, but only user-facing grants (authorization_code,
// refresh_token) — a client that could mint tokens with no user in the loop (client_credentials,
// token exchange) needs an initial access token (`token` mode) or an administrator. Registrations
// are rate-limited per IP, bounded in size, may not claim the reserved `mandate:` scopes or a
// rate_limit, and (without an initial access token) may list only resources the tenant offers.
import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { RegisteredClient } from "../../clients/metadata.ts";
import {
  type ClientMetadataInput,
  InvalidClientMetadata as MetadataViolations,
  metadataInputFrom,
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

export class RegistrationEndpoint {
  readonly #services: OAuthServices;

  constructor(services: OAuthServices) {
    this.#services = services;
  }

  /** POST /oauth2/register (RFC 7591 §3.1). */
  async register(req: IncomingMessage, res: ServerResponse, urls: TenantUrls): Promise<void> {
    const mode = this.#services.config.oauth.registration;
    if (mode === "off") throw new AccessDenied("dynamic client registration is disabled; ask an administrator");
    await this.#services.limits.registration(req);
    const trusted = mode === "token" ? this.#requireInitialAccessToken(req) : false;
    const input = metadataFrom(await readJson(req, METADATA_BODY));
    if (!trusted && (input.grant_types ?? []).some((g) => !USER_FACING_GRANTS.has(g))) {
      throw new InvalidClientMetadata(
        "open registration allows only the authorization_code and refresh_token grants; other grants need an initial access token",
      );
    }
    // RFC 8707 §2 / RFC 7591 §2: an anonymous client may only narrow the tenant's resources.
    if (!trusted) await this.#requireOfferedResources(urls.tenant, input.resources, []);
    const { client, secret, registrationToken } = await this.#services.clients
      .create(urls.tenant, input, { dynamic: true })
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

  /** RFC 7591 §3: the initial access token as a bearer token. */
  #requireInitialAccessToken(req: IncomingMessage): true {
    const presented = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "")?.[1];
    const known = this.#services.config.oauth.initialAccessTokens;
    const ok =
      presented !== undefined &&
      known.some((t) => t.length === presented.length && timingSafeEqual(Buffer.from(t), Buffer.from(presented)));
    if (!ok) throw new InvalidToken("registration requires a valid initial access token");
    return true;
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
