// The resource-server half of a protected MCP server: verifies a request's access token for this
// MCP server — stage 1 of the kit (services/mcp/types.ts) — with ResourceServer
// (services/shared/oauth/resource-server.ts: the issuer's JWKS, `typ`, issuer, audience = the
// server's canonical URI (RFC 8707, MCP "Token Audience Binding and Validation"), expiry, DPoP
// RFC 9449 §7, certificate binding RFC 8705 §3), then the revocation feed and/or introspection
// (RFC 7662), then the scopes this server requires. Refusals are McpAuthError: the status and the
// WWW-Authenticate challenge (challenge.ts) to answer with, `resource_metadata` included.
//
// Two ways in:
// · `verify(req)` (what `protect()` in middleware.ts uses): the whole request is at hand — the
//   `Authorization: Bearer|DPoP` token, the DPoP proof checked against the URL the client called
//   (from the configured public URL, else the Host header and the socket; X-Forwarded-Proto/Host only
//   from configured proxies), the client certificate of the TLS socket (or a configured proxy's
//   header, services/shared/x509/presented-certificate.ts).
// · `tokenVerifier()`: the MCP SDK's OAuthTokenVerifier for its `requireBearerAuth` middleware. That
//   middleware accepts the Bearer scheme only and hands over the token string alone, so a
//   sender-constrained token cannot be checked from it. Install `withRequestContext()` before it and
//   the verifier reads the request (the TLS socket's certificate: certificate-bound tokens work);
//   without it no certificate is known. A DPoP-bound token can never be accepted there — the SDK
//   cannot receive it under the DPoP scheme — and is refused as RFC 9449 §7.2 requires (so is a
//   certificate-bound one without the request): fail closed. Use `protect()` for DPoP clients.
//   The SDK turns anything but its OAuthErrors into a 500, so the verifier throws only those
//   (503-worthy failures become its TemporarilyUnavailableError, which it answers with 400).
import { AsyncLocalStorage } from "node:async_hooks";
import type { IncomingMessage } from "node:http";
import { TLSSocket } from "node:tls";
import type { OAuthTokenVerifier } from "@modelcontextprotocol/sdk/server/auth/provider.js";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type { JWK, JWTVerifyGetKey } from "jose";
import { type AccessTokenClaims, CachedKeySet, tokenScopes } from "../../shared/oauth/access-token.ts";
import { type ReplayCache, ReplayStoreUnavailable } from "../../shared/oauth/replay.ts";
import {
  type ResourceRequest,
  ResourceServer,
  ResourceServerError,
  type VerifiedClaims,
} from "../../shared/oauth/resource-server.ts";
import { type RevocationFeed, RevocationRefusal } from "../../shared/oauth/revocation-feed.ts";
import {
  addressInRanges,
  type PresentedCertificateOptions,
  presentedCertificate,
} from "../../shared/x509/presented-certificate.ts";
import { CertificateRefused, type PresentedCertificate } from "../../shared/x509/types.ts";
import type { VerifiedCaller } from "../types.ts";
import { type ChallengeError, type ChallengeOptions, McpAuthError } from "./challenge.ts";
import { type IntrospectionOptions, introspector } from "./introspection.ts";
import {
  canonicalResource,
  type MetadataHandler,
  metadataHandler,
  metadataUrls,
  type ProtectedResourceMetadata,
  protectedResourceMetadata,
  requestPath,
} from "./metadata.ts";

