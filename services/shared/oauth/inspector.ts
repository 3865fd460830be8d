// Token state as introspection reports it (RFC 7662 §2.2), shared by the HTTP introspection
// endpoint and the Introspect gRPC service: access tokens are verified as JWTs and checked against
// the revocation list, refresh tokens are looked up by hash. Anything doubtful is `active: false`.

import { createHash } from "node:crypto";
import type { Kysely } from "kysely";
import type { Database } from "../store/schema.ts";
import type { Store } from "../store/store.ts";
import type { CachedKeySet } from "./access-token.ts";
import { type AccessTokenClaims, AccessTokenError, verifyAccessToken } from "./access-token.ts";
import { GrantStore } from "./grant-store.ts";

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

export class TokenInspector {
  readonly #deps: InspectorDeps;
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
    let claims: AccessTokenClaims;
    try {
      claims = await verifyAccessToken(token, {
        keys: this.#deps.keys(tenant).getKey,
        issuer: this.#deps.issuer(tenant),
        now: this.#deps.now(),
      });
    } catch (error) {
      if (error instanceof AccessTokenError) return { active: false };
      throw error;
    }
    const db = this.#deps.store.forTenant(tenant).db as Kysely<Database>;
    if (await new GrantStore(tenant).isAccessTokenRevoked(db, claims.jti)) return { active: false };
    return { active: true, kind: "access_token", claims };
  }

  async #refreshToken(tenant: string, token: string): Promise<TokenState> {
    const db = this.#deps.store.forTenant(tenant).db as Kysely<Database>;
    const grants = new GrantStore(tenant);
    const row = await grants.findRefreshToken(db, createHash("sha256").update(token).digest("base64url"));
    const now = this.#deps.now();
    if (!row || row.spent_at !== null || row.expires_at <= now) return { active: false };
    const grant = await grants.findGrant(db, row.grant_id);
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
