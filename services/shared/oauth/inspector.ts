// Token state as introspection reports it (RFC 7662 §2.2), shared by the HTTP introspection
// endpoint and the Introspect gRPC service: access tokens are verified as JWTs and checked against
// the revocation list, refresh tokens are looked up by hash. Anything doubtful is `active: false`.

import type { Store } from "../store/store.ts";
import type { CachedKeySet } from "./access-token.ts";
import { type AccessTokenClaims, AccessTokenError, verifyAccessToken } from "./access-token.ts";
import { GrantStore } from "./grant-store.ts";
import { handleHash } from "./handles.ts";

export type TokenState =
  | { active: false }
  | { active: true; kind: "access_token"; claims: AccessTokenClaims }
  | {
      active: true;
      kind: "refresh_token";
      claims: { iss: string; sub: string; client_id: string; scope: string; exp: number; iat: number; aud: string[] };
      cnfJkt: string | null;
    };

export interface InspectorDeps {
  store: Store;
  keys: (tenant: string) => CachedKeySet;
  issuer: (tenant: string) => string;
  now: () => number;
}

/** Verified signatures are remembered briefly: ECDSA verification dominates an introspection's cost. */
const VERIFIED_TTL_MS = 30_000;
const VERIFIED_MAX = 20_000;

export class TokenInspector {
  readonly #deps: InspectorDeps;
  readonly #verified = new Map<string, { claims: AccessTokenClaims; until: number; generation: number }>();
  constructor(deps: InspectorDeps) {
    this.#deps = deps;
  }

  async inspect(tenant: string, token: string, hint?: string): Promise<TokenState> {
    // RFC 7662 §2.1: the hint is only a hint; search both kinds.
    const looksOpaque = token.startsWith("mrt_");
    if (hint === "refresh_token" || looksOpaque) {
      const state = await this.#refreshToken(tenant, token);
      if (state.active || looksOpaque) return state;
    }
    return this.#accessToken(tenant, token);
  }

  async #accessToken(tenant: string, token: string): Promise<TokenState> {
    const claims = await this.#verify(tenant, token);
    if (!claims) return { active: false };
    if (await this.#deps.store.forTenant(tenant).use(GrantStore).isAccessTokenRevoked(claims.jti)) {
      return { active: false };
    }
    return { active: true, kind: "access_token", claims };
  }

  /**
   * The token's claims if its signature, typ, issuer and lifetime check out. A positive result is
   * reused until the token expires or 30 s pass, and never across a change of the tenant's keys
   * (rotation or revocation of a key). Revocation of the token is checked on every call, not cached.
   */
  async #verify(tenant: string, token: string): Promise<AccessTokenClaims | undefined> {
    const now = this.#deps.now();
    const keys = this.#deps.keys(tenant);
    const cacheKey = `${tenant}\n${token}`;
    const hit = this.#verified.get(cacheKey);
    if (hit && hit.until > now && hit.generation === keys.generation) return hit.claims;
    let claims: AccessTokenClaims;
    try {
      claims = await verifyAccessToken(token, { keys: keys.getKey, issuer: this.#deps.issuer(tenant), now });
    } catch (error) {
      if (error instanceof AccessTokenError) return undefined;
      throw error;
    }
    if (this.#verified.size >= VERIFIED_MAX) this.#verified.clear();
    const until = Math.min(claims.exp * 1000, now + VERIFIED_TTL_MS);
    this.#verified.set(cacheKey, { claims, until, generation: keys.generation });
    return claims;
  }

  async #refreshToken(tenant: string, token: string): Promise<TokenState> {
    const grants = this.#deps.store.forTenant(tenant).use(GrantStore);
    const row = await grants.findRefreshToken(handleHash(token));
    const now = this.#deps.now();
    if (!row || row.spent_at !== null || row.expires_at <= now) return { active: false };
    const grant = await grants.findGrant(row.grant_id);
    if (!grant || grant.revokedAt !== null) return { active: false };
    return {
      active: true,
      kind: "refresh_token",
      claims: {
        iss: this.#deps.issuer(tenant),
        sub: grant.subject,
        client_id: grant.clientId,
        scope: grant.scope.join(" "),
        exp: Math.floor(row.expires_at / 1000),
        iat: Math.floor(row.created_at / 1000),
        aud: grant.resources,
      },
      cnfJkt: grant.dpopJkt,
    };
  }
}