export interface McpResourceServerOptions {
  /** The Mandate tenant issuer whose tokens this server accepts (`{public_base}/t/{tenant}`). */
  issuer: string;
  /** The MCP server's canonical URI: the required token audience and the metadata's `resource`. */
  resource: string;
  /** Advertised in the metadata; default: [issuer]. */
  authorizationServers?: string[] | undefined;
  scopesSupported?: readonly string[] | undefined;
  /** Scopes every request's token must hold (403 insufficient_scope otherwise); also the 401's `scope`. */
  requiredScopes?: readonly string[] | undefined;
  resourceName?: string | undefined;
  resourceDocumentation?: string | undefined;
  /** The tenant's revocation feed, `start()`ed by the caller (revocation-feed.ts). */
  revocations?: Pick<RevocationFeed, "check" | "live"> | undefined;
  /** RFC 7662 introspection with this server's client credentials: on every request, or while the feed is down. */
  introspection?: IntrospectionOptions | undefined;
  /** DPoP proof replay memory (share a Redis one across replicas). */
  replay?: ReplayCache | undefined;
  /** The origin clients call this server at (`https://mcp.example.com`): what DPoP proofs' `htu` name. */
  publicUrl?: string | undefined;
  /** Proxies (IPs / CIDR ranges) whose X-Forwarded-Proto / X-Forwarded-Host are believed. */
  trustedProxies?: readonly string[] | undefined;
  /** Where client certificates come from; default: the TLS socket only. */
  clientCertificates?: PresentedCertificateOptions | undefined;
  /** Refuse tokens that are not DPoP-bound (RFC 9449 §5.2 `dpop_bound_access_tokens_required`). */
  dpopRequired?: boolean | undefined;
  /** Advertise `tls_client_certificate_bound_access_tokens` (this server is reached over mutual TLS). */
  certificateBoundTokens?: boolean | undefined;
  /**
   * Verification keys; default: the issuer's JWKS, cached for its max-age and fetched again when a
   * token names a key it lacks (rotation). With the default, a token's verified claims are also
   * remembered (30 s at most, never across a change of the key set): a client presents the same
   * token on every call. Revocation, binding and DPoP are checked on every request regardless.
   */
  keys?: JWTVerifyGetKey | undefined;
  /** With your own `keys`: the generation of their key set, to remember verified tokens as the default does. */
  memo?: { generation: () => number } | undefined;
  clockSkewMs?: number | undefined;
  now?: (() => number) | undefined;
}

/** The request a `tokenVerifier()` call belongs to, when `withRequestContext()` runs before the SDK middleware. */
const requestContext = new AsyncLocalStorage<IncomingMessage>();

/**
 * Express-style middleware keeping the request for `tokenVerifier()` (install it before
 * `requireBearerAuth`): the verifier then knows the TLS socket's client certificate.
 */
export function withRequestContext(): (req: IncomingMessage, res: unknown, next: () => void) => void {
  return (req, _res, next) => requestContext.run(req, next);
}

/** What a request presented, however it reached the verifier. */
interface Presented {
  method: string;
  url: string;
  authorization: string;
  dpop: string | string[] | undefined;
  certificate: PresentedCertificate | undefined;
}

export class McpResourceServer {
  readonly resource: string;
  readonly metadata: ProtectedResourceMetadata;
  /** The RFC 9728 §3.1 URL of the metadata (path inserted), named in every challenge. */
  readonly resourceMetadataUrl: string;
  readonly #options: McpResourceServerOptions;
  readonly #server: ResourceServer;
  readonly #certificates: PresentedCertificateOptions;
  readonly #publicOrigin: string | undefined;

