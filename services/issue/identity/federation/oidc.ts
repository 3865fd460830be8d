// OpenID Connect relying party toward a tenant's upstream IdP, with openid-client: discovery (OIDC
// Discovery §4, through the SSRF-safe fetch), authorization code + PKCE S256 (RFC 7636), `state`
// (RFC 6749 §10.12) and `nonce`, and the ID token validated by openid-client (OIDC Core §3.1.3.7:
// iss, aud, azp, exp, iat, nonce, signature with the alg this provider is configured for — never
// `none` nor an HMAC keyed by a public key). Presets for Entra ID, Okta and Google Workspace fill
// defaults and add their tenant checks; they never relax anything: the issuer is https and discovered.
import { importJWK, type JWK } from "jose";
import * as client from "openid-client";
import type { Config } from "../../../shared/config.ts";
import { ASYMMETRIC_JWS_ALGORITHMS } from "../../../shared/jws-algorithms.ts";
import { safeFetch } from "../../../shared/net/safe-fetch.ts";
import type { IdentityProviderRecord } from "./registry.ts";
import { FederationSecrets, isSealedSecret } from "./sealing.ts";
import {
  type CallbackRequest,
  FederationRefused,
  type PendingLogin,
  type StartRequest,
  type StartResult,
  type Upstream,
  type UpstreamIdentity,
} from "./upstream.ts";

/** identity_providers.settings of an OIDC provider (snake_case, as the admin API writes it). */
export interface OidcSettings {
  /** The issuer (https), discovered at {issuer}/.well-known/openid-configuration. Presets fill a default. */
  issuer?: string | undefined;
  client_id: string;
  client_auth?: "client_secret_basic" | "private_key_jwt" | undefined;
  /** Sealed at rest (sealing.ts): the client secret for client_secret_basic. */
  client_secret?: unknown;
  /** Sealed at rest: the private JWK (JSON) for private_key_jwt (RFC 7523 §2.2). */
  private_key?: unknown;
  scopes?: string[] | undefined;
  /** The one JWS alg the IdP's ID tokens must use (default RS256). */
  id_token_signed_response_alg?: string | undefined;
  preset?: "entra" | "okta" | "google" | undefined;
  /** Entra ID: the directory (tenant) id whose users may sign in; its issuer and `tid` must name it. */
  entra_tenant_id?: string | undefined;
  /** Okta: the org domain (e.g. "example.okta.com"), the issuer's default. */
  okta_domain?: string | undefined;
  /** Google Workspace: the hosted domain whose users may sign in (`hd` must equal it). */
  google_hosted_domain?: string | undefined;
}

/** Algorithms an ID token may be signed with: asymmetric only. */
const SIGNING_ALGS: ReadonlySet<string> = new Set(ASYMMETRIC_JWS_ALGORITHMS);
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Entra's multi-tenant issuers: anyone with any Microsoft account could sign in. */
const ENTRA_SHARED_TENANTS = new Set(["common", "organizations", "consumers"]);
const DISCOVERY_TTL_MS = 10 * 60_000;
const MAX_RESPONSE_BYTES = 512 * 1024;
const FETCH_TIMEOUT_MS = 10_000;

/** Why OIDC settings cannot be used, or undefined when they can (admin writes check it too). */
export function oidcSettingsProblem(settings: OidcSettings): string | undefined {
  if (typeof settings.client_id !== "string" || settings.client_id === "") return "client_id is required";
  const alg = settings.id_token_signed_response_alg ?? "RS256";
  if (!SIGNING_ALGS.has(alg)) return `id_token_signed_response_alg ${alg} is not an asymmetric signature algorithm`;
  const auth = settings.client_auth ?? "client_secret_basic";
  if (auth !== "client_secret_basic" && auth !== "private_key_jwt") return `client_auth ${auth} is not supported`;
  const presetProblem = presetSettingsProblem(settings);
  if (presetProblem) return presetProblem;
  const issuer = issuerOf(settings);
  if (!issuer) return "issuer is required";
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    return "issuer is not a URL";
  }
  if (url.protocol !== "https:") return "the issuer must be an https URL";
  if (url.search || url.hash) return "the issuer has no query or fragment (OIDC Discovery §2)";
  return undefined;
}

function presetSettingsProblem(settings: OidcSettings): string | undefined {
  switch (settings.preset) {
    case undefined:
    case "okta":
      return undefined;
    case "entra": {
      const tid = settings.entra_tenant_id ?? "";
      if (ENTRA_SHARED_TENANTS.has(tid.toLowerCase()))
        return `entra_tenant_id "${tid}" would let users of any directory sign in: name your directory's id`;
      if (!GUID.test(tid)) return "entra_tenant_id must be the directory (tenant) id, a GUID";
      return undefined;
    }
    case "google":
      return undefined;
    default:
      return `preset ${String(settings.preset)} is not known`;
  }
}

