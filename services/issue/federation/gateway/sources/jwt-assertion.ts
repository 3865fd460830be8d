// Verification shared by the JWT sources (a JWT from a trusted issuer, and the ID-JAG): the trust
// is found by the unverified `iss`, then the signature is checked with that trust's keys only —
// configured inline, at its jwks_uri, or at the jwks_uri its OIDC Discovery / RFC 8414 metadata names,
// fetched only through the SSRF-safe fetcher — followed by the RFC 7523 §3 claim checks and the
// single use of `jti` (RFC 7523 §3 item 7).
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from "jose";
import { JwksUnavailable, type RemoteJwks } from "../../../../shared/net/remote-jwks.ts";
import { safeFetch } from "../../../../shared/net/safe-fetch.ts";
import type { Store } from "../../../../shared/store/store.ts";
import {
  type FederatedIdentity,
  FederationNotMine,
  FederationRefused,
  type FederationVerifyContext,
} from "../source.ts";
import { activeTrusts, type FederationTrust, type TrustKind } from "../trusts.ts";

/** Asymmetric algorithms only: never `none`, never HS* (a public key used as an HMAC secret). */
export const FEDERATION_JWT_ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"] as const;
/** Clock skew tolerated on exp / nbf / iat. */
const SKEW_SECONDS = 60;
const DEFAULT_MAX_LIFETIME_SECONDS = 3600;
const DISCOVERY_TTL_MS = 5 * 60_000;
const DISCOVERY_COOLDOWN_MS = 30_000;

export interface JwtAssertionServices {
  store: Store;
  jwks: RemoteJwks;
  /** Tests only: discovery documents on loopback addresses. */
  allowPrivate: boolean;
}

export interface VerifiedAssertion {
  trust: FederationTrust;
  payload: JWTPayload;
  header: { typ?: string | undefined; alg: string };
}

export class JwtAssertionVerifier {
  readonly #services: JwtAssertionServices;
  readonly #discovered = new Map<string, { jwksUri: string | undefined; at: number }>();

  constructor(services: JwtAssertionServices) {
    this.#services = services;
  }

  /**
   * The assertion verified under one of the tenant's active trusts of `kinds` for its `iss`.
   * `typ` restricts the JOSE header type (the ID-JAG's `oauth-id-jag+jwt`), or excludes it.
   */
  async verify(
    tenant: string,
    token: string,
    context: FederationVerifyContext,
    kinds: readonly TrustKind[],
    typ: { require?: string; exclude?: string },
  ): Promise<VerifiedAssertion> {
    const { header, issuer } = unverifiedParts(token);
    if (typ.require !== undefined && header.typ?.toLowerCase() !== typ.require) throw new FederationNotMine();
    if (typ.exclude !== undefined && header.typ?.toLowerCase() === typ.exclude) throw new FederationNotMine();
    if (!(FEDERATION_JWT_ALGORITHMS as readonly string[]).includes(header.alg)) {
      throw new FederationRefused(`the assertion's alg "${header.alg}" is not accepted (asymmetric only)`);
    }
    const trusts = await activeTrusts(this.#services.store, tenant, kinds, issuer, context.now);
    const trust = trusts[0];
    if (!trust) throw new FederationNotMine(`no active trust for the issuer ${JSON.stringify(issuer)}`);
    const payload = await this.#verifySignature(token, trust, context);
    checkTimes(payload, trust, context.now);
    await requireSingleUse(payload, trust, context);
    return { trust, payload, header };
  }

  async #verifySignature(token: string, trust: FederationTrust, context: FederationVerifyContext): Promise<JWTPayload> {
    const keys = await this.#keys(trust);
    // RFC 7523 §3 item 3: the audience is this authorization server (its issuer or token endpoint),
    // or the audience configured on the trust.
    const audience = trust.verification.audience ?? [context.issuer, context.tokenEndpoint];
    try {
      const { payload } = await jwtVerify(token, keys, {
        issuer: trust.issuer,
        audience,
        algorithms: [...FEDERATION_JWT_ALGORITHMS],
        requiredClaims: ["exp", "sub", "jti"],
        clockTolerance: SKEW_SECONDS,
        currentDate: new Date(context.now),
      });
      return payload;
    } catch (error) {
      throw refusal(error);
    }
  }

  async #keys(trust: FederationTrust): Promise<JWTVerifyGetKey> {
    const { verification } = trust;
    if (verification.jwks) return createLocalJWKSet(verification.jwks as JSONWebKeySet);
    const uri = verification.jwks_uri ?? (verification.discovery ? await this.#discover(trust.issuer) : undefined);
    if (!uri) throw new FederationRefused(`the trust ${trust.id} names no keys`, "temporarily_unavailable");
    return this.#services.jwks.getKey(uri);
  }

  /** OIDC Discovery 1.0 §4, then RFC 8414 §3: the issuer's metadata, whose `issuer` must be the trust's. */
  async #discover(issuer: string): Promise<string> {
    const now = Date.now();
    const cached = this.#discovered.get(issuer);
    if (cached?.jwksUri && now - cached.at < DISCOVERY_TTL_MS) return cached.jwksUri;
    // A failed discovery is not retried before the cooldown: credentials cannot make us hammer the issuer.
    if (cached && !cached.jwksUri && now - cached.at < DISCOVERY_COOLDOWN_MS) throw unavailable(issuer);
    const base = issuer.replace(/\/$/, "");
    for (const url of [`${base}/.well-known/openid-configuration`, wellKnownRfc8414(issuer)]) {
      const jwksUri = await this.#fetchMetadata(url, issuer);
      if (jwksUri) {
        this.#discovered.set(issuer, { jwksUri, at: now });
        return jwksUri;
      }
    }
    this.#discovered.set(issuer, { jwksUri: undefined, at: now });
    throw unavailable(issuer);
  }

  async #fetchMetadata(url: string, issuer: string): Promise<string | undefined> {
    try {
      const response = await safeFetch(url, {
        maxBytes: 64 * 1024,
        timeoutMs: 3000,
        allowPrivate: this.#services.allowPrivate,
        accept: "application/json",
      });
      if (response.status !== 200) return undefined;
      const metadata = JSON.parse(response.body) as { issuer?: unknown; jwks_uri?: unknown };
      // OIDC Discovery §4.3 / RFC 8414 §3.3: the document's issuer is exactly the one asked for.
      if (metadata.issuer !== issuer || typeof metadata.jwks_uri !== "string") return undefined;
      return metadata.jwks_uri;
    } catch {
      return undefined;
    }
  }
}

