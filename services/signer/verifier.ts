// Verification stays local: a service verifies tokens against the tenant's JWKS, cached for the
// max-age the Signer gives and refetched when a token names a kid the cache does not hold (a key
// rotated in since), at most once a second per tenant so a flood of bad kids cannot hammer it.
import { createLocalJWKSet, decodeProtectedHeader, type JWTPayload, type JWTVerifyOptions, jwtVerify } from "jose";
import type { Clock } from "../shared/clock.ts";
import type { SigningClient } from "../shared/signing.ts";

interface Cached {
  keySet: ReturnType<typeof createLocalJWKSet>;
  kids: Set<string>;
  fetchedAt: number;
  expiresAt: number;
}

const MIN_REFETCH_MS = 1_000;

export class JwksVerifier {
  readonly #signing: SigningClient;
  readonly #clock: Clock;
  readonly #cache = new Map<string, Cached>();

  constructor(signing: SigningClient, clock: Clock) {
    this.#signing = signing;
    this.#clock = clock;
  }

  /** Verifies a token signed with the tenant's token key; `options` carries issuer, audience, typ... */
  async verify(tenant: string, jwt: string, options: JWTVerifyOptions = {}): Promise<JWTPayload> {
    const kid = headerKid(jwt);
    let cached = await this.#keys(tenant, false);
    if (kid !== undefined && !cached.kids.has(kid) && this.#clock.now() - cached.fetchedAt >= MIN_REFETCH_MS) {
      cached = await this.#keys(tenant, true);
    }
    const { payload } = await jwtVerify(jwt, cached.keySet, {
      algorithms: ["ES256", "EdDSA", "PS256"],
      currentDate: new Date(this.#clock.now()),
      ...options,
    });
    return payload;
  }

  async #keys(tenant: string, refresh: boolean): Promise<Cached> {
    const now = this.#clock.now();
    const cached = this.#cache.get(tenant);
    if (cached && !refresh && now < cached.expiresAt) return cached;
    const { jwks, maxAgeSeconds } = await this.#signing.jwks(tenant, "token_signing");
    const fresh: Cached = {
      keySet: createLocalJWKSet(jwks),
      kids: new Set(jwks.keys.map((key) => key.kid).filter((kid): kid is string => typeof kid === "string")),
      fetchedAt: now,
      expiresAt: now + maxAgeSeconds * 1000,
    };
    this.#cache.set(tenant, fresh);
    return fresh;
  }
}

function headerKid(jwt: string): string | undefined {
  try {
    return decodeProtectedHeader(jwt).kid;
  } catch {
    return undefined; // jwtVerify reports the malformed token
  }
}