/** The configured issuer, or the preset's default. */
export function issuerOf(settings: OidcSettings): string | undefined {
  if (settings.issuer) return settings.issuer;
  switch (settings.preset) {
    case "entra":
      return settings.entra_tenant_id
        ? `https://login.microsoftonline.com/${settings.entra_tenant_id}/v2.0`
        : undefined;
    case "okta":
      return settings.okta_domain ? `https://${settings.okta_domain}` : undefined;
    case "google":
      return "https://accounts.google.com";
    default:
      return undefined;
  }
}

export class OidcUpstream implements Upstream {
  readonly kind = "oidc" as const;
  readonly #allowPrivate: boolean;
  readonly #secrets: FederationSecrets;
  readonly #configurations = new Map<string, { expiresAt: number; configuration: Promise<client.Configuration> }>();

  constructor(config: Config, secrets = FederationSecrets.fromConfig(config)) {
    this.#allowPrivate = config.oauth.allowPrivateMetadataHosts;
    this.#secrets = secrets;
  }

  async start(request: StartRequest): Promise<StartResult> {
    const settings = settingsOf(request.provider);
    const configuration = await this.#configuration(request.provider, settings);
    const codeVerifier = client.randomPKCECodeVerifier();
    const nonce = client.randomNonce();
    const parameters: Record<string, string> = {
      redirect_uri: request.callbackUrl,
      response_type: "code",
      scope: (settings.scopes ?? ["openid", "email", "profile"]).join(" "),
      state: request.handle,
      nonce,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: "S256",
    };
    if (request.loginHint) parameters.login_hint = request.loginHint;
    // OIDC Core §3.1.2.1: the client's prompt=login / max_age, passed on.
    const maxAge = request.fresh?.maxAgeSeconds;
    if (request.fresh?.promptLogin) parameters.prompt = "login";
    if (maxAge !== undefined) parameters.max_age = String(maxAge);
    // Google: preselects the Workspace domain's accounts (the hd check below is what enforces it).
    if (settings.preset === "google" && settings.google_hosted_domain) parameters.hd = settings.google_hosted_domain;
    const url = client.buildAuthorizationUrl(configuration, parameters);
    return { redirectUrl: url.toString(), checks: { nonce, codeVerifier, maxAge } };
  }

  async finish(
    provider: IdentityProviderRecord,
    callback: CallbackRequest,
    pending: PendingLogin,
    handle: string,
  ): Promise<UpstreamIdentity> {
    const settings = settingsOf(provider);
    const { nonce, codeVerifier } = pending.checks;
    if (!nonce || !codeVerifier) throw new FederationRefused("the login in flight is not an OIDC login");
    const configuration = await this.#configuration(provider, settings);
    let claims: client.IDToken;
    try {
      const tokens = await client.authorizationCodeGrant(configuration, callback.url, {
        pkceCodeVerifier: codeVerifier,
        expectedState: handle,
        expectedNonce: nonce,
        idTokenExpected: true,
        ...(pending.checks.maxAge !== undefined ? { maxAge: pending.checks.maxAge } : {}),
      });
      claims = tokens.claims() as client.IDToken;
    } catch (error) {
      throw new FederationRefused(`the identity provider's answer was refused: ${describeError(error)}`, {
        cause: error,
      });
    }
    checkPreset(settings, claims);
    return identityOf(provider.id, claims);
  }

  /** Discovered metadata, cached per provider version for a while (a settings change discovers anew). */
  #configuration(provider: IdentityProviderRecord, settings: OidcSettings): Promise<client.Configuration> {
    const key = `${provider.tenant}/${provider.id}/${provider.updatedAt}`;
    const now = Date.now();
    const cached = this.#configurations.get(key);
    if (cached && cached.expiresAt > now) return cached.configuration;
    const configuration = this.#discover(provider, settings);
    this.#configurations.set(key, { expiresAt: now + DISCOVERY_TTL_MS, configuration });
    configuration.catch(() => this.#configurations.delete(key));
    return configuration;
  }