function unavailable(issuer: string): FederationRefused {
  return new FederationRefused(`the metadata of ${issuer} could not be retrieved`, "temporarily_unavailable");
}

/** RFC 8414 §3.1: the well-known suffix goes between the host and the issuer's path. */
function wellKnownRfc8414(issuer: string): string {
  const url = new URL(issuer);
  const path = url.pathname === "/" ? "" : url.pathname.replace(/\/$/, "");
  return `${url.origin}/.well-known/oauth-authorization-server${path}`;
}

function unverifiedParts(token: string): { header: { typ?: string; alg: string }; issuer: string } {
  let header: { typ?: string; alg?: string };
  let payload: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
    payload = decodeJwt(token);
  } catch {
    throw new FederationRefused("the assertion is not a JWT", "invalid_request");
  }
  if (typeof payload.iss !== "string") throw new FederationRefused("the assertion has no iss");
  return { header: { alg: String(header.alg), ...(header.typ ? { typ: header.typ } : {}) }, issuer: payload.iss };
}

/** RFC 7523 §3 items 4–6: `exp` (required), `nbf` and `iat` within skew, and a bounded lifetime. */
function checkTimes(payload: JWTPayload, trust: FederationTrust, now: number): void {
  const nowSeconds = Math.floor(now / 1000);
  const maxLifetime = trust.verification.max_lifetime ?? DEFAULT_MAX_LIFETIME_SECONDS;
  const exp = payload.exp as number;
  if (payload.iat !== undefined && payload.iat > nowSeconds + SKEW_SECONDS) {
    throw new FederationRefused("the assertion was issued in the future (iat)");
  }
  const start = payload.iat ?? nowSeconds;
  if (exp - start > maxLifetime + SKEW_SECONDS) {
    throw new FederationRefused(`the assertion lives longer than the trust accepts (${maxLifetime} s)`);
  }
}

/** RFC 7523 §3 item 7: a `jti` is accepted once per issuer while the assertion could be valid. */
async function requireSingleUse(payload: JWTPayload, trust: FederationTrust, context: FederationVerifyContext) {
  const ttlMs = Math.max(1000, (payload.exp as number) * 1000 - context.now + SKEW_SECONDS * 1000);
  const key = `federation:${trust.id}:${payload.jti}`;
  if (!(await context.replay.firstUse(key, ttlMs))) {
    throw new FederationRefused("the assertion was already used (jti replay)");
  }
}

function refusal(error: unknown): FederationRefused {
  if (error instanceof FederationRefused) return error;
  if (error instanceof errors.JWTExpired) return new FederationRefused("the assertion has expired");
  if (error instanceof errors.JWTClaimValidationFailed) {
    return new FederationRefused(`the assertion's ${error.claim} claim is invalid: ${error.reason}`);
  }
  if (error instanceof errors.JWKSNoMatchingKey) {
    return new FederationRefused("no key of the issuer verifies the assertion (unknown or withdrawn key)");
  }
  if (error instanceof JwksUnavailable) {
    return new FederationRefused("the issuer's keys could not be retrieved", "temporarily_unavailable");
  }
  return new FederationRefused(`the assertion does not verify: ${(error as Error).message}`);
}

/** Maps a verified subject to an agent client by the trust's mapping (a table, else a fixed client). */
export function mappedClient(trust: FederationTrust, claims: Record<string, unknown>): string {
  const claim = trust.mapping.claim ?? "sub";
  const value = claims[claim];
  const fromTable = typeof value === "string" ? trust.mapping.clients?.[value] : undefined;
  const clientId = fromTable ?? trust.mapping.client;
  if (!clientId) throw new FederationRefused(`the subject (${claim} ${JSON.stringify(value)}) maps to no agent`);
  return clientId;
}

/** RFC 8693 §4.1 actor claims naming the external identity, nesting any `act` it already carried. */
/**
 * The identity `trust` admits: the external `subject` acting as agent `clientId`, bounded by the
 * trust's scopes and resources and by the credential's own expiry (`notAfter`, ms epoch).
 */
export function trustedIdentity(
  protocol: string,
  trust: FederationTrust,
  subject: string,
  clientId: string,
  notAfter: number,
  innerActor?: unknown,
): FederatedIdentity {
  return {
    clientId,
    act: externalActor(subject, trust.issuer, protocol, trust.id, innerActor),
    protocol,
    issuer: trust.issuer,
    subject,
    trustId: trust.id,
    allowedScopes: trust.allowedScopes,
    allowedResources: trust.allowedResources,
    notAfter,
  };
}

function externalActor(
  subject: string,
  issuer: string,
  protocol: string,
  trustId: string,
  inner?: unknown,
): Record<string, unknown> {
  return {
    sub: subject,
    iss: issuer,
    mandate_federation: { protocol, trust: trustId },
    ...(inner && typeof inner === "object" ? { act: inner } : {}),
  };
}
