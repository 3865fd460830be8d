// Token state as introspection reports it (RFC 7662 §2.2), shared by the HTTP introspection
// endpoint and the Introspect gRPC service: access tokens are verified as JWTs and checked against
// the revocation log (their `jti`, and the mandate named by `mandate_id`: revocations.ts keeps it in
// memory), refresh tokens are looked up by hash and die with their family's mandate. Anything
// doubtful is `active: false`.
// Authorize verifies access tokens through the same checks (`checkAccessToken`), where it must also
// say why one is refused.

import { decodeJwt } from "jose";
import type { SigningClient } from "../signing.ts";
import type { Store } from "../store/store.ts";
import {
  type AccessTokenClaims,
  AccessTokenError,
  type CachedKeySet,
  TenantKeys,
  verifyAccessToken,
} from "./access-token.ts";
import { GrantStore } from "./grant-store.ts";
import { handleHash } from "./handles.ts";
import { issuerUrl } from "./issuer.ts";
import { RevocationIndex } from "./revocations.ts";

export type TokenState =
  | { active: false }
  | { active: true; kind: "access_token"; claims: AccessTokenClaims }
  | {
      active: true;
      kind: "refresh_token";
      claims: { iss: string; sub: string; client_id: string; scope: string; exp: number; iat: number; aud: string[] };
      cnfJkt: string | null;
    };

/** Why an access token is refused: for callers that must say so (Authorize's reason codes). */
export type AccessTokenProblem = "invalid" | "expired" | "revoked" | "wrong_issuer";

export type AccessTokenCheck =
  | { valid: true; claims: AccessTokenClaims }
  | { valid: false; problem: AccessTokenProblem; message: string };

export interface InspectorDeps {
  store: Store;
  keys: (tenant: string) => CachedKeySet;
  issuer: (tenant: string) => string;
  /** The process's revoked jtis and mandates (one per process, shared by its services); absent: read the store. */
  revocations?: Pick<RevocationIndex, "isRevoked" | "published"> | undefined;
  now: () => number;
}

/** Verified signatures are remembered briefly: ECDSA verification dominates an introspection's cost. */
const VERIFIED_TTL_MS = 30_000;
const VERIFIED_MAX = 20_000;

export class TokenInspector {
  readonly #deps: InspectorDeps;
  readonly #revocations: Pick<RevocationIndex, "isRevoked" | "published">;
  readonly #verified = new Map<string, { claims: AccessTokenClaims; until: number; generation: number }>();
  constructor(deps: InspectorDeps) {
    this.#deps = deps;
    this.#revocations = deps.revocations ?? RevocationIndex.readingStore(deps.store);
  }

  /** An inspector of every tenant's tokens: issuers under `publicBaseUrl`, keys from the Signer's JWKS. */
  static ofTenants(parts: {
    store: Store;
    signing: Pick<SigningClient, "jwks">;
    publicBaseUrl: string;
    revocations?: Pick<RevocationIndex, "isRevoked" | "published"> | undefined;
    now: () => number;
  }): TokenInspector {
    const keys = new TenantKeys(parts.signing);
    return new TokenInspector({
      store: parts.store,
      revocations: parts.revocations,
      keys: (tenant) => keys.for(tenant),
      issuer: (tenant) => issuerUrl(parts.publicBaseUrl, tenant),
      now: parts.now,
    });
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

  /**
   * An access token (never a refresh token) checked as introspection checks it: signature by the
   * tenant's keys, `typ`, issuer, lifetime (RFC 9068 §4), then the revocation log — the token itself
   * (RFC 7009) or the mandate it derives from, with everything below it; or why not.
   */
  async checkAccessToken(tenant: string, token: string): Promise<AccessTokenCheck> {
    const verified = await this.#verify(tenant, token);
    if (!verified.valid) return verified;
    const { jti, mandate_id: mandateId } = verified.claims;
    if (await this.#revocations.isRevoked(tenant, { jti, mandateId })) {
      const what = mandateId ? "the access token or its mandate has been revoked" : "the access token has been revoked";
      return { valid: false, problem: "revoked", message: what };
    }
    return verified;
  }

  /** After this replica committed revocations of `tenant`: its checks see them before the caller hears back. */
  published(tenant: string): Promise<void> {
    return this.#revocations.published(tenant);
  }

  async #accessToken(tenant: string, token: string): Promise<TokenState> {
    const checked = await this.checkAccessToken(tenant, token);
    return checked.valid ? { active: true, kind: "access_token", claims: checked.claims } : { active: false };
  }

  /**
   * The token's claims if its signature, typ, issuer and lifetime check out. A positive result is
   * reused until the token expires or 30 s pass, and never across a change of the tenant's keys
   * (rotation or revocation of a key). Revocation of the token is checked on every call, not cached.
   */
  async #verify(tenant: string, token: string): Promise<AccessTokenCheck> {
    const now = this.#deps.now();
    const keys = this.#deps.keys(tenant);
    const cacheKey = `${tenant}\n${token}`;
    const hit = this.#verified.get(cacheKey);
    if (hit && hit.until > now && hit.generation === keys.generation) return { valid: true, claims: hit.claims };
    const issuer = this.#deps.issuer(tenant);
    let claims: AccessTokenClaims;
    try {
      claims = await verifyAccessToken(token, { keys: keys.getKey, issuer, now });
    } catch (error) {
      if (error instanceof AccessTokenError) return refusal(token, issuer, error);
      throw error;
    }
    if (this.#verified.size >= VERIFIED_MAX) this.#verified.clear();
    const until = Math.min(claims.exp * 1000, now + VERIFIED_TTL_MS);
    this.#verified.set(cacheKey, { claims, until, generation: keys.generation });
    return { valid: true, claims };
  }

  async #refreshToken(tenant: string, token: string): Promise<TokenState> {
    const grants = this.#deps.store.forTenant(tenant).use(GrantStore);
    const row = await grants.findRefreshToken(handleHash(token));
    const now = this.#deps.now();
    if (!row || row.spent_at !== null || row.expires_at <= now) return { active: false };
    const grant = await grants.findGrant(row.grant_id);
    if (!grant || grant.revokedAt !== null) return { active: false };
    // A family under a mandate dies with it (and with any mandate above it: the cascade).
    if (grant.mandateId && (await this.#revocations.isRevoked(tenant, { mandateId: grant.mandateId }))) {
      return { active: false };
    }
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

/**
 * Why verification refused a token. A token that names another issuer is reported as such (it may
 * be genuine, of another tenant): read from the unverified claims, it only ever words a refusal.
 */
function refusal(token: string, issuer: string, error: AccessTokenError): AccessTokenCheck {
  const named = unverifiedIssuer(token);
  if (named !== undefined && named !== issuer) {
    return {
      valid: false,
      problem: "wrong_issuer",
      message: "the access token was not issued by this tenant's issuer",
    };
  }
  return { valid: false, problem: error.expired ? "expired" : "invalid", message: error.message };
}

function unverifiedIssuer(token: string): string | undefined {
  try {
    const { iss } = decodeJwt(token);
    return typeof iss === "string" ? iss : undefined;
  } catch {
    return undefined;
  }
}