  async #discover(provider: IdentityProviderRecord, settings: OidcSettings): Promise<client.Configuration> {
    const problem = oidcSettingsProblem(settings);
    if (problem) throw new FederationRefused(`identity provider "${provider.id}" is misconfigured: ${problem}`);
    const issuer = new URL(issuerOf(settings) as string);
    const metadata: Partial<client.ClientMetadata> = {
      id_token_signed_response_alg: settings.id_token_signed_response_alg ?? "RS256",
    };
    const fetch = this.#fetch();
    try {
      // openid-client checks that the discovered issuer is exactly the configured one (OIDC Discovery §4.3).
      const configuration = await client.discovery(
        issuer,
        settings.client_id,
        metadata,
        await this.#clientAuth(provider, settings),
        { [client.customFetch]: fetch, timeout: FETCH_TIMEOUT_MS / 1000 },
      );
      configuration[client.customFetch] = fetch;
      return configuration;
    } catch (error) {
      if (error instanceof FederationRefused) throw error;
      throw new FederationRefused(`discovery of ${issuer.href} failed: ${describeError(error)}`, { cause: error });
    }
  }

  async #clientAuth(provider: IdentityProviderRecord, settings: OidcSettings): Promise<client.ClientAuth> {
    if ((settings.client_auth ?? "client_secret_basic") === "private_key_jwt") {
      const jwk = JSON.parse(this.#secret(provider, "private_key", settings.private_key)) as JWK;
      const alg = jwk.alg ?? (jwk.kty === "EC" ? "ES256" : jwk.kty === "OKP" ? "EdDSA" : "RS256");
      const key = await importJWK(jwk, alg);
      if (key instanceof Uint8Array) throw new FederationRefused("private_key must be an asymmetric private JWK");
      return client.PrivateKeyJwt(jwk.kid ? { key, kid: jwk.kid } : key);
    }
    return client.ClientSecretBasic(this.#secret(provider, "client_secret", settings.client_secret));
  }

  /** A sealed secret of the provider's settings, opened (sealing.ts binds it to tenant, provider and field). */
  #secret(provider: IdentityProviderRecord, field: string, value: unknown): string {
    if (!isSealedSecret(value))
      throw new FederationRefused(`identity provider "${provider.id}" has no sealed ${field}`);
    return this.#secrets.open({ tenant: provider.tenant, provider: provider.id, field }, value);
  }

  /** openid-client's fetch, through the SSRF-safe fetch (public https addresses only, no redirects). */
  #fetch(): client.CustomFetch {
    return async (url, options) => {
      const post = options.method === "POST" ? { body: bodyText(options.body), headers: options.headers } : undefined;
      const response = await safeFetch(url, {
        maxBytes: MAX_RESPONSE_BYTES,
        timeoutMs: FETCH_TIMEOUT_MS,
        allowPrivate: this.#allowPrivate,
        accept: options.headers.accept ?? "application/json",
        post,
      });
      return new Response(response.status === 204 ? null : new Uint8Array(response.bytes), {
        status: response.status,
        headers: fetchHeaders(response.headers),
      });
    };
  }
}

function fetchHeaders(raw: Record<string, string | string[] | undefined>): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  return headers;
}

function bodyText(body: client.CustomFetchOptions["body"]): string {
  if (body === undefined || body === null) return "";
  if (typeof body === "string") return body;
  if (body instanceof URLSearchParams) return body.toString();
  throw new FederationRefused("unexpected request body type for the identity provider");
}

function settingsOf(provider: IdentityProviderRecord): OidcSettings {
  return provider.settings as unknown as OidcSettings;
}

/** The presets' tenant checks, on the ID token openid-client already validated. */
export function checkPreset(settings: OidcSettings, claims: Record<string, unknown>): void {
  if (settings.preset === "entra") {
    // Entra ID: the token's directory must be the configured one (a multi-tenant app would
    // otherwise admit users of any directory).
    if (claims.tid !== settings.entra_tenant_id) {
      throw new FederationRefused(
        `the ID token's tid ${JSON.stringify(claims.tid ?? null)} is not the configured directory ${settings.entra_tenant_id}`,
      );
    }
  }
  if (settings.preset === "google" && settings.google_hosted_domain) {
    // Google Workspace: only `hd` proves the account belongs to the domain (an e-mail address does not).
    if (claims.hd !== settings.google_hosted_domain) {
      throw new FederationRefused(
        claims.hd === undefined
          ? `the ID token has no hd claim: not an account of ${settings.google_hosted_domain}`
          : `the ID token's hd ${JSON.stringify(claims.hd)} is not ${settings.google_hosted_domain}`,
      );
    }
  }
}

function identityOf(providerId: string, claims: client.IDToken): UpstreamIdentity {
  const amr = Array.isArray(claims.amr) ? claims.amr.filter((v): v is string => typeof v === "string") : undefined;
  return {
    providerId,
    externalSubject: claims.sub,
    claims: { ...claims },
    acr: typeof claims.acr === "string" ? claims.acr : undefined,
    amr,
    authTime: typeof claims.auth_time === "number" ? claims.auth_time * 1000 : undefined,
  };
}

/** openid-client's reason, with oauth4webapi's precise one it wraps (which claim, which header). */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const { error: code, error_description: detail } = error as { error?: unknown; error_description?: unknown };
  if (typeof code === "string") return typeof detail === "string" ? `${code}: ${detail}` : code;
  return error.cause instanceof Error ? `${error.message}: ${error.cause.message}` : error.message;
}
