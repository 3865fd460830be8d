// Verification of Mandate access tokens (JWT, RFC 9068), shared by introspection, userinfo and the
// resource-server library: signature by a key of the tenant's JWKS, `typ: at+jwt`, issuer, expiry,
// and (for resource servers) audience. Asymmetric algorithms only: `none` and HS* never verify.

import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from "jose";
import type { SigningClient } from "../signing.ts";

export const ACCESS_TOKEN_ALGORITHMS = ["ES256", "EdDSA", "Ed25519", "PS256"];

export interface AccessTokenClaims extends JWTPayload {
  iss: string;
  sub: string;
  exp: number;
  iat: number;
  jti: string;
  client_id: string;
  scope?: string;
  cnf?: { jkt?: string; "x5t#S256"?: string };
  auth_time?: number;
  acr?: string;
  amr?: string[];
  act?: Record<string, unknown>;
  authorization_details?: unknown[];
  mandate_id?: string;
  /** RFC 9068 §2.2.3.1: the user's roles (federated logins' mapped roles). */
  roles?: string[];
}

export class AccessTokenError extends Error {
  /** The token verified but its lifetime is over (RFC 7519 §4.1.4), as opposed to any other refusal. */
  readonly expired: boolean;
  constructor(message: string, expired = false) {
    super(message);
    this.name = "AccessTokenError";
    this.expired = expired;
  }
}

export interface VerifyAccessTokenOptions {
  keys: JWTVerifyGetKey;
  issuer: string;
  /** Resource servers pass their own identifier (RFC 9068 §4 check 3); introspection does not. */
  audience?: string | undefined;
  now: number;
  skewSeconds?: number;
}

export async function verifyAccessToken(token: string, options: VerifyAccessTokenOptions): Promise<AccessTokenClaims> {
  try {
    const { payload } = await jwtVerify(token, options.keys, {
      // RFC 9068 §4: the typ header MUST be at+jwt (application/at+jwt), or it is not an access token.
      typ: "at+jwt",
      issuer: options.issuer,
      algorithms: ACCESS_TOKEN_ALGORITHMS,
      currentDate: new Date(options.now),
      clockTolerance: options.skewSeconds ?? 5,
      requiredClaims: ["exp", "iat", "jti", "sub", "client_id"],
      ...(options.audience !== undefined ? { audience: options.audience } : {}),
    });
    return payload as AccessTokenClaims;
  } catch (error) {
    if (error instanceof errors.JOSEError)
      throw new AccessTokenError(describe(error), error instanceof errors.JWTExpired);
    throw error;
  }
}

/** The audiences a token is valid for (`aud` is a string or an array, RFC 7519 §4.1.3). */
export function tokenAudiences(claims: Pick<AccessTokenClaims, "aud">): string[] {
  return typeof claims.aud === "string" ? [claims.aud] : (claims.aud ?? []);
}

/** The granted scopes (`scope`: space-separated, RFC 9068 §2.2.3 / RFC 6749 §3.3). */
export function tokenScopes(claims: Pick<AccessTokenClaims, "scope">): string[] {
  return (claims.scope ?? "").split(" ").filter(Boolean);
}

/** One actor of a delegation chain: its `sub` and the rest of its `act` member (e.g. `iss`). */
export interface ChainActor {
  sub: string;
  claims: Record<string, unknown>;
}

/** Longest actor chain read from a token: deeper nesting is not followed. */
export const MAX_ACTOR_CHAIN = 16;

/** RFC 8693 §4.1: the newest actor is outermost; nested ones follow, newest first. */
export function actorChain(act: Record<string, unknown> | undefined): ChainActor[] {
  const actors: ChainActor[] = [];
  let current = act;
  while (current && typeof current.sub === "string" && actors.length < MAX_ACTOR_CHAIN) {
    const { sub, act: inner, ...claims } = current;
    actors.push({ sub, claims });
    current = typeof inner === "object" && inner !== null ? (inner as Record<string, unknown>) : undefined;
  }
  return actors;
}

function describe(error: errors.JOSEError): string {
  if (error instanceof errors.JWTExpired) return "the access token has expired";
  if (error instanceof errors.JWTClaimValidationFailed)
    return `the access token's ${error.claim} claim is not acceptable`;
  if (error instanceof errors.JWSSignatureVerificationFailed) return "the access token signature does not verify";
  if (error instanceof errors.JWKSNoMatchingKey) return "the access token was not signed by a key of this issuer";
  return `the access token is not valid (${error.code})`;
}

/**
 * A key resolver over a JWKS obtained from `fetch` (the Signer in-process, or HTTP), cached for the
 * JWKS's max-age and refreshed early when a token names a kid the cached set lacks (rotation), at
 * most once per `cooldownMs` so unknown kids cannot turn into a fetch storm.
 */
export class CachedKeySet {
  readonly #fetch: () => Promise<{ jwks: JSONWebKeySet; maxAgeSeconds: number }>;
  readonly #cooldownMs: number;
  #resolver: JWTVerifyGetKey | undefined;
  #kids = new Set<string>();
  /** Changes whenever the set of keys changes, so results verified against an older set can be dropped. */
  generation = 0;
  #expiresAt = 0;
  #fetchedAt = 0;
  #pending: Promise<void> | undefined;

  constructor(fetch: () => Promise<{ jwks: JSONWebKeySet; maxAgeSeconds: number }>, cooldownMs = 10_000) {
    this.#fetch = fetch;
    this.#cooldownMs = cooldownMs;
  }

  readonly getKey: JWTVerifyGetKey = async (header, token) => {
    const now = Date.now();
    const stale = now >= this.#expiresAt;
    const unknownKid =
      header.kid !== undefined && !this.#kids.has(header.kid) && now - this.#fetchedAt >= this.#cooldownMs;
    if (!this.#resolver || stale || unknownKid) await this.#refresh();
    return (this.#resolver as JWTVerifyGetKey)(header, token);
  };

  #refresh(): Promise<void> {
    this.#pending ??= (async () => {
      try {
        const { jwks, maxAgeSeconds } = await this.#fetch();
        this.#resolver = createLocalJWKSet(jwks);
        const kids = new Set(jwks.keys.map((k) => k.kid).filter((kid): kid is string => typeof kid === "string"));
        if (kids.size !== this.#kids.size || [...kids].some((kid) => !this.#kids.has(kid))) this.generation++;
        this.#kids = kids;
        this.#fetchedAt = Date.now();
        this.#expiresAt = this.#fetchedAt + Math.max(1, maxAgeSeconds) * 1000;
      } finally {
        this.#pending = undefined;
      }
    })();
    return this.#pending;
  }
}

/** Per-tenant verification keys for Mandate's own access tokens, cached around the Signer's JWKS. */
export class TenantKeys {
  readonly #signing: Pick<SigningClient, "jwks">;
  readonly #sets = new Map<string, CachedKeySet>();
  /** The token-signing JWKS of each tenant, as the Signer publishes it. */
  constructor(signing: Pick<SigningClient, "jwks">) {
    this.#signing = signing;
  }
  for(tenant: string): CachedKeySet {
    let set = this.#sets.get(tenant);
    if (!set) {
      set = new CachedKeySet(() => this.#signing.jwks(tenant, "token_signing"));
      this.#sets.set(tenant, set);
    }
    return set;
  }
}