  constructor(options: McpResourceServerOptions) {
    this.#options = options;
    this.resource = canonicalResource(options.resource);
    this.metadata = protectedResourceMetadata({
      resource: this.resource,
      authorizationServers: options.authorizationServers ?? [options.issuer],
      scopesSupported: options.scopesSupported,
      resourceName: options.resourceName,
      resourceDocumentation: options.resourceDocumentation,
      dpopBoundAccessTokensRequired: options.dpopRequired,
      tlsClientCertificateBoundAccessTokens: options.certificateBoundTokens,
    });
    this.resourceMetadataUrl = metadataUrls(this.resource).pathInserted;
    this.#certificates = options.clientCertificates ?? { header: "none", proxies: [] };
    this.#publicOrigin = options.publicUrl === undefined ? undefined : new URL(options.publicUrl).origin;
    const issuerKeys = options.keys ? undefined : new CachedKeySet(() => fetchJwks(options.issuer));
    this.#server = new ResourceServer({
      issuer: options.issuer,
      audience: this.resource,
      keys: options.keys ?? (issuerKeys as CachedKeySet).getKey,
      ...(options.replay ? { replay: options.replay } : {}),
      ...(options.clockSkewMs !== undefined ? { clockSkewMs: options.clockSkewMs } : {}),
      ...(options.now ? { now: options.now } : {}),
      memo: options.memo ?? (issuerKeys ? { generation: () => issuerKeys.generation } : undefined),
      revocations: revocationCheck(options),
    });
  }

  /** The caller the request's token proves, or McpAuthError (status + WWW-Authenticate). */
  async verify(req: IncomingMessage): Promise<VerifiedCaller> {
    const authorization = singleHeader(req.headers.authorization);
    // RFC 6750 §3.1: a request without credentials gets the challenge without an error code.
    if (!authorization) throw this.refusal({ description: "an access token is required" });
    return this.#verify({
      method: req.method ?? "GET",
      url: this.requestUrl(req),
      authorization,
      dpop: req.headers.dpop,
      certificate: this.#certificate(req),
    });
  }

  /** An McpAuthError with this server's challenge: its metadata URL, scopes and schemes filled in. */
  refusal(options: ChallengeOptions & { message?: string }): McpAuthError {
    const scope = options.scope ?? (this.#options.requiredScopes?.length ? this.#options.requiredScopes : undefined);
    return new McpAuthError({
      ...options,
      scope,
      resourceMetadata: options.resourceMetadata ?? this.resourceMetadataUrl,
      bearer: options.bearer ?? !this.#options.dpopRequired,
    });
  }

  /** The metadata's handler (both well-known URLs), for plain http and Express. */
  metadataHandler(): MetadataHandler {
    return metadataHandler(this.metadata);
  }

  /** The MCP SDK's OAuthTokenVerifier for `requireBearerAuth` (see the header comment for its limits). */
  tokenVerifier(): OAuthTokenVerifier {
    return {
      verifyAccessToken: async (token: string): Promise<AuthInfo> => {
        const errors = await import("@modelcontextprotocol/sdk/server/auth/errors.js");
        try {
          return authInfo(await this.#verify(this.#asBearer(token, requestContext.getStore())), this.resource);
        } catch (error) {
          if (!(error instanceof McpAuthError)) throw new errors.InvalidTokenError("the access token does not verify");
          if (error.status === 403) throw new errors.InsufficientScopeError(error.message);
          if (error.status === 503) throw new errors.TemporarilyUnavailableError(error.message);
          throw new errors.InvalidTokenError(error.message);
        }
      },
    };
  }

  /** What the SDK middleware presents: the token under the Bearer scheme, the request if it was kept. */
  #asBearer(token: string, req: IncomingMessage | undefined): Presented {
    return {
      method: req?.method ?? "POST",
      url: req ? this.requestUrl(req) : this.resource,
      authorization: `Bearer ${token}`,
      dpop: undefined,
      certificate: req ? this.#certificate(req) : undefined,
    };
  }

  /**
   * The URL the client called (RFC 9449 §4.3 check 9: what the proof's `htu` must name): the
   * configured public origin, else the Host header on this socket's scheme — or a trusted proxy's
   * X-Forwarded-Proto / X-Forwarded-Host (the last value: the one the nearest proxy set).
   */
  requestUrl(req: IncomingMessage): string {
    const path = requestPath(req);
    if (this.#publicOrigin) return `${this.#publicOrigin}${path}`;
    const proxied =
      (this.#options.trustedProxies?.length ?? 0) > 0 &&
      addressInRanges(req.socket.remoteAddress ?? "", this.#options.trustedProxies ?? []);
    const forwardedProto = proxied ? lastValue(req.headers["x-forwarded-proto"])?.toLowerCase() : undefined;
    const proto =
      forwardedProto === "http" || forwardedProto === "https"
        ? forwardedProto
        : req.socket instanceof TLSSocket
          ? "https"
          : "http";
    const host = (proxied ? lastValue(req.headers["x-forwarded-host"]) : undefined) ?? req.headers.host;
    if (!host || !/^[A-Za-z0-9.\-[\]:]+$/.test(host)) {
      throw this.refusal({ error: "invalid_request", description: "the request has no valid Host" });
    }
    return `${proto}://${host}${path}`;
  }

  async #verify(presented: Presented): Promise<VerifiedCaller> {
    let claims: VerifiedClaims;
    const scheme = /^dpop /i.test(presented.authorization) ? "DPoP" : "Bearer";
    try {
      claims = await this.#server.verify({
        method: presented.method,
        url: presented.url,
        authorization: presented.authorization,
        dpop: presented.dpop,
        clientCertificate: presented.certificate,
      } satisfies ResourceRequest);
    } catch (error) {
      if (error instanceof ResourceServerError) {
        throw this.refusal({ error: error.error as ChallengeError, description: error.message, scheme });
      }
      if (error instanceof ReplayStoreUnavailable) {
        throw new McpAuthError({ unavailable: "the DPoP replay store is unavailable", cause: error });
      }
      // Keys that cannot be fetched, anything unforeseen: not verified, never accepted, never a 500.
      throw new McpAuthError({ unavailable: "the access token cannot be verified now", cause: error });
    }
    if (this.#options.dpopRequired && !claims.dpopJkt) {
      throw this.refusal({ error: "invalid_token", description: "this server accepts DPoP-bound access tokens only" });
    }
    const required = this.#options.requiredScopes ?? [];
    const granted = new Set(tokenScopes(claims));
    const missing = required.filter((scope) => !granted.has(scope));
    if (missing.length > 0) {
      // RFC 6750 §3.1 / MCP step-up: the scopes to ask for, those already held included.
      throw this.refusal({
        error: "insufficient_scope",
        description: `the access token lacks the scope ${missing.join(" ")}`,
        scope: [...new Set([...granted, ...required])],
      });
    }
    const token = presented.authorization.slice(presented.authorization.indexOf(" ") + 1);
    const proof = claims.dpopJkt ? singleHeader(presented.dpop) : undefined;
    return {
      token,
      claims,
      ...(proof ? { dpop: { proof, httpMethod: presented.method, httpUri: presented.url } } : {}),
      ...(presented.certificate ? { clientCertificate: presented.certificate.leaf } : {}),
    };
  }

  /** The client certificate of the request (TLS, or a configured proxy's header); a malformed header is a 400. */
  #certificate(req: IncomingMessage): PresentedCertificate | undefined {
    try {
      return presentedCertificate(req, this.#certificates);
    } catch (error) {
      if (error instanceof CertificateRefused) {
        throw this.refusal({ error: "invalid_request", description: "the client certificate header is malformed" });
      }
      throw error;
    }
  }
}

/** The SDK's AuthInfo for a verified caller; `extra.caller` is the VerifiedCaller the later stages take. */
export function authInfo(caller: VerifiedCaller, resource: string): AuthInfo {
  return {
    token: caller.token,
    clientId: caller.claims.client_id,
    scopes: tokenScopes(caller.claims),
    expiresAt: caller.claims.exp,
    resource: new URL(resource),
    extra: { claims: caller.claims, caller },
  };
}

/**
 * The revocation check ResourceServer runs after verifying a token: the feed, and introspection on
 * every request ("always") or only while the feed is silent ("fallback", the default with a feed).
 */
function revocationCheck(options: McpResourceServerOptions): Pick<RevocationFeed, "check"> | undefined {
  const feed = options.revocations;
  const introspection = options.introspection;
  if (!introspection) return feed;
  const introspect = introspector(options.issuer, introspection);
  const mode = introspection.mode ?? (feed ? "fallback" : "always");
  return {
    async check(claims: AccessTokenClaims, token: string): Promise<void> {
      const feedDown = feed !== undefined && !feed.live;
      if (mode === "always" || !feed || feedDown) {
        // RFC 7662 §2.2: an inactive token — or no answer — is refused (fail closed).
        if (!(await introspect(token, claims))) throw new RevocationRefusal("the access token is not active");
        if (!feed || feedDown) return;
      }
      await feed.check(claims, token);
    },
  };
}

function singleHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? (value.length === 1 ? value[0] : undefined) : value;
}

function lastValue(value: string | string[] | undefined): string | undefined {
  const joined = Array.isArray(value) ? value.join(",") : value;
  const last = joined?.split(",").at(-1)?.trim();
  return last || undefined;
}

/** Default max-age of a JWKS without Cache-Control (RFC 9111 leaves it to the cache). */
const JWKS_DEFAULT_MAX_AGE_SECONDS = 300;

/** The issuer's JWKS (RFC 8414 / Mandate's `/.well-known/jwks.json`) and how long it may be kept. */
async function fetchJwks(issuer: string): Promise<{ jwks: { keys: JWK[] }; maxAgeSeconds: number }> {
  const response = await fetch(`${issuer}/.well-known/jwks.json`, {
    headers: { accept: "application/json" },
    redirect: "error",
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok) throw new Error(`the issuer's JWKS answered HTTP ${response.status}`);
  const jwks = (await response.json()) as { keys?: unknown };
  if (!jwks || !Array.isArray(jwks.keys)) throw new Error("the issuer's JWKS has no keys array");
  const maxAge = /(?:^|,)\s*max-age=(\d+)/.exec(response.headers.get("cache-control") ?? "")?.[1];
  return { jwks: { keys: jwks.keys as JWK[] }, maxAgeSeconds: maxAge ? Number(maxAge) : JWKS_DEFAULT_MAX_AGE_SECONDS };
}
